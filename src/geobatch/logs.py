"""Logging set-up: plain text, or one JSON object per line carrying job and request ids.

The ids live in context variables: the API sets them per request (``RequestIds``), so every
line logged while serving a request, in its threads too, names the request and its job; the
scheduler passes ``extra={"job_id": ...}`` on lines about one job.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from geobatch.config import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

_JOB_PATH = re.compile(r"^/v1/jobs/([0-9a-fA-F-]{36})(?:/|$)")
FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(job_id)s"


class ContextIds(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to every record (None where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id.get()
        return True


def configure_logging(settings: Settings) -> None:
    """With ``log_format=json``, route every logger (uvicorn's too) through one JSON handler."""
    if settings.log_format != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(FIELDS, rename_fields={"levelname": "level"}))
    handler.addFilter(ContextIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class RequestIds:
    """ASGI middleware: an id per request (the caller's ``X-Request-ID`` if it sent one),
    echoed in the answer, and the job id taken from the path, both set for logging."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given[:64] or uuid.uuid4().hex
        match = _JOB_PATH.match(scope.get("path", ""))
        request_token = request_id.set(rid)
        job_token = job_id.set(match.group(1) if match else None)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if all(name.lower() != b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(request_token)
            job_id.reset(job_token)
