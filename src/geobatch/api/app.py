"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from geobatch import __version__
from geobatch.api import console, contract, problems
from geobatch.api.compat import ROUTERS as COMPAT_ROUTERS
from geobatch.api.ratelimit import RateLimiter
from geobatch.api.routes import (
    audit,
    events,
    geocode,
    job_types,
    jobs,
    maps,
    ops,
    releases,
    reverse,
    roads,
)
from geobatch.config import Settings
from geobatch.jobs import Platform, open_platform
from geobatch.logs import RequestIds


def create_app(
    settings: Settings,
    *,
    platform: Platform | None = None,
    run_scheduler: bool = True,
    jobs_api: bool = True,
) -> FastAPI:
    """Build the app. It opens the job platform on start-up unless one is passed in.

    ``jobs_api=False`` serves the operations endpoints alone (a scheduler-only process).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = platform is None
        app.state.platform = platform or open_platform(settings, run_scheduler=run_scheduler)
        try:
            yield
        finally:
            if owned:
                app.state.platform.close()

    app = FastAPI(
        title="geobatch",
        version=__version__,
        summary="Bulk geospatial jobs: geocoding, reverse geocoding, lookup, road matching.",
        lifespan=lifespan,
    )
    app.state.rate_limiter = RateLimiter(settings)
    app.add_middleware(RequestIds)
    problems.install(app)
    if jobs_api:
        app.include_router(jobs.router)
        app.include_router(events.router)
        app.include_router(releases.router)
        app.include_router(roads.router)
        app.include_router(reverse.router)
        app.include_router(geocode.router)
        app.include_router(audit.router)
    app.include_router(ops.router)
    for compat_router in COMPAT_ROUTERS:
        app.include_router(compat_router)
    app.include_router(job_types.router)
    app.include_router(maps.router)
    console.mount(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract.build(app, jobs.EXTRA_SCHEMAS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
