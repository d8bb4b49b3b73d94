"""Keys, roles and tenants over real HTTP, walked over every operation of ``/openapi.json``.

The walk is generic, so operations added later are covered without naming them here: another
tenant's key gets 404 for a job exactly as for an unknown id, a ``read`` key gets 403 for every
operation that changes something, no key gets 401 for everything but the public probes.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from geobatch.api.contract import SAFE_POSTS
from geobatch.config import Settings
from geobatch.jobs.keys import Role
from geobatch.jobs.tables import api_keys
from geobatch.reference import Release
from tests.api.live import LiveServer, live_server

ENV_KEY = "environment-key-of-tenant-a"
CSV = b"recId,lat,lon\n1,60.17,24.94\n2,60.18,24.95\n"
SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="


CLIENT = httpx.Client(timeout=30)


class Keys:
    def __init__(self, live: LiveServer) -> None:
        store = live.platform.keys
        self.admin = store.create("tenant-a", Role.ADMIN, "admin")[1]
        self.member = store.create("tenant-a", Role.MEMBER, "member")[1]
        self.read = store.create("tenant-a", Role.READ, "read")[1]
        self.other = store.create("tenant-b", Role.ADMIN, "other tenant")[1]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, releases_root: Path, helsinki: Release
) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("access"),
        releases_dir=releases_root,
        api_keys={ENV_KEY: "tenant-a"},
        url_allowlist=["127.0.0.1/32"],
    )
    with live_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def keys(server: LiveServer) -> Keys:
    return Keys(server)


def _create(server: LiveServer, key: str, **params: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/v1/jobs",
        params={"type": "reverse_geocode", "start": "false", **params},
        content=CSV,
        headers={"X-API-Key": key, "Content-Type": "text/csv"},
    )
    assert reply.status_code == 201, reply.text
    job: dict[str, Any] = reply.json()
    return job


@pytest.fixture(scope="module")
def job_id(server: LiveServer, keys: Keys) -> str:
    return str(_create(server, keys.member)["id"])


def _operations(server: LiveServer) -> list[tuple[str, str]]:
    document = httpx.get(f"{server.url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security") != []
    ]


def _call(
    server: LiveServer, method: str, path: str, key: str | None, ident: str
) -> httpx.Response:
    """One request with an empty JSON body where one may go; an event stream is not read."""
    url = server.url + re.sub(r"\{[^}]+\}", ident, path)
    # both places every API reads a key from (some read only one of them)
    headers = {"X-API-Key": key, "Authorization": f"Bearer {key}"} if key else {}
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    with CLIENT.stream(method, url, headers=headers, **body) as reply:  # type: ignore[arg-type]
        if not reply.headers.get("content-type", "").startswith("text/event-stream"):
            reply.read()
    return reply


def _assert_native_problem(path: str, reply: httpx.Response) -> None:
    """The native API answers problem+json; a compatible API answers in its own error shape."""
    if path.startswith("/v1/"):
        assert reply.headers["content-type"] == "application/problem+json", path


def _anonymous(text: str) -> str:
    """The answer with every UUID (job ids, correlation ids) blanked out."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


def test_every_operation_needs_a_key(server: LiveServer, keys: Keys, job_id: str) -> None:
    for method, path in _operations(server):
        for key in (None, "not-a-key", keys.admin[:-1]):
            reply = _call(server, method, path, key, job_id)
            assert reply.status_code == 401, (method, path, reply.text)
            _assert_native_problem(path, reply)
            if key:
                assert key not in reply.text


def test_another_tenants_job_is_an_unknown_id(server: LiveServer, keys: Keys, job_id: str) -> None:
    templated = [(m, p) for m, p in _operations(server) if "{" in p]
    assert templated
    for method, path in templated:
        theirs = _call(server, method, path, keys.other, job_id)
        unknown = _call(server, method, path, keys.other, str(uuid.uuid4()))
        assert theirs.status_code == unknown.status_code, (method, path, theirs.text)
        assert _anonymous(theirs.text) == _anonymous(unknown.text), (method, path)
    # and the lists of the other tenant never mention the job
    for method, path in _operations(server):
        if method == "GET" and "{" not in path:
            assert job_id not in _call(server, method, path, keys.other, job_id).text, path


