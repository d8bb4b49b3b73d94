"""RFC 9457 problem details: the one error shape of every HTTP error geobatch returns."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from geobatch.errors import GeobatchError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://geobatch.dev/problems/"

log = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def problem(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    headers: dict[str, str] = dict(extra.pop("headers", None) or {})
    body.update(extra)
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_path(location: tuple[Any, ...]) -> str:
    # list positions are left out: ``status`` rather than ``status.0`` for a repeated parameter
    parts = [
        str(p)
        for p in location
        if p not in ("body", "query", "path", "header") and not isinstance(p, int)
    ]
    return ".".join(parts) or str(location[-1] if location else "")


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists for the request's path (a 405's ``Allow``).

    A literal path (``/v1/jobs/statuses``) wins over a template that would also match it.
    """
    path = request.url.path
    paths: dict[str, Any] = request.app.openapi().get("paths", {})
    if path not in paths:
        path = next(
            (t for t in paths if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), request.url.path)),
            path,
        )
    return sorted(method.upper() for method in paths.get(path, {}) if method.upper() in _METHODS)


def install(app: FastAPI) -> None:
    @app.exception_handler(GeobatchError)
    async def _geobatch_error(request: Request, exc: GeobatchError) -> JSONResponse:
        return problem(exc.status, exc.slug, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        fields = {e["field"] for e in errors}
        extra: dict[str, Any] = {"field": fields.pop()} if len(fields) == 1 else {}
        return problem(
            422, "invalid-input", "Invalid input", detail, request.url.path, errors=errors, **extra
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        slug = title.lower().replace(" ", "-")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on the path; a path served
            # by several routes (GET and DELETE of a job) allows all of theirs.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem(
            exc.status_code, slug, title, str(exc.detail), request.url.path, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(
            500,
            "internal-error",
            "Internal server error",
            "An unexpected error occurred.",
            request.url.path,
        )
