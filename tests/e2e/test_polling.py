"""Following jobs: the statuses long poll answers at once when jobs end, and pagination visits
every job exactly once while jobs are being created."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerProcess
from tests.e2e.helpers import create_job, get_job, make_csv, timestamp, wait_for_status

pytestmark = pytest.mark.e2e

ROUNDS = 5
MAX_LAG = 0.1


class LongPoll(threading.Thread):
    """``POST /v1/jobs/statuses`` in a thread; records the wall-clock time it returned."""

    def __init__(self, base_url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.body = body
        self.response: httpx.Response | None = None
        self.returned: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=60) as client:
                response = client.post("/v1/jobs/statuses", json=self.body)
                self.returned = time.time()
                self.response = response
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float) -> httpx.Response:
        self.join(timeout)
        assert not self.is_alive(), "the long poll did not return"
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def test_long_poll_returns_when_the_job_ends(server: ServerProcess, client: httpx.Client) -> None:
    body = make_csv(2000).body
    lags = []
    for round_ in range(ROUNDS + 1):  # round 0 warms up the server (first calls, worker pool)
        job_id = create_job(client, body, start=False)["id"]
        poll = LongPoll(server.url, {"job_ids": [job_id], "wait": 30})
        poll.start()
        time.sleep(0.3)
        assert poll.is_alive(), "the long poll returned before the job even started"

        assert client.post(f"/v1/jobs/{job_id}/start").status_code == 200
        response = poll.result(timeout=40)
        assert response.status_code == 200, response.text
        [item] = response.json()["jobs"]
        assert item["status"] == "succeeded"
        assert item["output"]["partial"] is False
        assert response.json()["not_found"] == []

        finished = timestamp(get_job(client, job_id)["finished_at"]).timestamp()
        assert poll.returned is not None
        if round_:
            lags.append(poll.returned - finished)
    assert min(lags) >= 0, f"a long poll returned before its job finished: {lags}"
    assert max(lags) < MAX_LAG, f"long poll lag after the job finished (s): {lags}"


def test_long_poll_waits_for_every_job_and_times_out(
    server: ServerProcess, client: httpx.Client
) -> None:
    warm_up = create_job(client, make_csv(10).body)["id"]  # so that the pool is up
    wait_for_status(client, warm_up, "succeeded")
    idle = create_job(client, make_csv(10).body, start=False)["id"]
    quick = create_job(client, make_csv(10).body, start=False)["id"]
    missing = "00000000-0000-4000-8000-000000000000"

    # Without wait: at once, with what is known.
    started = time.monotonic()
    response = client.post("/v1/jobs/statuses", json={"job_ids": [idle, missing]})
    assert time.monotonic() - started < 1
    assert [item["status"] for item in response.json()["jobs"]] == ["created"]
    assert response.json()["not_found"] == [missing]

    # One job ends, the other never starts: the poll answers when its time is up, not before.
    poll = LongPoll(server.url, {"job_ids": [quick, idle], "wait": 3})
    began = time.monotonic()
    poll.start()
    assert client.post(f"/v1/jobs/{quick}/start").status_code == 200
    wait_for_status(client, quick, "succeeded")
    assert poll.is_alive(), "the long poll returned when only one of its jobs had ended"
    result = poll.result(timeout=20).json()
    elapsed = time.monotonic() - began
    assert 2.9 < elapsed < 6, elapsed
    assert {item["id"]: item["status"] for item in result["jobs"]} == {
        quick: "succeeded",
        idle: "created",
    }


def test_pagination_while_jobs_are_created(server: ServerProcess, client: httpx.Client) -> None:
    body = make_csv(5).body
    existing = {create_job(client, body, start=False)["id"] for _ in range(30)}

    stop = threading.Event()
    made: list[str] = []
    errors: list[BaseException] = []

    def creator() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as other:
                while not stop.is_set():
                    made.append(create_job(other, body, start=False)["id"])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=creator, daemon=True)
    thread.start()
    try:
        while len(made) < 2:  # the creator is under way
            time.sleep(0.01)
        made_before = len(made)
        visited: list[str] = []
        pages = 0
        token = None
        while True:
            params: dict[str, Any] = {"page_size": 4}
            if token:
                params["page_token"] = token
            response = client.get("/v1/jobs", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["jobs"]) <= 4
            visited.extend(job["id"] for job in page["jobs"])
            pages += 1
            token = page["next_page_token"]
            if token is None:
                break
            time.sleep(0.03)  # let jobs be created between pages
        made_during = len(made) - made_before
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors

    assert made_during >= 3, "too few jobs were created while paging to test anything"
    assert len(visited) == len(set(visited)), "a job was listed twice"
    assert existing <= set(visited), f"{len(existing - set(visited))} older jobs were skipped"
    assert set(visited) <= existing | set(made)
    assert pages >= 8
    # Newest first throughout, as the first page saw them.
    created = [timestamp(get_job(client, job_id)["created_at"]) for job_id in visited]
    assert created == sorted(created, reverse=True)