def test_a_read_key_reads_but_changes_nothing(server: LiveServer, keys: Keys, job_id: str) -> None:
    for method, path in _operations(server):
        reply = _call(server, method, path, keys.read, job_id)
        changes = method not in ("GET", "HEAD") and path not in SAFE_POSTS
        if changes or path == "/v1/audit":
            assert reply.status_code == 403, (method, path, reply.text)
            _assert_native_problem(path, reply)
        else:
            assert reply.status_code != 403, (method, path)
    assert (
        httpx.get(f"{server.url}/v1/jobs/{job_id}", headers={"X-API-Key": keys.read}).json()[
            "status"
        ]
        == "created"
    )


def test_both_key_headers_and_environment_keys_work(server: LiveServer, keys: Keys) -> None:
    for headers in (
        {"X-API-Key": keys.member},
        {"Authorization": f"Bearer {keys.member}"},
        {"X-API-Key": ENV_KEY},
    ):
        assert httpx.get(f"{server.url}/v1/jobs", headers=headers).status_code == 200


def test_keys_are_stored_hashed_and_revoked_keys_stop_working(server: LiveServer) -> None:
    store = server.platform.keys
    record, key = store.create("tenant-c", Role.MEMBER)
    assert httpx.get(f"{server.url}/v1/jobs", headers={"X-API-Key": key}).status_code == 200
    with server.platform.database.read_engine.connect() as connection:
        rows = connection.execute(sa.select(api_keys)).all()
    assert all(key not in str(tuple(row)) for row in rows)
    assert [k.prefix for k in store.list() if k.id == record.id] == [key[:10]]
    store.revoke(record.prefix)
    assert httpx.get(f"{server.url}/v1/jobs", headers={"X-API-Key": key}).status_code == 401


def test_the_audit_log_tells_who_did_what(server: LiveServer, keys: Keys) -> None:
    member_id = next(k.id for k in server.platform.keys.list() if k.name == "member")
    created = _create(server, keys.member)["id"]
    headers = {"X-API-Key": keys.member}
    assert httpx.post(f"{server.url}/v1/jobs/{created}/cancel", headers=headers).status_code == 200
    assert httpx.delete(f"{server.url}/v1/jobs/{created}", headers=headers).status_code == 204
    assert httpx.get(f"{server.url}/v1/audit", headers=headers).status_code == 403
    entries = httpx.get(f"{server.url}/v1/audit", headers={"X-API-Key": keys.admin}).json()
    mine = [(e["action"], e["actor"]) for e in entries["entries"] if e["job_id"] == created]
    assert mine == [("delete", member_id), ("cancel", member_id), ("create", member_id)]
    others = httpx.get(f"{server.url}/v1/audit", headers={"X-API-Key": keys.other}).json()
    assert all(e["job_id"] != created for e in others["entries"])


def test_secrets_never_come_back(
    server: LiveServer, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    callback = f'{{"url": "http://127.0.0.1:9/hook", "secret": "{SECRET}"}}'
    reply = httpx.post(
        f"{server.url}/v1/jobs",
        params={"type": "reverse_geocode", "start": "false"},
        files={"file": ("points.csv", CSV, "text/csv")},
        data={"type": "reverse_geocode", "start": "false", "callback": callback},
        headers={"X-API-Key": keys.member},
    )
    assert reply.status_code == 201, reply.text
    job = reply.json()
    headers = {"X-API-Key": keys.member}
    answers = [
        reply.text,
        httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=headers).text,
        httpx.get(f"{server.url}/v1/jobs", headers=headers).text,
        httpx.post(
            f"{server.url}/v1/jobs/statuses", json={"job_ids": [job["id"]]}, headers=headers
        ).text,
        httpx.post(
            f"{server.url}/v1/jobs",
            json={
                "type": "reverse_geocode",
                "input": {"url": "http://127.0.0.1:9/in.csv"},
                "callback": {"url": "ftp://nowhere", "secret": SECRET},
            },
            headers=headers,
        ).text,
        httpx.get(f"{server.url}/v1/releases", headers=headers).text,
    ]
    for text in answers:
        assert SECRET not in text
        assert keys.member not in text
    assert SECRET not in caplog.text
    assert keys.member not in caplog.text


def test_release_answers_name_no_server_paths(server: LiveServer, keys: Keys) -> None:
    releases = httpx.get(f"{server.url}/v1/releases", headers={"X-API-Key": keys.read}).json()[
        "releases"
    ]
    sources = [source for release in releases for source in release["sources"]]
    assert sources
    for source in sources:
        assert "/" not in source["path"], source
        assert "\\" not in source["path"], source
    assert str(server.platform.settings.releases_path) not in str(releases)
