"""HERE Batch v7 under ``/v7``: a HERE-style client gets the native API's answers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from geobatch.jobs.callbacks import signing_key
from tests.api.compat.conftest import KEY, OTHER_KEY, SQLITE_ONLY, native_results, poll
from tests.e2e.receiver import Received, Receiver, serve_receiver

pytestmark = pytest.mark.e2e

HRN = "hrn:here:service::olp-here:search-{}-7"
OUTPUT = (
    "recId|accessLatitude|accessLongitude|positionLatitude|positionLongitude|queryScore|"
    "resultType|label|houseNumber|street|postcode|city|district|county|state|country"
)


@dataclass
class HereClient:
    """What a HERE Batch client does, written from HERE's description of the API: post
    records as pipe-delimited text, poll ``href`` until completed, read ``resultsHref``."""

    base_url: str
    api_key: str

    def submit(self, service: str, text: str, **params: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.base_url}/v7/batch/jobs",
            params={"serviceHrn": HRN.format(service), "apiKey": self.api_key, **params},
            content=text.encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def wait(self, job: dict[str, Any]) -> dict[str, Any]:
        params = {"apiKey": self.api_key}
        return dict(
            poll(
                lambda: httpx.get(job["href"], params=params).json(),
                lambda j: j["status"] in ("completed", "failure"),
            )
        )

    def lines(self, href: str) -> list[dict[str, str]]:
        answer = httpx.get(href, params={"apiKey": self.api_key})
        assert answer.status_code == 200, answer.text
        header, *rows = answer.text.splitlines()
        names = header.split("|")
        return [dict(zip(names, row.split("|"), strict=True)) for row in rows]

    def run(self, service: str, text: str, **params: str) -> list[dict[str, str]]:
        done = self.wait(self.submit(service, text, **params))
        assert done["status"] == "completed", done
        return self.lines(done["resultsHref"])


@pytest.fixture
def here(compat_url: str) -> HereClient:
    return HereClient(compat_url, KEY)


def _best(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["recId"]: row for row in rows if row["seqNumber"] in ("0", "1")}


@SQLITE_ONLY
def test_geocode_answers_match_the_native_api(here: HereClient, native: httpx.Client) -> None:
    records = [
        ("station", "Kaivokatu 1, 00100 Helsinki", "Finland"),
        ("paris", "Paris", "France"),
        ("nothing", "qqxxzzkkww", ""),
    ]
    text = "recId|searchText|country\n" + "".join(f"{'|'.join(r)}\n" for r in records)
    rows = here.run("geocode", text, outputColumns=OUTPUT)
    csv_body = "recId,searchText,country\n" + "".join(f"{','.join(r)}\n" for r in records)
    expected = _best(native_results(native, "geocode", csv_body.encode()))
    got = _best(rows)
    assert set(got) == {"station", "paris", "nothing"}
    for rec_id, want in expected.items():
        row = got[rec_id]
        assert row["positionLatitude"] == row["accessLatitude"] == (want["lat"] or "")
        assert row["positionLongitude"] == (want["lon"] or "")
        assert row["label"] == (want["label"] or "")
        assert row["street"] == (want["street"] or "")
        assert row["postcode"] == (want["postalCode"] or "")
    station = got["station"]
    assert station["label"] == "Kaivokatu 1, 00100 Helsinki"
    # the suburb the station lies in; the Helsinki extract has no county boundaries
    assert (station["district"], station["county"]) == ("Kluuvi", "")
    assert station["resultType"] == "houseNumber"
    assert 0 < float(station["queryScore"]) <= 1
    assert got["nothing"]["seqLength"] == "0"
    assert got["nothing"]["label"] == got["nothing"]["positionLatitude"] == ""


@SQLITE_ONLY
def test_reverse_geocode_and_lookup_match_the_native_api(
    here: HereClient, native: httpx.Client
) -> None:
    reverse = here.run(
        "revgeocode",
        "recId|at|limit|lang\nstation|60.1713198,24.9414566|1|\nsea|0,-30|1|\n"
        "swedish|60.1713198,24.9414566|1|sv-FI\n",
        outputColumns="position|title|id|resultType|distance|street|district|city",
    )
    expected = _best(
        native_results(
            native, "reverse_geocode", b"recId,lat,lon\nstation,60.1713198,24.9414566\nsea,0,-30\n"
        )
    )
    got = _best(reverse)
    assert got["station"]["title"] == expected["station"]["label"] == "Kaivokatu 1, 00100 Helsinki"
    assert got["station"]["id"] == expected["station"]["ref_id"]
    assert got["station"]["distance"] == str(round(float(expected["station"]["distance_m"])))
    assert got["sea"]["seqLength"] == "0"
    # the names the map has in Swedish (name:sv), the rest as they are
    assert (got["swedish"]["title"], got["swedish"]["street"]) == (
        "Brunnsgatan 1, 00100 Helsingfors",
        "Brunnsgatan",
    )
    assert (got["swedish"]["district"], got["swedish"]["city"]) == ("Gloet", "Helsingfors")
    assert got["swedish"]["id"] == got["station"]["id"]

    lookup = here.run(
        "lookup", "recId|id\naddr|osm:node/25389429\n", outputColumns="recId|position|title"
    )
    expected_lookup = native_results(native, "lookup", b"recId,id\naddr,osm:node/25389429\n")
    assert lookup == [
        {
            "recId": "addr",
            "seqNumber": want["seqNumber"],
            "seqLength": want["seqLength"],
            "positionLatitude": want["lat"],
            "positionLongitude": want["lon"],
            "title": want["label"],
        }
        for want in expected_lookup
    ]
    assert lookup[0]["title"] == "Kaivokatu 1, 00100 Helsinki"


@SQLITE_ONLY
def test_job_life_and_documented_fields(here: HereClient, compat_url: str) -> None:
    auth = {"apiKey": KEY}
    job = here.submit(
        "lookup",
        "osm:node/25389429\n\nosm:node/0\n",
        inputColumns="id",
        startJob="false",
        tag="compat-life",
        outputType="jsonl",
    )
    assert job["id"].startswith("JOB-")
    assert job["status"] == "submitted"
    assert job["serviceHrn"] == HRN.format("lookup")
    assert job["tag"] == "compat-life"
    detail = httpx.get(job["href"], params=auth).json()
    assert set(detail) >= {
        "id", "serviceHrn", "tag", "billingTags", "status", "href", "created", "started",
        "ended", "records", "resultsHref", "errorsHref", "outputType", "notificationIds",
    }  # fmt: skip
    assert set(detail["records"]) == {
        "total", "valid", "invalid", "processed", "pending", "succeeded", "failed",
    }  # fmt: skip
    not_yet = httpx.get(detail["resultsHref"], params=auth)
    assert not_yet.status_code == 404
    assert not_yet.json()["code"] == "E6004041"
    started = httpx.put(f"{job['href']}/start", params=auth)
    assert started.status_code == 200
    assert started.json()["status"] in ("queued", "inProgress", "completed")
    assert httpx.put(f"{job['href']}/start", params=auth).status_code == 200
    done = here.wait(job)
    assert done["records"]["total"] == 2
    assert done["records"]["succeeded"] == 2
    assert done["ended"] is not None
    answer = httpx.get(done["resultsHref"], params=auth)
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="{job["id"]}-results.txt"'
    )
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert [row["recId"] for row in rows if row["seqNumber"] in (0, 1, "0", "1")] == ["1", "2"]
    assert httpx.get(done["errorsHref"], params=auth).status_code == 204

    listed = httpx.get(
        f"{compat_url}/v7/batch/jobs", params={**auth, "tag": "compat-life", "limit": 5}
    ).json()
    assert listed["limit"] == 5
    assert listed["count"] == 1
    assert listed["items"][0]["id"] == job["id"]
    completed = httpx.get(
        f"{compat_url}/v7/batch/jobs", params={**auth, "status": "completed", "tag": "compat-life"}
    ).json()
    assert completed["count"] == 1
    deleted = httpx.request(
        "DELETE", f"{compat_url}/v7/batch/jobs", params={**auth, "tag": "compat-life"}
    ).json()
    assert deleted == {"total": 1, "jobIds": [job["id"]]}
    assert httpx.get(job["href"], params=auth).status_code == 404


@SQLITE_ONLY
def test_bad_records_go_to_the_error_stream(here: HereClient) -> None:
    job = here.wait(
        here.submit(
            "revgeocode",
            "recId;at\ngood;60.1713198,24.9414566\nfar;95,10\nshort\n",
            inputDelimiter=";",
            outputDelimiter=",",
            outputColumns="title",
        )
    )
    assert job["records"]["failed"] == 2
    errors = httpx.get(job["errorsHref"], params={"apiKey": KEY}).text.splitlines()
    assert errors[0] == "recId,errorCode,errorMessage,input"
    assert {line.split(",")[0] for line in errors[1:]} == {"far", "short"}
    results = httpx.get(job["resultsHref"], params={"apiKey": KEY}).text.splitlines()
    assert results[0] == "recId,seqNumber,seqLength,title"
    assert results[1].startswith("good,1,1,")


def test_auth_errors_and_operations(compat_url: str) -> None:
    jobs = f"{compat_url}/v7/batch/jobs"
    missing = httpx.get(jobs)
    assert missing.status_code == 401
    assert missing.json()["error"] == "Unauthorized"
    assert "error_description" in missing.json()
    assert httpx.get(jobs, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(jobs, params={"apiKey": "schlüssel✓"}).status_code == 401
    unknown = httpx.get(
        f"{jobs}/JOB-3fa85f64-5717-4562-b3fc-2c963f66afa6",
        params={"apiKey": KEY},
        headers={"X-Request-ID": "req-1"},
    )
    assert unknown.status_code == 404
    assert unknown.headers["x-request-id"] == "req-1"
    body = unknown.json()
    assert set(body) == {"title", "status", "code", "cause", "action", "correlationId"}
    assert (body["title"], body["status"], body["code"]) == ("Job not found", 404, "E6004041")
    bad = httpx.post(
        jobs, params={"apiKey": KEY, "serviceHrn": "hrn:nope"}, content=b"recId|q\n1|x\n"
    )
    assert bad.status_code == 400
    assert "serviceHrn" in bad.json()["cause"]
    assert httpx.get(f"{compat_url}/v7/health").json() == {"status": "ok"}
    version = httpx.get(f"{compat_url}/v7/version").json()
    assert version["apiVersion"] == "v7"
    assert version["dataVersions"][0]["version"]
    paths = httpx.get(f"{compat_url}/v7/openapi").json()["paths"]
    assert "/v7/batch/jobs/{job_id}/start" in paths


def test_list_and_delete_by_status_and_tag(here: HereClient, compat_url: str) -> None:
    auth = {"apiKey": KEY}
    jobs = f"{compat_url}/v7/batch/jobs"
    tagged = [
        here.submit("lookup", "id\nosm:node/1\n", startJob="false", tag="by-tag")["id"]
        for _ in range(3)
    ]
    here.submit("lookup", "id\nosm:node/1\n", startJob="false", tag="other-tag")
    httpx.put(f"{jobs}/{tagged[0]}/start", params=auth)
    httpx.put(f"{jobs}/{tagged[0]}/stop", params=auth)
    stopped = httpx.get(jobs, params={**auth, "tag": "by-tag", "status": "stopped"}).json()
    if stopped["count"]:  # unless it finished before the stop
        assert [item["id"] for item in stopped["items"]] == [tagged[0]]
    page = httpx.get(jobs, params={**auth, "tag": "by-tag", "status": "submitted", "limit": 1})
    assert page.json()["count"] == 1
    assert page.json()["items"][0]["id"] == tagged[2]
    second = httpx.get(
        jobs, params={**auth, "tag": "by-tag", "status": "submitted", "limit": 1, "offset": 1}
    ).json()
    assert [item["id"] for item in second["items"]] == [tagged[1]]
    assert httpx.get(jobs, params={**auth, "status": "asleep"}).status_code == 400
    assert httpx.delete(jobs, params=auth).status_code == 400
    deleted = httpx.delete(jobs, params={**auth, "tag": "by-tag", "status": "submitted"}).json()
    assert sorted(deleted["jobIds"]) == sorted(tagged[1:])
    assert deleted["total"] == 2
    left = httpx.get(jobs, params={**auth, "tag": "by-tag"}).json()
    assert [item["id"] for item in left["items"]] == [tagged[0]]


def test_jobs_are_the_tenants_own(here: HereClient, compat_url: str) -> None:
    job = here.submit("lookup", "id\nosm:node/25389429\n", startJob="false")
    assert httpx.get(job["href"], params={"apiKey": OTHER_KEY}).status_code == 404
    assert httpx.get(job["href"], params={"apiKey": KEY}).status_code == 200
    native_id = job["id"].removeprefix("JOB-")
    native = httpx.get(f"{compat_url}/v1/jobs/{native_id}", headers={"X-API-Key": KEY})
    assert native.json()["type"] == "lookup"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from serve_receiver(name="127.0.0.1")


def _signed(received: Received, secret: str) -> bool:
    """The Standard Webhooks signature of a GET: over the id, the timestamp and no body."""
    headers = received.headers
    moment = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(signing_key(secret)).sign(headers["webhook-id"], moment, "")
    return bool(headers["webhook-signature"] == expected)


@SQLITE_ONLY
def test_notifications_call_back_when_a_job_ends(
    here: HereClient, compat_url: str, hook: Receiver
) -> None:
    base = f"{compat_url}/v7/batch/notifications"
    auth = {"apiKey": KEY}
    template = hook.url + "/${JOB_ID}?status=${JOB_STATUS}&ok=${JOB_RECORDS_SUCCEEDED}"
    created = httpx.post(base, params=auth, json={"type": "webHook", "config": {"url": template}})
    assert created.status_code == 201, created.text
    notification = created.json()
    assert notification["id"].startswith("NOTIFICATION-")
    assert notification["config"] == {"url": template}
    assert notification["lastUsedTime"] is None
    secret = notification.pop("secret")
    shown = httpx.get(f"{base}/{notification['id']}", params=auth).json()
    assert shown == notification  # the secret is shown once
    assert notification["id"] in {n["id"] for n in httpx.get(base, params=auth).json()}
    assert (
        httpx.get(f"{base}/{notification['id']}", params={"apiKey": OTHER_KEY}).status_code == 404
    )

    assert httpx.get(f"{base}/{notification['id']}/test", params=auth).status_code == 204
    [trial] = hook.requests
    assert trial.path == f"/hook/JOB-{uuid.UUID(int=0)}?status=completed&ok=0"
    assert _signed(trial, secret)

    job = here.submit(
        "lookup", "recId|id\na|osm:node/25389429\n", notificationIds=notification["id"]
    )
    done = here.wait(job)
    assert done["notificationIds"] == [notification["id"]]
    hook.wait_for(lambda: len(hook.requests) == 2)
    called = hook.requests[1]
    assert called.path == f"/hook/{job['id']}?status=completed&ok=1"
    assert _signed(called, secret)
    used = httpx.get(f"{base}/{notification['id']}", params=auth).json()
    assert used["lastUsedTime"] is not None

    unknown = httpx.post(
        f"{compat_url}/v7/batch/jobs",
        params={
            **auth,
            "serviceHrn": HRN.format("lookup"),
            "notificationIds": f"NOTIFICATION-{uuid.uuid4()}",
        },
        content=b"recId|id\na|osm:node/1\n",
    ).json()
    assert unknown["status"] == 400
    assert "notificationIds" in unknown["cause"]
    bad = httpx.post(
        base, params=auth, json={"type": "webHook", "config": {"url": hook.url + "?x=${NOPE}"}}
    )
    assert bad.status_code == 400
    replaced = httpx.put(
        f"{base}/{notification['id']}",
        params=auth,
        json={"type": "webHook", "config": {"url": hook.url + "?id=${JOB_ID}"}},
    )
    assert replaced.json()["config"]["url"].endswith("?id=${JOB_ID}")
    assert httpx.delete(f"{base}/{notification['id']}", params=auth).status_code == 204
    assert httpx.get(f"{base}/{notification['id']}", params=auth).status_code == 404


@SQLITE_ONLY
def test_a_record_names_its_area_and_how_many_answers(here: HereClient) -> None:
    rows = here.run(
        "geocode",
        "recId|searchText|in|limit\nfi|Helsinki|countryCode:FIN|3\nfr|Helsinki|countryCode:FRA|3\n",
        outputColumns="position|countryName",
    )
    finnish = [row for row in rows if row["recId"] == "fi"]
    assert 1 < len(finnish) <= 3
    assert [row["seqNumber"] for row in finnish] == [str(n) for n in range(1, len(finnish) + 1)]
    assert {row["seqLength"] for row in finnish} == {str(len(finnish))}
    assert {row["countryName"] for row in finnish} == {"FI"}
    [french] = [row for row in rows if row["recId"] == "fr"]
    assert french["seqLength"] == "0"
    reverse = here.run(
        "revgeocode", "recId|at|limit\ns|60.1713198,24.9414566|4\n", outputColumns="title"
    )
    assert [row["seqNumber"] for row in reverse] == ["1", "2", "3", "4"]
    assert reverse[0]["title"] == "Kaivokatu 1, 00100 Helsinki"
