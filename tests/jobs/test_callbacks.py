"""Callbacks: retry delays per strategy, Standard Webhooks signatures, validation and URL safety."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from geobatch.config import Settings
from geobatch.errors import ForbiddenUrl, InvalidInput
from geobatch.jobs.callbacks import (
    RetryPolicy,
    public_callback,
    resolve_callback,
    sign,
    signed_headers,
)


def make_settings(tmp_path: Path, *allow: str) -> Settings:
    return Settings(data_dir=tmp_path, url_allowlist=list(allow), _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("exponential", [2.0, 4.0, 8.0, 16.0]),
        ("linear", [2.0, 4.0, 6.0, 8.0]),
        ("fixed", [2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_delays_follow_the_strategy(strategy: str, expected: list[float]) -> None:
    policy = RetryPolicy(initial_delay_seconds=2, strategy=strategy, jitter=0)  # type: ignore[arg-type]
    assert [policy.delay(n) for n in range(1, 5)] == expected


@given(
    attempts=st.integers(min_value=1, max_value=40),
    initial=st.floats(min_value=0, max_value=3600),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_jitter_only_lengthens_and_delays_are_capped(
    attempts: int, initial: float, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(initial_delay_seconds=initial, jitter=jitter)
    plain = RetryPolicy(initial_delay_seconds=initial, jitter=0).delay(attempts)
    delay = policy.delay(attempts, random.Random(seed))
    assert plain <= delay <= min(plain * (1 + jitter), 24 * 3600.0) + 1e-9


def published_signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks v1 algorithm as specified: base64(HMAC-SHA256(id.ts.body))."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_signature_is_the_standard_webhooks_one() -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = '{"type":"job.succeeded","data":{"job_id":"x"}}'
    expected = published_signature(key, "msg_1", int(when.timestamp()), body)
    assert sign(secret, "msg_1", when, body) == expected
    # Any other secret string is the key as UTF-8 bytes.
    assert sign("a-plain-secret-of-some-length", "msg_1", when, body) == published_signature(
        b"a-plain-secret-of-some-length", "msg_1", int(when.timestamp()), body
    )


def test_signed_headers_verify_with_the_reference_library() -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    now = datetime.now(UTC)
    body = '{"type":"job.failed"}'
    default = {"secret": secret, "signature_header": "webhook-signature"}
    headers = signed_headers(default, "msg_2", now, body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.failed"}
    custom = signed_headers(
        {**default, "signature_header": "X-Geobridge-Signature"}, "m", now, body
    )
    assert "webhook-signature" not in custom
    assert custom["X-Geobridge-Signature"] == sign(secret, "m", now, body)


def test_a_generated_secret_is_shown_once_and_never_again(tmp_path: Path) -> None:
    stored = resolve_callback({"url": "https://93.184.215.14/hook"}, make_settings(tmp_path))
    assert stored["secret"].startswith("whsec_")
    assert len(base64.b64decode(stored["secret"][6:])) == 32
    assert public_callback(stored, reveal_secret=True)["secret"] == stored["secret"]
    assert "secret" not in public_callback(stored)
    assert stored["events"] == ["job.cancelled", "job.failed", "job.succeeded"]
    assert stored["retry_policy"] == {
        "max_attempts": 5,
        "initial_delay_seconds": 30.0,
        "strategy": "exponential",
        "jitter": 0.1,
    }
    given_secret = resolve_callback(
        {"url": "https://93.184.215.14/hook", "secret": "0123456789abcdef-mine"},
        make_settings(tmp_path),
    )
    assert "secret" not in public_callback(given_secret, reveal_secret=True)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/"]
)
def test_private_addresses_are_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    with pytest.raises(ForbiddenUrl, match="private or reserved"):
        resolve_callback({"url": url}, make_settings(tmp_path))
    allowed = make_settings(tmp_path, "127.0.0.1/32", "169.254.0.0/16", "::1/128")
    assert resolve_callback({"url": url}, allowed)["url"] == url


@pytest.mark.parametrize(
    ("callback", "field"),
    [
        ({"url": "https://93.184.215.14", "events": []}, "callback.events"),
        ({"url": "https://93.184.215.14", "events": ["job.done"]}, "callback.events.0"),
        ({"url": "https://93.184.215.14", "secret": "short"}, "callback.secret"),
        ({"url": "https://93.184.215.14", "secret": "whsec_%%%%%%%%%%%%%%%%%"}, "callback.secret"),
        (
            {"url": "https://93.184.215.14", "signature_header": "bad header"},
            "callback.signature_header",
        ),
        (
            {"url": "https://93.184.215.14", "retry_policy": {"strategy": "random"}},
            "callback.retry_policy.strategy",
        ),
        (
            {"url": "https://93.184.215.14", "retry_policy": {"max_attempts": 11}},
            "callback.retry_policy.max_attempts",
        ),
        ({"url": "https://93.184.215.14", "colour": "red"}, "callback.colour"),
    ],
)
def test_invalid_callbacks_name_the_field(
    tmp_path: Path, callback: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_callback(callback, make_settings(tmp_path))
    assert caught.value.extra["field"] == field


def test_only_http_and_https(tmp_path: Path) -> None:
    with pytest.raises(ForbiddenUrl, match="http or https"):
        resolve_callback({"url": "file:///etc/passwd"}, make_settings(tmp_path))
