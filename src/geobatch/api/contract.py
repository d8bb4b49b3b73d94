"""The OpenAPI document, completed so that it declares everything the service answers.

FastAPI describes the success of each route; this adds what every route may also answer:
errors with their schema (401 without a valid key, 403 for a role that may not, 404 for an
unknown id, 413/415 for an unacceptable upload, 422 for invalid input, 429 when a limit is
reached), the key schemes, and ``security: []`` on the public operations. Errors are
problem+json, except under the compatible APIs that answer in their own shape: HERE's error
JSON under ``/v7`` (where invalid input is a 400) and TomTom's under GEM.
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
GEM_PREFIX = "/maps/orbis/platform/gem/"
GEM_SECURITY_SCHEMES: dict[str, Any] = {
    "tomtomApiKey": {"type": "apiKey", "in": "header", "name": "tomtom-api-key"},
}
"""GEM reads its key from ``tomtom-api-key`` (or a Bearer token), not from ``X-API-Key``."""

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

HERE_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "HERE's error: title, status, code, cause, action and correlationId; "
    "a 401 carries error and error_description instead.",
    "anyOf": [
        {
            "required": ["title", "status", "code", "cause", "action", "correlationId"],
            "properties": {
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "cause": {"type": "string"},
                "action": {"type": "string"},
                "correlationId": {"type": "string"},
            },
        },
        {
            "required": ["error", "error_description"],
            "properties": {
                "error": {"type": "string"},
                "error_description": {"type": "string"},
            },
        },
    ],
}

GEM_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "TomTom's error: the status's reason phrase and a message.",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}

_ERROR_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("/v7/", "application/json", "HereError"),
    (GEM_PREFIX, "application/json", "GemError"),
)
"""Path prefix -> media type and schema of the errors of the API served there."""

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
    "RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests per window"},
    "RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "left in the window"},
    "RateLimit-Reset": {"schema": {"type": "integer"}, "description": "seconds to its end"},
}


def error_content(path: str) -> dict[str, Any]:
    """The media type and schema of the errors answered on ``path``."""
    for prefix, media_type, schema in _ERROR_SHAPES:
        if path.startswith(prefix):
            return {media_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


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
    if path.startswith("/v7/"):
        codes.remove("422")  # HERE answers invalid input with a 400
    return list(dict.fromkeys(codes))


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses, the problem schema and the security schemes to ``schema``."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["HereError"] = HERE_ERROR_SCHEMA
    schemas["GemError"] = GEM_ERROR_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)  # FastAPI's 422 shape: geobatch answers problems instead
    components["securitySchemes"] = SECURITY_SCHEMES | GEM_SECURITY_SCHEMES
    schema["security"] = [{name: []} for name in SECURITY_SCHEMES]
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if path in PUBLIC_PATHS:
                operation["security"] = []
            elif path.startswith(GEM_PREFIX):
                operation["security"] = [{"tomtomApiKey": []}, {"bearer": []}]
            responses = operation["responses"]
            responses.pop("422", None)  # FastAPI's own; declared below where it is answered
            for code in _error_codes(path, method, operation):
                declared = responses.setdefault(code, {"description": _DESCRIPTIONS[code]})
                declared.setdefault("content", {}).update(error_content(path))
                if code == "429":
                    declared["headers"] = _RATE_HEADERS
    return schema


def build(app: FastAPI, extra_schemas: dict[str, Any]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(extra_schemas)
    return complete(schema)
