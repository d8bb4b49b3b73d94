"""Reference releases on disk: built in a temp folder, published atomically, loaded memory-mapped.

A release is ``<root>/<id>/`` holding one uncompressed Arrow IPC *file* per table
(``segments.arrow`` ...), the engines' ready indexes under ``indexes/`` (see
``reference.indexes``) and a ``manifest.json`` listing every file with its size and checksum.
It is written into ``<root>/.building-<uuid>`` and renamed into place only when complete, so
readers never see a half-built release, and it is never modified afterwards, so every worker
process can memory-map the same files and share their pages through the OS page cache
(loading costs the metadata, not the data).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from geobatch.errors import Conflict, InvalidInput, NotFound
from geobatch.reference.indexes import (
    INDEX_VERSION,
    FileEntry,
    IndexFileError,
    build_indexes,
    describe,
    open_array,
    open_table,
    verify,
)
from geobatch.reference.indexes.files import STAMP_DIR, write_stamp
from geobatch.reference.schema import SCHEMA_VERSION, TABLES

SOURCE_KINDS = frozenset(
    {
        "osm-pbf",
        "osm-xml",
        "overture-segments",
        "overture-connectors",
        "overture-addresses",
        "overture-places",
        "geonames",
    }
)
MANIFEST = "manifest.json"
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_BUILDING_PREFIX = ".building-"


class ReleaseNotFound(NotFound):
    """Reference release not found."""


class ReleaseError(InvalidInput):
    """Invalid reference data."""


def check_release_id(release_id: str) -> str:
    """Refuse ids that could escape the store folder or collide with its temp folders."""
    if not _ID.fullmatch(release_id):
        raise InvalidInput(
            f"{release_id!r} is not a valid release id: use lowercase letters, digits, '.', '_' "
            "and '-', starting with a letter or digit (at most 128 characters)"
        )
    return release_id


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    """One input file of a release, identified by content so a rebuild can be checked."""

    path: str
    sha256: str
    size_bytes: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceFile:
        return cls(
            path=str(data["path"]),
            sha256=str(data["sha256"]),
            size_bytes=int(data["size_bytes"]),
            kind=str(data["kind"]),
        )


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What a release holds and where it came from; written last, so its presence marks it done."""

    id: str
    name: str
    schema_version: int
    created_at: datetime
    sources: tuple[SourceFile, ...]
    counts: dict[str, int] = field(default_factory=dict)
    bbox: tuple[float, float, float, float] | None = None
    build_seconds: float = 0.0
    index_version: int = 0
    files: dict[str, FileEntry] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of every table and index file."""
        return sum(entry.size_bytes for entry in self.files.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "schema_version": self.schema_version,
            "index_version": self.index_version,
            "created_at": self.created_at.isoformat(),
            "sources": [source.to_json() for source in self.sources],
            "counts": dict(self.counts),
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "build_seconds": self.build_seconds,
            "size_bytes": self.size_bytes,
            "files": {name: entry.to_json() for name, entry in self.files.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        try:
            bbox = data.get("bbox")
            created_at = datetime.fromisoformat(str(data["created_at"]))
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            return cls(
                id=str(data["id"]),
                name=str(data["name"]),
                schema_version=int(data["schema_version"]),
                created_at=created_at,
                sources=tuple(SourceFile.from_json(item) for item in data["sources"]),
                counts={str(key): int(value) for key, value in data.get("counts", {}).items()},
                bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
                if bbox is not None
                else None,
                build_seconds=float(data.get("build_seconds", 0.0)),
                index_version=int(data.get("index_version", 0)),
                files={
                    str(name): FileEntry.from_json(entry)
                    for name, entry in data.get("files", {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ReleaseError(f"malformed release manifest: {exc!r}") from exc


def conform(data: pa.RecordBatch, table: str) -> pa.RecordBatch:
    """Return ``data`` with exactly the columns and types of ``TABLES[table]``.

    Columns are reordered and cast where needed, absent nullable columns become nulls; unknown
    columns, failed casts and nulls in non-nullable columns are refused, so a release can only
    hold what the engines expect.
    """
    schema = TABLES[table]
    if data.schema.equals(schema):
        columns = list(data.columns)
    else:
        unknown = sorted(set(data.schema.names) - set(schema.names))
        if unknown:
            raise ReleaseError(f"table {table} has unknown columns {unknown}")
        columns = []
        for target in schema:
            if target.name not in data.schema.names:
                columns.append(pa.nulls(data.num_rows, target.type))
                continue
            column = data.column(target.name)
            if column.type != target.type:
                try:
                    column = column.cast(target.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise ReleaseError(
                        f"table {table}: column {target.name} of type {column.type} does not "
                        f"convert to {target.type}"
                    ) from exc
            columns.append(column)
    for target, column in zip(schema, columns, strict=True):
        if not target.nullable and column.null_count:
            raise ReleaseError(
                f"table {table}: column {target.name} has {column.null_count} nulls "
                "but may not be null"
            )
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class TableWriter:
    """Streams record batches of one table into an uncompressed Arrow IPC file."""

    def __init__(self, path: Path, table: str) -> None:
        self.table = table
        self.path = path
        self.rows = 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, TABLES[table])
        self._closed = False

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        """Validate and append; a table is written batch by batch as it is chunked."""
        batches = data.to_batches() if isinstance(data, pa.Table) else [data]
        for batch in batches:
            if batch.num_rows:
                self._writer.write_batch(conform(batch, self.table))
                self.rows += batch.num_rows

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._sink.close()


class ReleaseBuilder:
    """The write side of a release under construction (given out by ``ReleaseStore.building``)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self.bbox: tuple[float, float, float, float] | None = None
        self._writers: dict[str, TableWriter] = {}
        self._linked: dict[str, int] = {}
        self._sources: list[SourceFile] = []
        self._manifest: Manifest | None = None

    @property
    def manifest(self) -> Manifest:
        """The published release's manifest, once the ``building`` block has ended cleanly."""
        if self._manifest is None:
            raise RuntimeError("the release is not published yet")
        return self._manifest

    @property
    def scratch(self) -> Path:
        """A folder for an importer's intermediate files; removed before publishing."""
        path = self.folder / ".scratch"
        path.mkdir(exist_ok=True)
        return path

    def _claim(self, table: str) -> Path:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")
        if table in self._writers or table in self._linked:
            raise ValueError(f"table {table} was already written")
        return self.folder / f"{table}.arrow"

    @contextlib.contextmanager
    def table_writer(self, table: str) -> Iterator[TableWriter]:
        """Open ``table`` for streaming writes; it is closed when the block ends."""
        writer = TableWriter(self._claim(table), table)
        self._writers[table] = writer
        try:
            yield writer
        finally:
            writer.close()

    def write_table(
        self, table: str, data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]
    ) -> int:
        """Write a whole table, or an iterable of batches one at a time; returns the row count."""
        with self.table_writer(table) as writer:
            if isinstance(data, pa.Table | pa.RecordBatch):
                writer.write(data)
            else:
                for batch in data:
                    writer.write(batch)
        return writer.rows

    def link_table(self, table: str, path: Path) -> int:
        """Reuse an existing table file (hard link, else copy) after checking its schema.

        Releases are immutable, so identical tables (the gazetteer) can share one inode.
        """
        target = self._claim(table)
        with pa.memory_map(str(path), "r") as source:
            reader = pa.ipc.open_file(source)
            if not reader.schema.equals(TABLES[table]):
                raise ReleaseError(f"{path} does not hold a {table} table of this schema")
            rows: int = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        self._linked[table] = rows
        return rows

    def read(self, table: str) -> pa.Table:
        """A table written earlier in this build, memory-mapped (for importers' later steps)."""
        writer = self._writers.get(table)
        if writer is None or not writer._closed:
            raise ValueError(f"table {table} has not been written yet")
        with pa.memory_map(str(writer.path), "r") as source:
            return pa.ipc.open_file(source).read_all()

    def table(self, table: str) -> pa.Table:
        """Any table of this build so far (written or linked), empty if there is none."""
        path = self.folder / f"{table}.arrow"
        if not path.exists():
            return pa.Table.from_batches([], schema=TABLES[table])
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_file(source).read_all()

    def add_source(self, path: Path, kind: str) -> SourceFile:
        """Record an input file with its SHA-256 (read in chunks, never whole)."""
        if kind not in SOURCE_KINDS:
            raise ValueError(
                f"unknown source kind {kind!r}; expected one of {sorted(SOURCE_KINDS)}"
            )
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        source = SourceFile(
            path=str(Path(path).resolve()),
            sha256=digest,
            size_bytes=Path(path).stat().st_size,
            kind=kind,
        )
        self._sources.append(source)
        return source

    def _seal(self, release_id: str, created_at: datetime, build_seconds: float) -> Manifest:
        for writer in self._writers.values():
            writer.close()
        shutil.rmtree(self.folder / ".scratch", ignore_errors=True)
        build_indexes(self.folder, self.table)
        counts = dict.fromkeys(TABLES, 0)
        counts.update({table: writer.rows for table, writer in self._writers.items()})
        counts.update(self._linked)
        manifest = Manifest(
            id=release_id,
            name=self.name,
            schema_version=SCHEMA_VERSION,
            created_at=created_at,
            sources=tuple(self._sources),
            counts=counts,
            bbox=self.bbox,
            build_seconds=round(build_seconds, 3),
            index_version=INDEX_VERSION,
            files=describe(self.folder),
        )
        for name in manifest.files:
            _fsync(self.folder / name)
        _write_json(self.folder / MANIFEST, manifest.to_json())
        return manifest


