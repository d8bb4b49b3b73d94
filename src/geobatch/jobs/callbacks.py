"""A job's callback: where its events are pushed, how they are signed, and how failures retry.

Payloads are signed per the Standard Webhooks scheme: ``webhook-id``, ``webhook-timestamp``
and a signature ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` in ``signature_header``.
The secret is write-only: it is stored to sign with but never shown, except once when the
service generates it.
"""

from __future__ import annotations

import base64
import random
import re
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks.webhooks import Webhook

from geobatch.config import Settings
from geobatch.errors import InvalidInput
from geobatch.jobs.urls import check_url

SECRET_PREFIX = "whsec_"
DEFAULT_SIGNATURE_HEADER = "webhook-signature"
MAX_DELAY_SECONDS = 24 * 3600.0
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "content-type", "content-length", "host", "user-agent"}
)


class EventType(StrEnum):
    """What a callback can subscribe to: each state a job enters, and progress steps."""

    CREATED = "job.created"
    QUEUED = "job.queued"
    RUNNING = "job.running"
    PAUSED = "job.paused"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    EXPIRED = "job.expired"
    PROGRESS = "job.progress"


DEFAULT_EVENTS = [EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED]


class RetryPolicy(BaseModel):
    """When a failed delivery is tried again.

    The delay before attempt ``n + 1`` is ``initial_delay_seconds`` times ``2**(n-1)``
    (exponential), ``n`` (linear) or 1 (fixed), lengthened by a random fraction up to
    ``jitter`` so that many receivers recovering at once are not hit together. A receiver's
    ``Retry-After`` on 429 or 503 replaces the computed delay.
    """

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(
        default=5, ge=1, le=100, description="attempts in all, the first one included"
    )
    initial_delay_seconds: float = Field(default=30.0, ge=0, le=MAX_DELAY_SECONDS)
    strategy: Literal["exponential", "linear", "fixed"] = "exponential"
    jitter: float = Field(default=0.1, ge=0, le=1, description="up to this fraction longer")

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempts`` failed attempts before the next one."""
        base = self.initial_delay_seconds
        if self.strategy == "exponential":
            base *= 2.0 ** (attempts - 1)
        elif self.strategy == "linear":
            base *= attempts
        base = min(base, MAX_DELAY_SECONDS)
        spread = (rng or random).uniform(0, self.jitter) if self.jitter else 0.0
        return min(base * (1 + spread), MAX_DELAY_SECONDS)


class CallbackSpec(BaseModel):
    """The ``callback`` of a job creation request."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL events are POSTed to")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="write-only signing key: whsec_<base64>, or any other string used as is; "
        "generated and returned once when omitted",
    )
    signature_header: str = Field(
        default=DEFAULT_SIGNATURE_HEADER, description="header carrying the v1 signature"
    )
    events: list[EventType] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)
    progress_step_percent: int = Field(
        default=10, ge=1, le=100, description="job.progress fires each time this many percent pass"
    )
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("signature_header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        if not _HEADER_NAME.match(value) or value.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{value!r} cannot be used as the signature header")
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(SECRET_PREFIX):
            try:
                key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
            except ValueError:
                raise ValueError("a whsec_ secret must be base64 after the prefix") from None
            if len(key) < 16:
                raise ValueError("a whsec_ secret must hold at least 16 bytes")
        return value


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key: the decoded bytes of a ``whsec_`` secret, else the secret's UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :])
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<base64 signature>`` of ``message_id.timestamp.body``."""
    return Webhook(signing_key(secret)).sign(message_id, timestamp, body)


def signed_headers(
    callback: dict[str, Any], message_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        callback["signature_header"]: sign(callback["secret"], message_id, timestamp, body),
    }


def resolve_callback(raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Validate a requested callback and check its URL; the stored form, secret included.

    A generated secret is marked so that the creation answer can show it, once.
    """
    try:
        spec = CallbackSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("callback", *first["loc"]))
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None
    cap = settings.webhook_max_attempts
    if spec.retry_policy.max_attempts > cap:
        raise InvalidInput(
            f"callback.retry_policy.max_attempts may be at most {cap} on this server.",
            field="callback.retry_policy.max_attempts",
        )
    check_url(spec.url, settings.url_allowlist, what="callback URL")
    stored = spec.model_dump(mode="json")
    stored["events"] = sorted(set(stored["events"]))
    if spec.secret is None:
        stored["secret"] = generate_secret()
        stored["secret_generated"] = True
    return stored


def public_callback(stored: dict[str, Any], *, reveal_secret: bool = False) -> dict[str, Any]:
    """The callback as shown to its owner: without the secret, unless it was just generated."""
    shown = {k: v for k, v in stored.items() if k not in ("secret", "secret_generated")}
    if reveal_secret and stored.get("secret_generated"):
        shown["secret"] = stored["secret"]
    return shown
