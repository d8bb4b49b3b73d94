"""Hostile uploads are refused early, with a specific problem, and leave no job behind."""

from __future__ import annotations

import io
import json
import resource
import time
import zlib
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geobatch.config import Settings
from tests.api.live import LiveServer, live_server
from tests.e2e.helpers import VALIDATE_PARAMS

GIB = 1024**3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("input-limits"),
        max_line_bytes=2000,
        max_field_bytes=300,
        max_columns=6,
        max_nesting_depth=10,
        max_json_body_bytes=4096,
        max_decompressed_bytes=4 << 20,
    )
    with live_server(settings) as live:
        yield live


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the default limits."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path_factory.mktemp("default-limits")
    )
    with live_server(settings) as live:
        yield live


def _upload(
    server: LiveServer, body: bytes | Iterator[bytes], media_type: str, gzip: bool = False
) -> httpx.Response:
    headers = {"Content-Type": media_type}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return httpx.post(
        f"{server.url}/v1/jobs",
        params=VALIDATE_PARAMS,
        content=body,
        headers=headers,
        timeout=120,
    )


def _refused(reply: httpx.Response, status: int, code: str, server: LiveServer) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == code
    assert server.platform.storage.list("jobs") == []
    assert httpx.get(f"{server.url}/v1/jobs").json()["jobs"] == []


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def _zeros_bomb(total: int) -> tuple[bytes, int]:
    """A gzip stream of ``total`` zero bytes: one member of 64 MiB of zeros, repeated."""
    member = _gzip(bytes(64 << 20))
    return member, total // (64 << 20)


def test_a_gzip_bomb_is_refused_in_seconds_with_flat_memory(default_server: LiveServer) -> None:
    member, copies = _zeros_bomb(10 * GIB)
    assert len(member) * copies < 11 << 20  # about 10 MiB on the wire, 10 GiB inflated
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    for media_type, status, code in (
        ("text/csv", 422, "field_too_large"),
        ("application/geo+json", 413, "compression_ratio_too_high"),
    ):
        reply = _upload(default_server, (member for _ in range(copies)), media_type, gzip=True)
        _refused(reply, status, code, default_server)
    assert time.monotonic() - started < 20
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024


def test_decompressed_size_is_limited(server: LiveServer) -> None:
    rows = b"".join(b"%d,60.%06d,24.%06d\n" % (i, i, i * 7 % 999_983) for i in range(300_000))
    body = _gzip(b"recId,lat,lon\n" + rows)
    _refused(_upload(server, body, "text/csv", gzip=True), 413, "decompressed_too_large", server)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"recId,lat,lon\n1,60.1,24.9," + b"x" * 2500 + b"\n", "line_too_long"),
        (b'recId,lat,lon,note\n1,60.1,24.9,"' + b"y" * 400 + b'"\n', "field_too_large"),
        (b"recId,lat,lon,a,b,c,d\n1,60.1,24.9,1,2,3,4\n", "too_many_columns"),
    ],
)
def test_csv_shape_is_limited(server: LiveServer, body: bytes, code: str) -> None:
    _refused(_upload(server, body, "text/csv"), 422, code, server)


def test_geojson_nesting_is_limited(server: LiveServer) -> None:
    deep: object = "deep"
    for _ in range(11):
        deep = [deep]
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"recId": "1", "note": '[[[{{"quoted brackets do not count'},
                "geometry": {"type": "Point", "coordinates": [24.9, 60.1]},
            },
            {"type": "Feature", "properties": {"a": deep}, "geometry": None},
        ],
    }
    body = json.dumps(document).encode()
    _refused(_upload(server, body, "application/geo+json"), 422, "too_deeply_nested", server)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_parquet_schema_is_checked(server: LiveServer) -> None:
    wide = pa.table({f"c{i}": [1.0] for i in range(7)} | {"lat": [60.1], "lon": [24.9]})
    _refused(
        _upload(server, _parquet(wide), "application/vnd.apache.parquet"),
        422,
        "too_many_columns",
        server,
    )
    nested_type: pa.DataType = pa.float64()
    for _ in range(12):
        nested_type = pa.list_(nested_type)
    nested = pa.table({"lat": [60.1], "lon": [24.9], "n": pa.array([None], type=nested_type)})
    _refused(
        _upload(server, _parquet(nested), "application/vnd.apache.parquet"),
        422,
        "too_deeply_nested",
        server,
    )
    lying = _parquet(pa.table({"lat": [60.1], "lon": [24.9]}))
    lying = lying[:-8] + (2**31).to_bytes(4, "little") + b"PAR1"
    _refused(_upload(server, lying, "application/vnd.apache.parquet"), 422, "bad_parquet", server)


def test_a_json_request_body_is_limited(server: LiveServer) -> None:
    body = {
        "type": "validate",
        "input": {"url": "https://example.org/in.csv"},
        "metadata": {"note": "z" * 5000},
    }
    reply = httpx.post(f"{server.url}/v1/jobs", json=body)
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