class Release:
    """A published release opened for reading; tables are memory-mapped on first use."""

    def __init__(self, manifest: Manifest, path: Path) -> None:
        self.manifest = manifest
        self.path = path
        self._tables: dict[str, pa.Table] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Release({self.manifest.id!r})"

    def array(self, name: str) -> np.ndarray:
        """An index array (``roads/piece_x0`` ...), memory-mapped read-only."""
        return open_array(self.path, name)

    def index_table(self, name: str) -> pa.Table:
        """An index table, memory-mapped."""
        return open_table(self.path, name)

    def table(self, name: str) -> pa.Table:
        """The table, zero-copy over the file's pages; an absent table is an empty one."""
        schema = TABLES[name]
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                path = self.path / f"{name}.arrow"
                if path.exists():
                    # The mapping outlives the file object: the buffers keep it alive.
                    with pa.memory_map(str(path), "r") as source:
                        table = pa.ipc.open_file(source).read_all()
                    if not table.schema.equals(schema):
                        raise ReleaseError(f"{path} does not match the {name} table schema")
                else:  # (not schema.empty_table(): that imports pandas, ~0.4 s)
                    table = pa.Table.from_batches([], schema=schema)
                self._tables[name] = table
            return table


def check_readable(manifest: Manifest) -> Manifest:
    """Refuse a release built for another schema or index version: it must be rebuilt."""
    if manifest.schema_version != SCHEMA_VERSION:
        raise ReleaseError(
            f"reference release {manifest.id!r} has schema version {manifest.schema_version} "
            f"but this geobatch reads version {SCHEMA_VERSION}: rebuild it"
        )
    if manifest.index_version != INDEX_VERSION:
        raise ReleaseError(
            f"reference release {manifest.id!r} has index version {manifest.index_version} "
            f"but this geobatch reads version {INDEX_VERSION}: rebuild it"
        )
    return manifest


