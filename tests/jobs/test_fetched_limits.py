"""An input fetched from a URL is held to the limits of an upload: column count, Parquet
schema, line and field lengths. The job fails with the code an upload is refused with, and
nothing it fetched or split is left in storage."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.jobs.test_ssrf import Server

from geobatch.config import Settings
from geobatch.io.storage import BlobStorage
from geobatch.jobs import layout
from geobatch.jobs.tasks import SplitTask, input_limits, split_input


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _nested() -> bytes:
    kind: pa.DataType = pa.float64()
    for _ in range(12):
        kind = pa.list_(kind)
    return _parquet(pa.table({"lat": [60.1], "lon": [24.9], "n": pa.array([None], type=kind)}))


def _lying_footer() -> bytes:
    honest = _parquet(pa.table({"lat": [60.1], "lon": [24.9]}))
    return honest[:-8] + (2**31).to_bytes(4, "little") + b"PAR1"


WIDE_PARQUET = _parquet(
    pa.table({f"c{i}": [1.0] for i in range(7)} | {"lat": [60.1], "lon": [24.9]})
)
# the same files and codes as tests/api/test_input_limits.py refuses as uploads
BAD_FILES = [
    ("csv", b"recId,lat,lon,a,b,c,d\n1,60.1,24.9,1,2,3,4\n", "too_many_columns"),
    ("csv", b"recId,lat,lon\n1,60.1,24.9," + b"x" * 2500 + b"\n", "line_too_long"),
    ("geojson", b'{"type":"FeatureCollection","features":[' + b"[" * 12, "too_deeply_nested"),
    ("parquet", WIDE_PARQUET, "too_many_columns"),
    ("parquet", _nested(), "too_deeply_nested"),
    ("parquet", _lying_footer(), "bad_parquet"),
]


@pytest.mark.parametrize(
    ("fmt", "body", "code"), BAD_FILES, ids=lambda v: "" if isinstance(v, bytes) else str(v)
)
def test_a_fetched_input_fails_its_job_like_an_upload(
    fmt: str, body: bytes, code: str, tmp_path: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        url_allowlist=["127.0.0.1/32"],
        max_line_bytes=2000,
        max_columns=6,
        max_nesting_depth=10,
    )
    server = Server("127.0.0.1")
    server.body = body
    job_id = str(uuid.uuid4())
    storage_url = str(tmp_path / "storage")
    task = SplitTask(
        job_id=job_id,
        job_type="validate",
        options={"target_type": "reverse_geocode"},
        input={"url": server.url, "format": fmt},
        storage_url=storage_url,
        chunk_size=100,
        url_allowlist=tuple(settings.url_allowlist),
        input_limits=input_limits(settings),
    )
    try:
        outcome = split_input(task)
    finally:
        server.close()
    assert outcome.error_code == code, outcome
    assert server.requests == ["GET /data.csv"]
    assert list(BlobStorage(storage_url).list(layout.job_prefix(job_id))) == []


def test_a_fetched_input_within_the_limits_is_split(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, url_allowlist=["127.0.0.1/32"], max_columns=3
    )
    server = Server("127.0.0.1")
    server.body = b"recId,lat,lon\n1,60.1,24.9\n2,60.2,24.8\n"
    task = SplitTask(
        job_id=str(uuid.uuid4()),
        job_type="validate",
        options={"target_type": "reverse_geocode"},
        input={"url": server.url, "format": "csv"},
        storage_url=str(tmp_path / "storage"),
        chunk_size=100,
        url_allowlist=tuple(settings.url_allowlist),
        input_limits=input_limits(settings),
    )
    try:
        outcome = split_input(task)
    finally:
        server.close()
    assert outcome.error_code is None, outcome
    assert outcome.sizes == [2]
