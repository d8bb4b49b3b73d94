"""Keys, roles and tenants over real HTTP, walked over every operation of ``/openapi.json``.

The walk is generic, so operations added later are covered without naming them here: another
tenant's key gets 404 for a job, a stored file or a storage exactly as for an unknown id, a
``read`` key gets 403 for every operation that changes something, no key gets 401 for
everything but the public probes, and no answer of any operation shows a secret or a path of
the server.
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
from tests.e2e.test_road_match_job import _geojson, _roads

ENV_KEY = "environment-key-of-tenant-a"
CSV = b"recId,lat,lon\n1,60.17,24.94\n2,60.18,24.95\n"
SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="


CLIENT = httpx.Client(timeout=30)
GEM = "/maps/orbis/platform/gem"


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
    """Tenant A's job, with a callback whose secret must never come back."""
    callback = f'{{"url": "http://127.0.0.1:9/hook", "secret": "{SECRET}"}}'
    return str(_create(server, keys.member, callback=callback)["id"])


@pytest.fixture(scope="module")
def gem_job_id(server: LiveServer, keys: Keys, helsinki: Release) -> str:
    """Tenant A's GEM job; its storage ``s<id>`` holds the file ``f<id>.geojson`` (see
    ``_values``), so one id names the job, the storage and the file of a GEM path."""
    headers = {"tomtom-api-key": keys.member}
    roads = _geojson(_roads(helsinki, count=2), bad=False)
    put = httpx.put(
        f"{server.url}{GEM}/storages/first/files/roads.geojson", content=roads, headers=headers
    )
    assert put.status_code == 201, put.text
    body = {"storageId": "first", "inputFileName": "roads.geojson"}
    created = httpx.post(f"{server.url}{GEM}/jobs", json=body, headers=headers)
    assert created.status_code == 201, created.text
    found = httpx.get(f"{server.url}{GEM}/jobs", headers=headers).json()["jobs"]
    gem_id = str(found[0]["jobRunId"])
    values = _values(GEM + "/storages/{storage_id}/files/{file_name}", gem_id, gem_id)
    path = f"/storages/{values['storage_id']}/files/{values['file_name']}"
    assert httpx.put(f"{server.url}{GEM}{path}", content=roads, headers=headers).status_code == 201
    return gem_id


def _values(path: str, job_id: str, gem_job_id: str) -> dict[str, str]:
    """What fills each parameter of ``path``: a job id (GEM's own job on GEM paths), and for
    GEM's storage paths a storage and file named after that id; a process and a release that
    exist (they belong to no tenant)."""
    ident = gem_job_id if path.startswith(GEM) else job_id
    return {
        "job_id": ident,
        "storage_id": f"s{ident}",
        "file_name": f"f{ident}.geojson",
        "process_id": "reverse_geocode",
        "release_id": "default",
    }


def _operations(server: LiveServer) -> list[tuple[str, str]]:
    document = httpx.get(f"{server.url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security") != []
    ]


def _call(
    server: LiveServer, method: str, path: str, key: str | None, ident: str, gem: str | None = None
) -> httpx.Response:
    """One request with an empty JSON body where one may go; an event stream is not read.

    Each path parameter gets its value from ``_values`` (``ident`` for the job, ``gem`` for a
    GEM job: the same unknown id by default); any other (a process, a release) gets ``ident``.
    """
    values = _values(path, ident, gem or ident)
    url = server.url + re.sub(r"\{([^}]+)\}", lambda m: values.get(m[1], ident), path)
    # every place the APIs read a key from (each reads one or two of them)
    headers = {"X-API-Key": key, "Authorization": f"Bearer {key}", "tomtom-api-key": key}
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    with CLIENT.stream(method, url, headers=headers if key else {}, **body) as reply:  # type: ignore[arg-type]
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


def test_another_tenants_job_is_an_unknown_id(
    server: LiveServer, keys: Keys, job_id: str, gem_job_id: str
) -> None:
    # reads first: tenant B's uploads below land in its own storage, which it may read then
    templated = sorted(
        ((m, p) for m, p in _operations(server) if "{" in p), key=lambda o: o[0] != "GET"
    )
    assert any(p.startswith(GEM) for _, p in templated)
    for method, path in templated:
        # tenant A sees its own (the ids are right) ...
        if method == "GET" and path.endswith(("{job_id}", "{file_name}", "/files")):
            mine = _call(server, method, path, keys.read, job_id, gem_job_id)
            assert mine.status_code == 200, (method, path, mine.text)
        # ... tenant B gets what it gets for ids that do not exist
        theirs = _call(server, method, path, keys.other, job_id, gem_job_id)
        unknown = _call(server, method, path, keys.other, str(uuid.uuid4()))
        assert theirs.status_code == unknown.status_code, (method, path, theirs.text)
        assert _anonymous(theirs.text) == _anonymous(unknown.text), (method, path)
    # and the lists of the other tenant never mention the jobs
    for method, path in _operations(server):
        if method == "GET" and "{" not in path:
            listed = _call(server, method, path, keys.other, job_id).text
            assert job_id not in listed, path
            assert gem_job_id not in listed, path


def test_no_answer_shows_a_secret_or_a_server_path(
    server: LiveServer,
    keys: Keys,
    job_id: str,
    gem_job_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every operation that reads, called by the owner of a job with a callback secret; and
    the bulk API refusing a callback, which must not repeat its secret."""
    caplog.set_level(logging.DEBUG)
    settings = server.platform.settings
    sources = [
        str(Path(source.path).parent)
        for manifest in server.platform.releases.list()
        for source in manifest.sources
    ]
    assert sources
    hidden = [SECRET, keys.member, keys.admin, str(settings.data_dir), str(settings.releases_path)]
    hidden += sources
    for method, path in _operations(server):
        if method != "GET":
            continue
        for key in (keys.member, keys.read):
            reply = _call(server, method, path, key, job_id, gem_job_id)
            streamed = reply.headers.get("content-type", "").startswith("text/event-stream")
            answer = str(reply.headers) + ("" if streamed else reply.text)
            for text in hidden:
                assert text not in answer, (method, path, text)
    refused = httpx.post(
        f"{server.url}/v1/bulk/jobs",
        json={
            "input": {"url": "https://files.example.org/in.csv"},
            "callback": {"url": "ftp://nowhere", "secret": SECRET},
        },
        headers={"X-API-Key": keys.member},
    )
    assert refused.status_code == 422, refused.text
    assert SECRET not in refused.text
    for secret in (SECRET, keys.member, keys.admin):  # logs may name server paths
        assert secret not in caplog.text


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
