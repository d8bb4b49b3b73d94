"""Index files of a release: numpy arrays and Arrow tables that workers memory-map.

Every file of a release (its tables and its indexes) is listed in the manifest with its size
and SHA-256. Opening a release checks every size (a truncated file is refused at once);
the checksums are verified once per file per machine and the result remembered in a stamp
under ``<root>/.verified/`` keyed by size, modification time and inode, so a fresh worker does
not read gigabytes before answering, while a file replaced or edited in place after the stamp
is hashed again and refused when it does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

INDEX_DIR = "indexes"
STAMP_DIR = ".verified"


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """What the manifest says of one file: its size and SHA-256."""

    size_bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"size_bytes": self.size_bytes, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        return cls(size_bytes=int(data["size_bytes"]), sha256=str(data["sha256"]))


class IndexFileError(ValueError):
    """A release file is missing, truncated or does not match its checksum."""


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def describe(folder: Path) -> dict[str, FileEntry]:
    """Size and checksum of every data file under ``folder`` (relative POSIX paths, sorted)."""
    entries: dict[str, FileEntry] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".arrow", ".npy"):
            entries[path.relative_to(folder).as_posix()] = FileEntry(
                size_bytes=path.stat().st_size, sha256=sha256_of(path)
            )
    return entries


def index_path(folder: Path, name: str, suffix: str) -> Path:
    """``roads/piece_x`` -> ``<folder>/indexes/roads/piece_x.npy``; names stay inside."""
    parts = name.split("/")
    if not name or any(
        not p or p in (".", "..") or not p.replace("_", "").isalnum() for p in parts
    ):
        raise ValueError(f"invalid index name {name!r}")
    return folder / INDEX_DIR / Path(*parts).with_suffix(suffix)


def write_array(folder: Path, name: str, values: np.ndarray) -> Path:
    """Save one array as ``.npy`` (the same bytes for the same values, every time)."""
    path = index_path(folder, name, ".npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(values)
    if array.dtype == object:
        raise TypeError(f"index {name}: object arrays cannot be memory-mapped")
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, allow_pickle=False)
    return path


class ArrayWriter:
    """One ``.npy`` array written in pieces along its first axis, so a builder never holds it
    whole; the file's bytes are those ``write_array`` gives the concatenated pieces.

    The header is written first for zero rows and rewritten in place with the final count
    when the writer closes: numpy pads every header with room for the first axis to grow.
    """

    def __init__(self, folder: Path, name: str, dtype: np.dtype[Any] | type, *row_shape: int):
        self.path = index_path(folder, name, ".npy")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._handle = open(self.path, "wb")  # noqa: SIM115  (closed by close())
        self._header = self._header_bytes(0)
        self._handle.write(self._header)

    def _header_bytes(self, rows: int) -> bytes:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header,
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (rows, *self.row_shape),
            },
        )
        return header.getvalue()

    def append(self, values: np.ndarray) -> None:
        array = np.ascontiguousarray(values, dtype=self.dtype)
        if array.shape[1:] != self.row_shape:
            shape = array.shape[1:]
            raise ValueError(f"{self.path.name}: rows of shape {shape}, not {self.row_shape}")
        self._handle.write(array.tobytes())
        self.rows += len(array)

    def close(self) -> Path:
        final = self._header_bytes(self.rows)
        if len(final) != len(self._header):  # numpy pads headers for axis-0 growth
            raise RuntimeError(f"{self.path.name}: the header outgrew its padding")
        self._handle.seek(0)
        self._handle.write(final)
        self._handle.close()
        return self.path

    def __enter__(self) -> ArrayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_table(folder: Path, name: str, table: pa.Table) -> Path:
    """Save one Arrow table as an uncompressed IPC file, one record batch."""
    path = index_path(folder, name, ".arrow")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = table.combine_chunks()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def open_array(folder: Path, name: str) -> np.ndarray:
    """The array mapped read-only: pages are read on touch and shared by all processes."""
    path = index_path(folder, name, ".npy")
    if not path.is_file():
        raise IndexFileError(f"index file {path.relative_to(folder)} is missing")
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise IndexFileError(f"index file {path.relative_to(folder)} is unreadable: {exc}") from exc
    return mapped.view(np.ndarray)  # type: ignore[no-any-return]


def open_table(folder: Path, name: str) -> pa.Table:
    path = index_path(folder, name, ".arrow")
    if not path.is_file():
        raise IndexFileError(f"index file {path.relative_to(folder)} is missing")
    try:
        with pa.memory_map(str(path), "r") as source:
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise IndexFileError(f"index file {path.relative_to(folder)} is unreadable: {exc}") from exc


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _stamp_path(root: Path, release_id: str) -> Path:
    return root / STAMP_DIR / f"{release_id}.json"


def read_stamp(root: Path, release_id: str) -> dict[str, list[int]]:
    try:
        with open(_stamp_path(root, release_id), encoding="utf-8") as handle:
            data = json.load(handle)
        return {str(k): [int(x) for x in v] for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def write_stamp(root: Path, release_id: str, folder: Path, files: list[str]) -> None:
    """Remember that ``files`` matched their checksums as they are now (best effort)."""
    stamp = {name: _identity(folder / name) for name in files}
    target = _stamp_path(root, release_id)
    with contextlib.suppress(OSError):
        target.parent.mkdir(exist_ok=True)
        temp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        temp.write_text(json.dumps(stamp, sort_keys=True), encoding="utf-8")
        os.replace(temp, target)


def verify(root: Path, release_id: str, folder: Path, files: dict[str, FileEntry]) -> None:
    """Refuse a release whose files are missing, truncated or altered (see the module doc)."""
    stamp = read_stamp(root, release_id)
    hashed: list[str] = []
    for name, entry in files.items():
        path = folder / name
        try:
            identity = _identity(path)
        except OSError:
            raise IndexFileError(f"release {release_id}: file {name} is missing") from None
        if identity[0] != entry.size_bytes:
            raise IndexFileError(
                f"release {release_id}: file {name} has {identity[0]} bytes but the manifest "
                f"says {entry.size_bytes}: it is truncated or was changed; rebuild the release"
            )
        if stamp.get(name) == identity:
            continue
        if sha256_of(path) != entry.sha256:
            raise IndexFileError(
                f"release {release_id}: file {name} does not match its checksum in the "
                "manifest: it was changed after the release was built; rebuild the release"
            )
        hashed.append(name)
    if hashed:
        write_stamp(root, release_id, folder, list(files))
