"""Request dependencies: the platform, the job service and the caller (tenant and role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, params
from fastapi._compat import ModelField, is_scalar_field
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor

from geobatch.api.contract import SAFE_POSTS
from geobatch.api.ratelimit import Budget, RateLimiter
from geobatch.errors import Forbidden, InvalidInput, Unauthorized
from geobatch.jobs import JobService, Platform
from geobatch.jobs.keys import Caller, Role

DEFAULT_TENANT = "default"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_ONLY = "This API key may only read; creating or changing jobs needs another role."
JOB_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class _JobIdConvertor(Convertor[str]):
    """Job ids are UUIDs: ``/v1/jobs/statuses`` is then never taken for a job's path, so a
    wrong method on it is a 405 rather than a 404 for a job named "statuses"."""

    regex = JOB_ID_PATTERN[1:-1]

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("job_id", _JobIdConvertor())
JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="the job's id (a UUID)")]


# The dependencies are ``async`` although they do no I/O: FastAPI runs sync ones on a worker
# thread, and three thread hops per request cost more than the work they do.


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def get_service(request: Request) -> JobService:
    platform: Platform = request.app.state.platform
    return platform.service


def presented_key(request: Request) -> str | None:
    """The key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    presented = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if presented is None and authorization and authorization[:7].lower() == "bearer ":
        presented = authorization[7:].strip()
    return presented or None


async def get_caller(request: Request) -> Caller:
    """Who is calling; with no keys anywhere, everyone is the admin of one tenant.

    The key headers are read here rather than declared as ``Header()`` parameters: that
    parsing is a noticeable share of a status poll. The OpenAPI document declares them as a
    security scheme instead (see ``api.app``).
    """
    platform: Platform = request.app.state.platform
    limiter: RateLimiter = request.app.state.rate_limiter
    if not platform.keys.any_keys():
        limiter.hit(request.client.host if request.client else DEFAULT_TENANT)
        single_values(request)
        return Caller(tenant=DEFAULT_TENANT, role=Role.ADMIN, actor="anonymous")
    presented = presented_key(request)
    caller = platform.keys.resolve(presented) if presented else None
    if caller is None:
        raise Unauthorized("API key is missing or invalid.")
    limiter.hit(caller.actor)
    if not caller.can_write and request.method not in _READ_METHODS:
        # Enforced here, for every API: a route that forgets ``WriterDep`` is still safe.
        route = request.scope.get("route")
        if getattr(route, "path_format", None) not in SAFE_POSTS:
            raise Forbidden(_READ_ONLY)
    single_values(request)
    return caller


async def get_tenant(caller: Annotated[Caller, Depends(get_caller)]) -> str:
    return caller.tenant


async def get_writer(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """A caller allowed to change jobs: a ``read`` key is refused."""
    if not caller.can_write:
        raise Forbidden(_READ_ONLY)
    return caller


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.role is not Role.ADMIN:
        raise Forbidden("Only an admin key may do this.")
    return caller


async def get_downloader(request: Request, caller: Annotated[Caller, Depends(get_caller)]) -> str:
    """The tenant of a caller downloading a file, counted against the download budget."""
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.hit(caller.actor, Budget.DOWNLOAD)
    return caller.tenant


ServiceDep = Annotated[JobService, Depends(get_service)]
PlatformDep = Annotated[Platform, Depends(get_platform)]
CallerDep = Annotated[Caller, Depends(get_caller)]
TenantDep = Annotated[str, Depends(get_tenant)]
WriterDep = Annotated[Caller, Depends(get_writer)]
AdminDep = Annotated[Caller, Depends(get_admin)]
DownloadTenantDep = Annotated[str, Depends(get_downloader)]


_SCALAR_QUERY: dict[int, tuple[str, ...]] = {}


def _scalar_query_names(route: APIRoute) -> tuple[str, ...]:
    """The query parameters of ``route`` (its dependencies' included) that take one value."""
    names = _SCALAR_QUERY.get(id(route))
    if names is None:
        names = tuple(
            field.alias for field in get_flat_params(route.dependant) if _is_query_scalar(field)
        )
        _SCALAR_QUERY[id(route)] = names
    return names


def _is_query_scalar(field: ModelField) -> bool:
    return isinstance(field.field_info, params.Query) and is_scalar_field(field)


def single_values(request: Request) -> None:
    """A query parameter that takes one value, sent several times, is refused: FastAPI would
    quietly keep the last one, and the OpenAPI document declares one value. Checked once the
    caller is known, so that a request without a key is a 401 whatever its query."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or b"&" not in request.scope["query_string"]:
        return
    for name in _scalar_query_names(route):
        count = len(request.query_params.getlist(name))
        if count > 1:
            raise InvalidInput(f"{name} is given {count} times; it takes one value", field=name)
