"""geobatch: a self-hosted service for bulk geospatial jobs."""

__version__ = "0.1.0"
