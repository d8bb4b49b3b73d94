"""The ``callback`` of a JSON job creation: validated at the edge, secret shown once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def create(client: httpx.Client, callback: dict[str, object], **headers: str) -> httpx.Response:
    return client.post(
        "/v1/jobs",
        json={
            "type": "validate",
            "options": {"target_type": "reverse_geocode"},
            "input": {"url": "http://127.0.0.1:9/points.csv"},
            "start": False,
            "callback": callback,
        },
        headers=headers,
    )


def test_json_creation_returns_the_generated_secret_once(client: httpx.Client) -> None:
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["job.failed", "job.progress"]}
    answer = create(client, hook, **{"Idempotency-Key": "k1"})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    secret = job["callback"]["secret"]
    assert secret.startswith("whsec_")
    assert job["callback"]["events"] == ["job.failed", "job.progress"]
    assert job["callback"]["retry_policy"]["max_attempts"] == 5
    again = create(client, hook, **{"Idempotency-Key": "k1"})
    assert again.status_code == 200
    assert again.json()["id"] == job["id"]
    assert again.json()["callback"]["secret"] is None, "a replay does not show it again"
    shown = client.get(f"/v1/jobs/{job['id']}").json()
    assert shown["callback"]["secret"] is None
    assert shown["delivery_attempts"] == []
    assert secret not in client.get("/v1/jobs").text


def test_json_callback_errors_are_problems(client: httpx.Client) -> None:
    answer = create(client, {"url": "http://127.0.0.1:9/hook", "retry_policy": {"jitter": 2}})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "callback.retry_policy.jitter" in answer.json()["detail"]
    answer = create(client, {"url": "http://169.254.169.254/latest/meta-data/"})
    assert answer.status_code == 422
    assert answer.json()["type"].endswith("/url-not-allowed")


def test_a_job_without_callback_shows_no_attempts(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/jobs",
        json={
            "type": "validate",
            "options": {"target_type": "reverse_geocode"},
            "input": {"url": "http://127.0.0.1:9/points.csv"},
            "start": False,
        },
    )
    job = client.get(f"/v1/jobs/{answer.json()['id']}").json()
    assert job["callback"] is None
    assert job["delivery_attempts"] is None
