"""The HTTP API: a thin layer over the job service. ``create_app(settings)`` builds it."""

from geobatch.api.app import create_app

__all__ = ["create_app"]
