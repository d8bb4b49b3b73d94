"""Request dependencies: the platform, the job service and the caller's tenant."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, Request

from geobatch.api.ratelimit import RateLimiter
from geobatch.errors import Unauthorized
from geobatch.jobs import JobService, Platform

DEFAULT_TENANT = "default"


# The dependencies are ``async`` although they do no I/O: FastAPI runs sync ones on a worker
# thread, and three thread hops per request cost more than the work they do.


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def get_service(request: Request) -> JobService:
    platform: Platform = request.app.state.platform
    return platform.service


async def get_tenant(request: Request) -> str:
    """The tenant of the caller's API key; with no keys configured, everyone is one tenant.

    The key headers are read here rather than declared as ``Header()`` parameters: that
    parsing is a noticeable share of a status poll. The OpenAPI document declares them as a
    security scheme instead (see ``api.app``).
    """
    platform: Platform = request.app.state.platform
    keys = platform.settings.api_keys
    limiter: RateLimiter = request.app.state.rate_limiter
    if not keys:
        limiter.hit(request.client.host if request.client else DEFAULT_TENANT)
        return DEFAULT_TENANT
    presented = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if presented is None and authorization and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    if presented:
        for key, tenant in keys.items():
            if secrets.compare_digest(key.encode(), presented.encode()):
                limiter.hit(f"key:{hashlib.sha256(key.encode()).hexdigest()[:16]}")
                return tenant
    raise Unauthorized("API key is missing or invalid.")


ServiceDep = Annotated[JobService, Depends(get_service)]
PlatformDep = Annotated[Platform, Depends(get_platform)]
TenantDep = Annotated[str, Depends(get_tenant)]
