"""Bounded junction-to-junction routes: the table is built at import (see the reference)."""

from geobatch.reference.indexes.routes import RouteTable

__all__ = ["RouteTable"]
