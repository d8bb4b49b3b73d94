"""What every adapter shares: the caller's tenant from a foreign key location, error answers in
the foreign API's shape, and reading the status tables backwards."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from geobatch.api.deps import get_caller
from geobatch.errors import GeobatchError, InvalidInput, Unauthorized
from geobatch.jobs import Job, JobFilter, JobService, JobStatus

ErrorRenderer = Callable[[Request, GeobatchError], Response]


async def tenant_for_key(request: Request, presented: str | None) -> str:
    """The tenant of a key presented where a foreign API puts it (query parameter, own header).

    The key is handed to the native check as if it came in ``X-API-Key``, so key lookup,
    tenants and per-key rate limits are exactly those of ``/v1``.
    """
    if presented is None:
        return (await get_caller(request)).tenant
    try:
        raw = presented.encode("latin-1")
    except UnicodeEncodeError:
        raise Unauthorized("API key is missing or invalid.") from None
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"x-api-key"]
    headers.append((b"x-api-key", raw))
    return (await get_caller(Request({**request.scope, "headers": headers}))).tenant


def _as_geobatch_error(exc: Exception) -> GeobatchError | None:
    if isinstance(exc, GeobatchError):
        return exc
    if isinstance(exc, RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return InvalidInput(detail, errors=errors)
    if isinstance(exc, StarletteHTTPException):
        error = GeobatchError(str(exc.detail))
        error.status = exc.status_code
        return error
    return None


def error_route(render: ErrorRenderer) -> type[APIRoute]:
    """A route class whose errors (including failed authentication and validation) are
    answered by ``render`` in the foreign API's own error shape."""

    class TranslatedErrors(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def translated(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    error = _as_geobatch_error(exc)
                    if error is None:
                        raise
                    response = render(request, error)
                    response.headers.update(error.extra.get("headers") or {})
                    if "retry_after" in error.extra:
                        response.headers["Retry-After"] = str(error.extra["retry_after"])
                    return response

            return translated

    return TranslatedErrors


def natives_of(table: Mapping[JobStatus, str], value: str, *, field: str) -> tuple[JobStatus, ...]:
    """The native states a foreign status name stands for (several may share one name)."""
    found = tuple(native for native, foreign in table.items() if foreign == value)
    if not found:
        known = ", ".join(sorted(set(table.values())))
        raise InvalidInput(f"unknown {field} {value!r}; one of {known}", field=field)
    return found


def newest_jobs(service: JobService, filters: Iterable[JobFilter], limit: int) -> list[Job]:
    """The newest ``limit`` jobs matching any of the filters: a filter holds one value per
    field, so a question about several types or services is several lists merged."""
    found: list[Job] = []
    for flt in filters:
        found += service.list_jobs(flt, page_size=limit, page_token=None)[0]
    return sorted(found, key=lambda job: job.pk, reverse=True)[:limit]


def jobs_page(
    service: JobService,
    filters: Iterable[JobFilter],
    *,
    limit: int,
    before: int | None = None,
    keep: Callable[[Job], bool] = lambda job: True,
) -> tuple[list[Job], int | None]:
    """One page of the jobs matching any filter (and ``keep``), newest first, below the
    cursor ``before`` (a job's ``pk``); and the cursor of the next page, None on the last."""
    found: dict[int, Job] = {}
    for flt in filters:
        cursor, taken = before, 0
        while taken <= limit:
            batch, cursor = service.store.list_jobs(flt, page_size=limit + 1, before_pk=cursor)
            for job in batch:
                if keep(job):
                    found[job.pk] = job
                    taken += 1
            if cursor is None:
                break
    page = sorted(found.values(), key=lambda job: job.pk, reverse=True)
    return page[:limit], page[limit - 1].pk if len(page) > limit else None


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