def find_release(newest_first: Sequence[Manifest], name_or_id: str) -> Manifest:
    """The release of that id in a newest-first listing, else the newest of that name."""
    for manifest in newest_first:
        if manifest.id == name_or_id:
            return manifest
    for manifest in newest_first:
        if manifest.name == name_or_id:
            return manifest
    raise ReleaseNotFound(f"reference release {name_or_id!r} does not exist")


class ReleaseStore:
    """All releases under one folder (``Settings.releases_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, release_id: str) -> Path:
        return self.root / check_release_id(release_id)

    def _read_manifest(self, folder: Path) -> Manifest:
        with open(folder / MANIFEST, encoding="utf-8") as handle:
            return Manifest.from_json(json.load(handle))

    def list(self) -> list[Manifest]:
        """Published releases, newest first; temp, deleted and unreadable folders are skipped."""
        if not self.root.is_dir():
            return []
        manifests = []
        for folder in self.root.iterdir():
            if not _ID.fullmatch(folder.name) or not (folder / MANIFEST).is_file():
                continue
            try:
                manifests.append(self._read_manifest(folder))
            except (OSError, ValueError, ReleaseError):
                continue
        return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)

    def get(self, release_id: str) -> Manifest:
        if not _ID.fullmatch(release_id) or not (self.root / release_id / MANIFEST).is_file():
            raise ReleaseNotFound(f"reference release {release_id!r} does not exist")
        try:
            return self._read_manifest(self.root / release_id)
        except (OSError, ValueError) as exc:
            raise ReleaseError(f"reference release {release_id!r} is unreadable: {exc}") from exc

    def resolve(self, name_or_id: str) -> Manifest:
        """A release by its id, else the newest release imported under that name."""
        if _ID.fullmatch(name_or_id) and (self.root / name_or_id / MANIFEST).is_file():
            return self.get(name_or_id)
        return find_release(self.list(), name_or_id)

    def newest(self) -> Manifest | None:
        releases = self.list()
        return releases[0] if releases else None

    def load(self, release_id: str) -> Release:
        """Open a release after checking its files (see ``indexes.files``).

        Refuses one built for another schema or index version (it must be rebuilt), and one
        whose files are missing, truncated or altered.
        """
        manifest = check_readable(self.get(release_id))
        folder = self.root / release_id
        try:
            verify(self.root, release_id, folder, manifest.files)
        except IndexFileError as exc:
            raise ReleaseError(str(exc)) from exc
        return Release(manifest, folder)

    def delete(self, release_id: str) -> None:
        """Remove a release: it disappears at once (rename); processes that mapped it read on."""
        self.get(release_id)
        doomed = self.root / f".deleting-{uuid.uuid4().hex}"
        try:
            os.rename(self.root / release_id, doomed)
        except FileNotFoundError as exc:
            raise ReleaseNotFound(f"reference release {release_id!r} does not exist") from exc
        shutil.rmtree(doomed, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.root / STAMP_DIR / f"{release_id}.json").unlink()

    def free_id(self, base: str) -> str:
        """``base`` if no release has it, else the first free ``base-2``, ``base-3`` ..."""
        check_release_id(base)
        candidate, n = base, 1
        while (self.root / candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    @contextlib.contextmanager
    def building(
        self, release_id: str, name: str, *, auto_suffix: bool = False
    ) -> Iterator[ReleaseBuilder]:
        """Build a release in a temp folder and publish it atomically when the block ends cleanly.

        On an exception the temp folder is removed and nothing becomes visible. An id that
        exists raises ``Conflict``, unless ``auto_suffix``: then the first free ``<id>-N`` is
        taken when publishing (the manifest is ``builder.manifest`` afterwards).
        """
        check_release_id(release_id)
        if not auto_suffix and (self.root / release_id).exists():
            raise Conflict(f"reference release {release_id!r} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"{_BUILDING_PREFIX}{uuid.uuid4().hex}"
        folder.mkdir()
        started = time.perf_counter()
        builder = ReleaseBuilder(folder, name)
        try:
            yield builder
            created_at = datetime.now(UTC)
            final_id = self.free_id(release_id) if auto_suffix else release_id
            while True:
                manifest = builder._seal(final_id, created_at, time.perf_counter() - started)
                try:
                    _publish(folder, self.root / final_id)
                    write_stamp(self.root, final_id, self.root / final_id, list(manifest.files))
                    break
                except OSError as exc:
                    if not (self.root / final_id).exists():
                        raise
                    if not auto_suffix:
                        raise Conflict(f"reference release {release_id!r} already exists") from exc
                    final_id = self.free_id(release_id)
            builder._manifest = manifest
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise


def _publish(folder: Path, target: Path) -> None:
    """Rename, refusing to replace: renaming onto a non-empty folder fails on POSIX."""
    if target.exists():
        raise FileExistsError(target)
    os.rename(folder, target)
    _fsync_dir(target.parent)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)
