"""The OpenAPI document, completed so that it declares everything the service answers.

FastAPI describes the success of each route; this adds what every route may also answer:
problem+json errors with their schema (401 without a valid key, 403 for a role that may not,
404 for an unknown id, 413/415 for an unacceptable upload, 422 for invalid input, 429 when
a limit is reached), the key schemes, and ``security: []`` on the public operations.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from geobatch.api.problems import PROBLEM_MEDIA_TYPE

# The two ways to present an API key (read in ``deps.get_caller``); either one will do.
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}

PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics"}
    | {"/v7/health", "/v7/version", "/v7/openapi", "/ogcapi", "/ogcapi/conformance"}
)
"""Operations that answer without a key (liveness and monitoring probes)."""

SAFE_POSTS = frozenset({"/v1/jobs/statuses", "/v1/match/roads", "/immuta/jobs/statuses"})
"""POST operations that only read: a ``read`` key may call them (and no other POST, PUT,
PATCH or DELETE, on any API: see ``deps.get_caller``)."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    "400": "Bad request",
    "401": "No valid API key",
    "403": "The key's role may not do this",
    "404": "No such resource (or one of another tenant)",
    "409": "The resource's state does not allow this",
    "410": "The resource's files are gone",
    "413": "The upload exceeds a size limit or quota",
    "415": "Unsupported media type",
    "422": "Invalid input",
    "429": "Rate limit or quota reached; see Retry-After",
}

_RATE_HEADERS = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"},
}


def _problem(code: str, native: bool = True) -> dict[str, Any]:
    """A problem answer; a compatible API answers errors in its own JSON shape instead."""
    content: dict[str, Any] = {
        PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    if not native:
        content["application/json"] = {"schema": {"type": "object"}}
    response: dict[str, Any] = {"description": _DESCRIPTIONS[code], "content": content}
    if code == "429":
        response["headers"] = _RATE_HEADERS
    return response


def _error_codes(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    if path in PUBLIC_PATHS:
        return []
    codes = ["401", "422", "429"]
    if method not in ("get", "head") and path not in SAFE_POSTS:
        codes.append("403")
    if path == "/v1/audit":
        codes.append("403")
    if "{" in path or path.startswith("/v1/releases") or path in ("/v1/lookup", "/v1/jobs"):
        codes.append("404")
    if method != "get" or path.endswith(("/results", "/errors", "/events")):
        codes += ["409", "410"]
    if "requestBody" in operation:
        codes += ["400", "413", "415"]
    if not path.startswith("/v1/"):
        codes.append("400")  # foreign APIs name bad input 400
    return list(dict.fromkeys(codes))


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses, the problem schema and the security schemes to ``schema``."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    schema["security"] = [{name: []} for name in SECURITY_SCHEMES]
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if path in PUBLIC_PATHS:
                operation["security"] = []
            responses = operation["responses"]
            native = path.startswith("/v1/")
            for code in _error_codes(path, method, operation):
                if code not in responses:
                    responses[code] = _problem(code, native)
                elif not native:
                    content = responses[code].setdefault("content", {})
                    content.update(_problem(code, native)["content"] | content)
            if "422" in responses and "problem" not in str(responses["422"].get("content")):
                responses["422"] = _problem("422", native)
    return schema


def build(app: FastAPI, extra_schemas: dict[str, Any]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(extra_schemas)
    return complete(schema)
