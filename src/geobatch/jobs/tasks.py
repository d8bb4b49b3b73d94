"""The work that runs in executor processes: splitting an input and processing one chunk.

Both are top-level functions of picklable arguments, so any ``concurrent.futures.Executor``
(a local process pool or a Dask client's executor) can run them. Every output is written to a
fixed key, so a re-run replaces what an earlier, interrupted run left.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from geobatch.config import Settings
from geobatch.engines.result import ERROR_COLUMNS, EngineResult
from geobatch.engines.schemas import missing_columns
from geobatch.errors import ForbiddenUrl
from geobatch.io.inputs import InputError, InputFormat, InputSpec, iter_batches, preview
from geobatch.io.inputs.limits import InputLimits, UploadGuard, check_parquet
from geobatch.io.storage import BlobStorage
from geobatch.jobs import layout
from geobatch.jobs.models import ChunkCounts
from geobatch.jobs.releases import load_release
from geobatch.jobs.types import job_type
from geobatch.jobs.urls import check_and_pin


@functools.lru_cache(maxsize=8)
def _storage(url: str) -> BlobStorage:
    return BlobStorage(url)


def input_spec(job_input: dict[str, Any]) -> InputSpec:
    columns = job_input.get("input_columns")
    return InputSpec(
        format=InputFormat(job_input["format"]),
        gzip=bool(job_input.get("gzip", False)),
        delimiter=job_input.get("delimiter"),
        input_columns=tuple(columns) if columns else None,
        max_geometry_coordinates=int(job_input.get("max_geometry_coordinates") or 0),
    )


@dataclass(frozen=True, kw_only=True)
class SplitTask:
    job_id: str
    job_type: str
    options: dict[str, Any]
    input: dict[str, Any]
    storage_url: str
    chunk_size: int
    url_allowlist: tuple[str, ...] = ()
    max_download_bytes: int = 5 * 1024**3
    input_limits: InputLimits | None = None


@dataclass(frozen=True, kw_only=True)
class SplitOutcome:
    sizes: list[int] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None


def _download(task: SplitTask, storage: BlobStorage) -> None:
    import httpx  # only here: importing it loads its command line (rich, click) too

    request = check_and_pin(task.input["url"], task.url_allowlist, what="input URL")
    received = 0
    try:
        with (
            httpx.Client(follow_redirects=False, timeout=60) as client,
            client.stream(
                "GET", request.url, headers=request.headers, extensions=request.extensions
            ) as response,
            storage.open_write(layout.input_key(task.job_id)) as sink,
        ):
            if response.status_code != 200:
                raise InputError(
                    "download_failed", f"input URL answered HTTP {response.status_code}"
                )
            guard = None
            if task.input_limits is not None:
                fmt = InputFormat(task.input["format"])
                guard = UploadGuard(task.input_limits, fmt, task.input.get("delimiter"))
            for piece in response.iter_raw():
                received += len(piece)
                if received > task.max_download_bytes:
                    raise InputError("too_large", "input URL body exceeds the upload limit")
                if guard is not None:
                    guard.feed(piece)
                sink.write(piece)
    except httpx.HTTPError as exc:
        raise InputError("download_failed", str(exc)) from exc


def input_limits(settings: Settings) -> InputLimits:
    """The limits an input must respect, whether uploaded or fetched from a URL."""
    return InputLimits(
        max_decompressed_bytes=settings.max_decompressed_bytes,
        max_compression_ratio=settings.max_compression_ratio,
        max_line_bytes=settings.max_line_bytes,
        max_field_bytes=settings.max_field_bytes,
        max_nesting_depth=settings.max_nesting_depth,
        max_columns=settings.max_columns,
    )


def inspect_input(
    source: BinaryIO, job_input: dict[str, Any], limits: InputLimits
) -> tuple[str, ...]:
    """The input's columns, once its Parquet schema and its number of columns are within the
    limits: the checks an upload gets before its job exists, and a fetched input before it
    is split."""
    if job_input["format"] == InputFormat.PARQUET.value:
        check_parquet(
            source, max_columns=limits.max_columns, max_nesting_depth=limits.max_nesting_depth
        )
    columns = preview(source, input_spec(job_input)).columns
    if len(columns) > limits.max_columns:
        raise InputError(
            "too_many_columns",
            f"the input has {len(columns)} columns; the limit is {limits.max_columns}",
        )
    return columns


def check_header(job_type_name: str, options: dict[str, Any], columns: tuple[str, ...]) -> None:
    """Raise ``InputError`` when the header lacks a column the job type needs."""
    kind = job_type(job_type_name)
    schema = kind.record_schema(kind.parse_options(options))
    missing = missing_columns(schema, columns)
    if missing:
        raise InputError(
            "bad_header",
            f"input has no column {', '.join(missing)} (needed for {schema.job_type}); "
            f"found: {', '.join(columns) or 'none'}",
        )


def split_input(task: SplitTask) -> SplitOutcome:
    """Read the whole input once and write it as chunk parts of ``chunk_size`` records."""
    storage = _storage(task.storage_url)
    key = task.input.get("key") or layout.input_key(task.job_id)
    spec = input_spec(task.input)
    fetched = bool(task.input.get("url"))
    try:
        if fetched and not storage.exists(key):
            _download(task, storage)
        with storage.open_read(key) as source:
            if task.input_limits is None:
                columns = preview(source, spec).columns
            else:
                columns = inspect_input(source, task.input, task.input_limits)
        check_header(task.job_type, task.options, columns)
        sizes: list[int] = []
        with storage.open_read(key) as source:
            for seq, batch in enumerate(iter_batches(source, spec, task.chunk_size)):
                with storage.open_write(layout.chunk_key(task.job_id, seq)) as sink:
                    pq.write_table(batch.records, sink)
                if batch.errors.num_rows:
                    with storage.open_write(layout.chunk_errors_key(task.job_id, seq)) as sink:
                        pq.write_table(batch.errors, sink)
                sizes.append(batch.records.num_rows + batch.errors.num_rows)
    except InputError as exc:
        if fetched:  # a refused download keeps nothing of what it fetched
            storage.delete_prefix(layout.job_prefix(task.job_id))
        return SplitOutcome(error_code=exc.code, error_message=exc.message)
    except ForbiddenUrl as exc:
        return SplitOutcome(error_code="download_failed", error_message=str(exc))
    return SplitOutcome(sizes=sizes)


@dataclass(frozen=True, kw_only=True)
class ChunkTask:
    job_id: str
    seq: int
    job_type: str
    options: dict[str, Any]
    storage_url: str
    releases_dir: str = ""
    """The local releases folder; with ``releases_url``, the cache of mirrored copies."""
    releases_url: str = ""
    give_up_after: int | None = None
    """Set when earlier attempts all died: report every record as an error instead of running."""


def _read(storage: BlobStorage, key: str) -> pa.Table:
    with storage.open_read(key) as source:
        return pq.read_table(source)


def _gave_up(records: pa.Table, attempts: int) -> EngineResult:
    size = records.num_rows
    errors = pa.table(
        {
            "_ordinal": records.column("_ordinal"),
            "recId": records.column("recId"),
            "code": pa.array(["processing_failed"] * size, pa.string()),
            "message": pa.array(
                [f"processing this record's chunk failed {attempts} times"] * size, pa.string()
            ),
            "input": pa.nulls(size, pa.string()),
        },
        schema=ERROR_COLUMNS,
    )
    kind_results = pa.table(
        {"_ordinal": pa.array([], pa.int64()), "recId": pa.array([], pa.string())}
    )
    return EngineResult(results=kind_results, errors=errors)


def process_chunk(task: ChunkTask) -> ChunkCounts:
    """Run the job type's engine over one chunk and write its result and error parts."""
    started = time.perf_counter()
    storage = _storage(task.storage_url)
    kind = job_type(task.job_type)
    records = _read(storage, layout.chunk_key(task.job_id, task.seq))
    errors_key = layout.chunk_errors_key(task.job_id, task.seq)
    input_errors = _read(storage, errors_key) if storage.exists(errors_key) else None
    if task.give_up_after is not None:
        outcome = _gave_up(records, task.give_up_after)
        successful, no_match, extra = 0, 0, {}
    else:
        options = kind.parse_options(task.options)
        release = (
            load_release(task.releases_dir, task.options["release"], task.releases_url)
            if kind.uses_release
            else None
        )
        outcome = kind.run(records, options, release)
        tally = kind.tally(outcome)
        successful, no_match, extra = tally.successful, tally.no_match, tally.extra
    errors = outcome.errors
    if input_errors is not None and input_errors.num_rows:
        errors = pa.concat_tables([input_errors.cast(ERROR_COLUMNS), errors.cast(ERROR_COLUMNS)])
        errors = errors.sort_by("_ordinal")
    with storage.open_write(layout.result_key(task.job_id, task.seq)) as sink:
        pq.write_table(outcome.results, sink)
    with storage.open_write(layout.error_key(task.job_id, task.seq)) as sink:
        pq.write_table(errors.cast(ERROR_COLUMNS), sink)
    record_ids = records.column("recId")
    return ChunkCounts(
        processed=records.num_rows + (input_errors.num_rows if input_errors is not None else 0),
        successful=successful,
        failed=errors.num_rows,
        no_match=no_match,
        last_record_id=record_ids[-1].as_py() if len(record_ids) else None,
        seconds=time.perf_counter() - started,
        extra=extra,
    )
