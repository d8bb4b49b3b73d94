"""Drop-in compatible APIs: one router per foreign job API, each a thin translation onto the
job service (same tenants, keys, limits, engines and storage as ``/v1``)."""

from __future__ import annotations

from fastapi import APIRouter

from geobatch.api.compat import (
    bulk_geocoding,
    here_v7,
    here_v7_notifications,  # noqa: F401 (adds its routes to here_v7's router)
    jobs_search,
    ogc_processes,
    tomtom_gem,
)

ROUTERS: tuple[APIRouter, ...] = (
    here_v7.router,
    bulk_geocoding.router,
    jobs_search.router,
    tomtom_gem.router,
    ogc_processes.router,
)
