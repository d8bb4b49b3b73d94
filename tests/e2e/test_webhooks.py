"""Webhooks against a real receiver on localhost: signed, retried on schedule, logged, durable.

The server's allow-list names ``localhost`` only, so the receiver is reached as
``http://localhost:PORT`` while 127.0.0.1 and 169.254.169.254 stay refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import assert_problem, create_job, get_job, make_csv, wait_for_status
from tests.e2e.receiver import HANG, Receiver, serve_receiver

pytestmark = [pytest.mark.e2e]

WEBHOOK_ENV = {"GEOBATCH_URL_ALLOWLIST": "localhost", "GEOBATCH_WEBHOOK_TIMEOUT_SECONDS": "0.5"}
SHARED_SERVER_ENV = WEBHOOK_ENV


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


def with_callback(
    client: httpx.Client, callback: dict[str, Any], records: int = 30
) -> dict[str, Any]:
    return create_job(client, make_csv(records).body, params={"callback": json.dumps(callback)})


def attempts(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get_job(client, job_id)["delivery_attempts"]
    return found


def wait_attempts(
    client: httpx.Client, job_id: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:

    deadline = time.monotonic() + timeout
    while len(found := attempts(client, job_id)) < count:
        assert time.monotonic() < deadline, f"only {len(found)} attempts: {found}"
        time.sleep(0.05)
    return found


def standard_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The Standard Webhooks v1 signature, computed as the specification describes it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_signed_events_verify_and_the_secret_is_shown_once(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    callback = {"url": receiver.url, "events": ["job.running", "job.succeeded"]}
    job = with_callback(shared_client, callback)
    secret = job["callback"]["secret"]
    assert secret.startswith("whsec_")
    wait_for_status(shared_client, job["id"], "succeeded")
    receiver.wait_for(lambda: len(receiver.requests) >= 2)
    types = []
    for request in receiver.requests:
        assert request.headers["webhook-signature"] == standard_signature(
            secret, request.headers, request.body
        )
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["data"]["job_id"] == job["id"]
        types.append(payload["type"])
    assert sorted(types) == ["job.running", "job.succeeded"]
    logged = wait_attempts(shared_client, job["id"], 2)
    shown = get_job(shared_client, job["id"])
    assert shown["callback"]["secret"] is None
    assert secret not in json.dumps(shown)
    assert sorted((a["event_type"], a["status_code"], a["attempt"]) for a in logged) == [
        ("job.running", 200, 1),
        ("job.succeeded", 200, 1),
    ]
    assert all(a["delivered_at"] and a["duration_ms"] >= 0 for a in shown["delivery_attempts"])


def test_custom_signature_header_and_given_secret(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    callback = {"url": receiver.url, "secret": secret, "signature_header": "X-Geobridge-Signature"}
    job = with_callback(shared_client, callback)
    assert job["callback"]["secret"] is None, "a secret the user gave is never echoed"
    receiver.wait_for(lambda: len(receiver.requests) == 1)
    (request,) = receiver.requests
    assert "webhook-signature" not in request.headers
    signature = request.headers["x-geobridge-signature"]
    assert signature == standard_signature(secret, request.headers, request.body)
    Webhook(secret).verify(request.body, {**request.headers, "webhook-signature": signature})
    assert json.loads(request.body)["type"] == "job.succeeded"


def test_fails_three_times_then_one_success_after_the_backoff(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    receiver.script = [(500, {}), (500, {}), (502, {})]
    policy = {"max_attempts": 5, "initial_delay_seconds": 0.2, "strategy": "exponential"}
    job = with_callback(shared_client, {"url": receiver.url, "retry_policy": policy})
    logged = wait_attempts(shared_client, job["id"], 4)
    assert [a["status_code"] for a in logged] == [500, 500, 502, 200]
    assert [a["attempt"] for a in logged] == [1, 2, 3, 4]
    assert [a["delivered_at"] is not None for a in logged] == [False, False, False, True]
    assert logged[-1]["next_attempt_at"] is None
    assert len({a["webhook_id"] for a in logged}) == 1, "retries keep the webhook-id"
    requests = receiver.of_type("job.succeeded")
    assert [r.answered for r in requests] == [500, 500, 502, 200]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert gap >= delay * 0.95, f"retried after {gap:.3f}s, policy says {delay}s: {gaps}"


def test_retry_after_of_the_receiver_is_honoured(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    receiver.script = [(429, {"Retry-After": "1"})]
    policy = {"max_attempts": 3, "initial_delay_seconds": 0.05, "strategy": "fixed"}
    job = with_callback(shared_client, {"url": receiver.url, "retry_policy": policy})
    logged = wait_attempts(shared_client, job["id"], 2)
    assert [a["status_code"] for a in logged] == [429, 200]
    first, second = receiver.requests
    assert second.at - first.at >= 0.95


def test_a_receiver_that_never_answers_ends_after_max_attempts(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    receiver.script = [(HANG, {})] * 3
    policy = {"max_attempts": 3, "initial_delay_seconds": 0.05, "strategy": "linear"}
    job = with_callback(shared_client, {"url": receiver.url, "retry_policy": policy})
    logged = wait_attempts(shared_client, job["id"], 3)
    assert [a["attempt"] for a in logged] == [1, 2, 3]
    for attempt in logged:
        assert attempt["status_code"] is None
        assert attempt["delivered_at"] is None
        assert "no answer within 0.5 s" in attempt["error"]
        assert attempt["duration_ms"] >= 450
    assert logged[-1]["next_attempt_at"] is None, "the last attempt schedules no other"
    assert [a["next_attempt_at"] is not None for a in logged[:2]] == [True, True]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/"])
def test_private_callback_urls_are_refused(shared_client: httpx.Client, url: str) -> None:
    response = shared_client.post(
        "/v1/jobs",
        params={"type": "validate", "callback": json.dumps({"url": url})},
        content=make_csv(3).body,
        headers={"Content-Type": "text/csv"},
    )
    body = assert_problem(response, 422, slug="url-not-allowed")
    host = url.split("/")[2].split(":")[0]
    assert f"callback URL host {host}" in body["detail"]
    assert "GEOBATCH_URL_ALLOWLIST" in body["detail"]


def test_bad_callbacks_are_refused_with_the_field(shared_client: httpx.Client) -> None:
    cases = [
        ({"url": "ftp://localhost/x"}, "url-not-allowed", "http or https"),
        ({"url": "http://localhost/x", "events": ["job.exploded"]}, "invalid-input", "events"),
        (
            {"url": "http://localhost/x", "retry_policy": {"max_attempts": 11}},
            "invalid-input",
            "at most 10",
        ),
        (
            {"url": "http://localhost/x", "signature_header": "webhook-id"},
            "invalid-input",
            "signature",
        ),
    ]
    for callback, slug, words in cases:
        response = shared_client.post(
            "/v1/jobs",
            files={"file": ("in.csv", make_csv(3).body, "text/csv")},
            data={"type": "validate", "callback": json.dumps(callback)},
        )
        body = assert_problem(response, 422, slug=slug)
        assert words in body["detail"], body


def test_callback_test_endpoint_sends_a_signed_event(
    shared_client: httpx.Client, receiver: Receiver
) -> None:
    job = create_job(
        shared_client,
        make_csv(3).body,
        start=False,
        params={"callback": json.dumps({"url": receiver.url})},
    )
    receiver.script = [(418, {})]
    answer = shared_client.post(f"/v1/jobs/{job['id']}/callback/test")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["delivered"] is False
    assert result["status_code"] == 418
    answer = shared_client.post(f"/v1/jobs/{job['id']}/callback/test").json()
    assert answer["delivered"] is True
    assert answer["status_code"] == 200
    request = receiver.requests[-1]
    payload = Webhook(job["callback"]["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "job.test"
    assert request.headers["webhook-id"] == answer["webhook_id"]
    plain = create_job(shared_client, make_csv(3).body, start=False)
    assert_problem(shared_client.post(f"/v1/jobs/{plain['id']}/callback/test"), 409)


# Two server starts per run: SQLite only. Claims and leases, what differs between the
# databases, are covered on both in tests/jobs/test_delivery.py.
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_delivery_survives_a_killed_server(
    server_factory: type[ServerProcess], receiver: Receiver
) -> None:
    """One event is delivered and the other's first attempt fails; the server is SIGKILLed
    while that retry waits. The restarted server delivers the pending event and does not
    send the delivered one again."""
    receiver.script = [(200, {}), (503, {})]
    server = server_factory(**WEBHOOK_ENV)
    server.start()
    policy = {"max_attempts": 5, "initial_delay_seconds": 2, "strategy": "fixed"}
    callback = {
        "url": receiver.url,
        "events": ["job.running", "job.succeeded"],
        "retry_policy": policy,
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job = with_callback(client, callback)
        assert sorted(a["status_code"] for a in wait_attempts(client, job["id"], 2)) == [200, 503]
        server.kill()
        server.start()
        logged = wait_attempts(client, job["id"], 3)
        assert logged[-1]["status_code"] == 200
        time.sleep(0.5)  # several delivery rounds of the restarted server
        assert len(attempts(client, job["id"])) == 3
    by_id: dict[str, list[int]] = {}
    for request in receiver.requests:
        by_id.setdefault(request.headers["webhook-id"], []).append(request.answered)
    assert sorted(by_id.values()) == [[200], [503, 200]], by_id


def test_the_event_stream_of_a_real_job(shared_client: httpx.Client) -> None:
    """Opened before the job starts, the stream sees each state once, in order, then ends."""
    job = create_job(shared_client, make_csv(2500).body, start=False)
    names: list[str] = []
    ids: list[int] = []
    with shared_client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            elif line.startswith("event: "):
                names.append(line[7:])
                if names == ["job.created"]:
                    assert shared_client.post(f"/v1/jobs/{job['id']}/start").status_code == 200
    states = [name for name in names if name != "job.progress"]
    assert states == ["job.created", "job.queued", "job.running", "job.succeeded"]
    assert names.count("job.progress") >= 1
    assert names.index("job.running") < names.index("job.progress")
    assert ids == sorted(set(ids))
