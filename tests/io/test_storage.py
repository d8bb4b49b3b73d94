"""Blob storage on a local folder and on S3 (moto's server): the same behaviour on both."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from geobatch.io.storage import BlobStorage
from tests.s3 import FaultyProxy, create_bucket

MIB = 2**20
OUTAGE_SECONDS = 1.5


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStorage:
    if request.param == "local":
        return BlobStorage(str(tmp_path / "storage"))
    return BlobStorage(request.getfixturevalue("s3_url"))


def test_blobs_round_trip_list_in_key_order_and_delete_by_prefix(storage: BlobStorage) -> None:
    for seq in (10, 2, 0):
        storage.write_bytes(f"jobs/a/parts/{seq:08d}.parquet", f"part {seq}".encode())
    storage.write_bytes("jobs/b/input", b"other job")

    assert storage.list("jobs/a") == [f"jobs/a/parts/{seq:08d}.parquet" for seq in (0, 2, 10)]
    with storage.open_read("jobs/a/parts/00000002.parquet") as source:
        assert source.read() == b"part 2"
    assert storage.size("jobs/b/input") == len(b"other job")

    storage.write_bytes("jobs/a/parts/00000002.parquet", b"re-run")  # a chunk that ran again
    with storage.open_read("jobs/a/parts/00000002.parquet") as source:
        assert source.read() == b"re-run"

    storage.delete_prefix("jobs/a")
    assert storage.list("jobs/a") == []
    assert storage.exists("jobs/b/input")


def test_a_failed_write_leaves_no_blob_and_keeps_the_old_one(storage: BlobStorage) -> None:
    storage.write_bytes("results/part", b"first run")

    def die_while_writing(key: str, data: bytes) -> None:
        with storage.open_write(key) as sink:
            sink.write(data)
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        die_while_writing("results/part", b"half of a second run")
    with pytest.raises(RuntimeError):
        die_while_writing("results/new", b"x" * 100)

    with storage.open_read("results/part") as source:
        assert source.read() == b"first run"
    assert not storage.exists("results/new")
    assert storage.list("results") == ["results/part"]


def test_large_blobs_go_up_in_parts_and_come_back_whole(s3_url: str) -> None:
    storage = BlobStorage(s3_url, default_block_size=5 * MIB)
    data = os.urandom(12 * MIB)
    with storage.open_write("jobs/j/input") as sink:
        for offset in range(0, len(data), 64 * 1024):  # as an upload streams in
            sink.write(data[offset : offset + 64 * 1024])

    etag = storage._fs.info(storage.path("jobs/j/input"))["ETag"]
    assert etag.strip('"').endswith("-3")  # a multipart upload of three parts
    with storage.open_read("jobs/j/input") as source:
        assert source.read() == data


def test_a_blob_written_by_another_process_is_listed_at_once(s3_endpoint: str, s3_url: str) -> None:
    storage = BlobStorage(s3_url)
    storage.write_bytes("jobs/j/results/00000000.parquet", b"0")
    assert storage.list("jobs/j/results") == ["jobs/j/results/00000000.parquet"]

    bucket_path = s3_url.removeprefix("s3://")
    httpx.put(
        f"{s3_endpoint}/{bucket_path}/jobs/j/results/00000001.parquet", content=b"1"
    ).raise_for_status()

    assert storage.list("jobs/j/results") == [
        "jobs/j/results/00000000.parquet",
        "jobs/j/results/00000001.parquet",
    ]
    assert storage.exists("jobs/j/results/00000001.parquet")


def test_an_endpoint_answering_503_for_a_while_is_ridden_out(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = create_bucket(s3_endpoint)
    with FaultyProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        storage = BlobStorage(f"s3://{bucket}/geobatch", skip_instance_cache=True)
        storage.write_bytes("before", b"written before the outage")
        started = time.monotonic()
        writer = threading.Thread(
            target=storage.write_bytes, args=("during", b"written during the outage")
        )
        with proxy.outage(at_least=OUTAGE_SECONDS, refusals=1):
            writer.start()
        writer.join(timeout=60)
        with storage.open_read("before") as source:
            read_back = source.read()
        assert proxy.refused > 0
        assert read_back == b"written before the outage"
        assert time.monotonic() - started < 30
        assert BlobStorage(f"s3://{bucket}/geobatch", skip_instance_cache=True).exists("during")
