"""One exception root for every error a user can cause; each kind carries its HTTP status.

The API renders these as RFC 9457 problem details and the CLI as one line. The
class docstring is the problem's title.
"""

from __future__ import annotations

from typing import Any


class GeobatchError(Exception):
    """Geobatch error."""

    status: int = 500
    slug: str = "internal-error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def title(self) -> str:
        return (self.__class__.__doc__ or "Error").strip().rstrip(".")


class InvalidInput(GeobatchError):
    """Invalid input."""

    status = 422
    slug = "invalid-input"


class BadRequest(GeobatchError):
    """Bad request."""

    status = 400
    slug = "bad-request"


class NotFound(GeobatchError):
    """Not found."""

    status = 404
    slug = "not-found"


class Conflict(GeobatchError):
    """Conflict."""

    status = 409
    slug = "conflict"


class InvalidTransition(Conflict):
    """Invalid state transition."""

    slug = "invalid-transition"


class PayloadTooLarge(GeobatchError):
    """Payload too large."""

    status = 413
    slug = "payload-too-large"


class UnsupportedMediaType(GeobatchError):
    """Unsupported media type."""

    status = 415
    slug = "unsupported-media-type"


class Unauthorized(GeobatchError):
    """Unauthorized."""

    status = 401
    slug = "unauthorized"


class Forbidden(GeobatchError):
    """Forbidden."""

    status = 403
    slug = "forbidden"


class TooManyRequests(GeobatchError):
    """Too many requests."""

    status = 429
    slug = "too-many-requests"


class Gone(GeobatchError):
    """Gone."""

    status = 410
    slug = "gone"


class ForbiddenUrl(GeobatchError):
    """URL not allowed."""

    status = 422
    slug = "url-not-allowed"


class QuotaExceeded(TooManyRequests):
    """Quota exceeded."""

    slug = "quota-exceeded"


class StorageQuotaExceeded(PayloadTooLarge):
    """Storage quota exceeded."""

    slug = "storage-quota-exceeded"
