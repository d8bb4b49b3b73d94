"""Text keys as sorted 64-bit hashes with runs of rows (CSR), searched in mapped arrays.

A key is hashed to 64 bits by a fixed function of its UTF-8 bytes, vectorised with numpy (the
same on every machine and run, unlike Python's ``hash``). ``KeyIndex`` keeps the distinct
hashes sorted, the start of each one's run of rows and the key text itself (an Arrow string
array in the same order), so finding many keys is one ``np.searchsorted`` over mapped pages
plus one vectorised comparison of the texts found; two keys that share a hash sit side by side
and are told apart by their text.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.reference.indexes.files import open_array, open_table, write_array, write_table


def _collide(hashes: np.ndarray, texts: pa.Array) -> bool:
    """Whether two different keys, side by side in hash order, share a hash."""
    same = np.flatnonzero(hashes[1:] == hashes[:-1])
    if not len(same):
        return False
    differs = pc.not_equal(texts.take(pa.array(same + 1)), texts.take(pa.array(same)))
    return bool(pc.any(differs).as_py())


def single_array(column: pa.ChunkedArray) -> pa.Array:
    """The one chunk of a mapped column (no copy), or an empty array of its type."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_LONG = 256
"""Keys longer than this many bytes are hashed one by one (the same function), so one long
key does not widen the matrix of a whole batch."""


def _mix(value: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, element-wise (uint64 arithmetic wraps)."""
    value = (value ^ (value >> np.uint64(30))) * _MIX_1
    value = (value ^ (value >> np.uint64(27))) * _MIX_2
    return np.asarray(value ^ (value >> np.uint64(31)), dtype=np.uint64)


def _hash_bytes(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Hash of each byte string ``data[offsets[i]:offsets[i + 1]]``: its length, then each of
    its 8-byte little-endian words (the last zero-padded), folded in with ``_mix``."""
    lengths = np.diff(offsets)
    size = len(lengths)
    width = int((lengths.max(initial=0) + 7) // 8)
    matrix = np.zeros((size, max(width, 1) * 8), dtype=np.uint8)
    row = np.repeat(np.arange(size), lengths)
    column = np.arange(len(row)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    matrix[row, column] = data[offsets[0] : offsets[-1]]
    words = matrix.view("<u8")
    hashes = _mix((lengths.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
    count = (lengths + 7) // 8  # each key's own words: the hash must not depend on its batch
    for number in range(width):
        hashes = np.where(number < count, _mix(hashes ^ words[:, number]), hashes)
    return hashes


_MASK = (1 << 64) - 1
SMALL = 1 << 16
"""Indexes with at most this many keys answer ``may_hold`` and ``group`` from a dictionary
of their keys."""
_GOLDEN_INT, _MIX_1_INT, _MIX_2_INT = int(_GOLDEN), int(_MIX_1), int(_MIX_2)


def _mix_one(value: int) -> int:
    """``_mix`` of one Python integer."""
    value = ((value ^ (value >> 30)) * _MIX_1_INT) & _MASK
    value = ((value ^ (value >> 27)) * _MIX_2_INT) & _MASK
    return value ^ (value >> 31)


def key_hash(key: str) -> int:
    """``key_hashes`` of one key, in plain Python (a query's few keys need no arrays).

    The constants are Python integers and the mix is written out: a parser asks for
    several keys per query, and most are misses that only this hash can rule out.
    """
    data = key.encode()
    value = _mix_one(((len(data) + 1) * _GOLDEN_INT) & _MASK)
    for (word,) in struct.iter_unpack("<Q", data + bytes(-len(data) % 8)):
        value ^= word
        value = ((value ^ (value >> 30)) * _MIX_1_INT) & _MASK
        value = ((value ^ (value >> 27)) * _MIX_2_INT) & _MASK
        value ^= value >> 31
    return value


def key_hashes(keys: pa.Array | pa.ChunkedArray | list[str | None]) -> np.ndarray:
    """A 64-bit hash of each key's UTF-8 bytes (0 for a null): vectorised over the Arrow
    buffers, and the same on every machine and in every run."""
    array = pa.array(keys, pa.string()) if isinstance(keys, list) else keys
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    size = len(array)
    result = np.zeros(size, dtype=np.uint64)
    if not size:
        return result
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[array.offset : array.offset + size + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    lengths = np.diff(offsets)
    short = np.flatnonzero(lengths <= _LONG)
    for start in range(0, len(short), 1 << 18):
        rows = short[start : start + (1 << 18)]
        result[rows] = _hash_short(data, offsets, rows)
    for row in np.flatnonzero(lengths > _LONG).tolist():
        result[row] = _hash_bytes(data, offsets[row : row + 2])[0]
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    result[~valid] = 0
    return result


def _hash_short(data: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``_hash_bytes`` of the keys at ``rows`` (any rows, gathered into one matrix)."""
    lengths = offsets[rows + 1] - offsets[rows]
    gathered = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    source = np.repeat(offsets[rows], lengths) + (
        np.arange(int(gathered[-1])) - np.repeat(gathered[:-1], lengths)
    )
    return _hash_bytes(data[source], gathered)


@dataclass(frozen=True, kw_only=True)
class KeyIndex:
    """Rows by key: ``rows[starts[g]:starts[g + 1]]`` are filed under key ``keys[g]``."""

    hashes: np.ndarray  # uint64, sorted (equal only where two keys collide)
    keys: pa.Array  # string, one per group
    starts: np.ndarray  # int64, len(keys) + 1
    rows: np.ndarray  # int64

    @classmethod
    def build(cls, keys: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> KeyIndex:
        """File ``rows[i]`` under ``keys[i]`` (nulls are skipped); within a key, rows keep
        their order in ``rows``."""
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        valid = keys.is_valid()
        texts = keys.filter(valid).cast(pa.string())
        rows = np.asarray(rows, dtype=np.int64)[valid.to_numpy(zero_copy_only=False)]
        hashes = key_hashes(texts)
        # by hash, then position (rows stay in order within a key)
        order = np.argsort(hashes, kind="stable")
        if _collide(hashes[order], texts.take(pa.array(order))):  # keep such keys apart
            table = pa.table({"h": hashes, "k": texts, "p": np.arange(len(texts))})
            order = np.asarray(
                pc.sort_indices(table, [("h", "ascending"), ("k", "ascending"), ("p", "ascending")])
            )
        hashes, texts, rows = hashes[order], texts.take(pa.array(order)), rows[order]
        first = np.ones(len(texts), dtype=bool)
        if len(texts) > 1:
            differs = pc.not_equal(texts.slice(1), texts.slice(0, len(texts) - 1))
            first[1:] = (hashes[1:] != hashes[:-1]) | differs.to_numpy(zero_copy_only=False)
        starts = np.append(np.flatnonzero(first), len(texts)).astype(np.int64)
        return cls(
            hashes=hashes[first], keys=texts.filter(pa.array(first)), starts=starts, rows=rows
        )

    def groups(self, keys: list[str | None]) -> np.ndarray:
        """The group of each key, -1 where it is unknown (or null)."""
        size = len(keys)
        found = np.full(size, -1, dtype=np.int64)
        if not size or not len(self.hashes):
            return found
        asked = pa.array(keys, pa.string())
        hashes = key_hashes(asked)
        pos = np.searchsorted(self.hashes, hashes)
        hit = (pos < len(self.hashes)) & asked.is_valid().to_numpy(zero_copy_only=False)
        hit[hit] = self.hashes[pos[hit]] == hashes[hit]
        queries = np.flatnonzero(hit)
        if not len(queries):
            return found
        same = pc.equal(self.keys.take(pa.array(pos[queries])), asked.take(pa.array(queries)))
        same_np = same.to_numpy(zero_copy_only=False)
        found[queries[same_np]] = pos[queries[same_np]]
        for query in queries[~same_np].tolist():  # a hash shared by several keys: look on
            group = int(pos[query]) + 1
            while group < len(self.hashes) and self.hashes[group] == hashes[query]:
                if self.keys[group].as_py() == keys[query]:
                    found[query] = group
                    break
                group += 1
        return found

    def may_hold(self, key: str, wanted: int) -> bool:
        """Whether the index may hold ``key``, whose ``key_hash`` is ``wanted`` (False: it
        certainly does not). One hash serves a query's look in several indexes."""
        if len(self.hashes) <= SMALL:
            return key in self._group_of
        at = int(self.hashes.searchsorted(np.uint64(wanted)))
        return at < len(self.hashes) and int(self.hashes[at]) == wanted

    @cached_property
    def _group_of(self) -> dict[str, int]:
        """A small index's groups by key: one lookup, no hash to compute in Python."""
        return {key: group for group, key in enumerate(self.keys.to_pylist())}

    def group(self, key: str) -> int:
        """The group of one key, -1 where it is unknown."""
        if len(self.hashes) <= SMALL:
            return self._group_of.get(key, -1)
        wanted = key_hash(key)
        group = int(self.hashes.searchsorted(np.uint64(wanted)))
        while group < len(self.hashes) and int(self.hashes[group]) == wanted:
            if self.keys[group].as_py() == key:
                return group
            group += 1
        return -1

    def save(self, folder: Path, prefix: str) -> None:
        write_array(folder, f"{prefix}/hashes", self.hashes)
        write_table(folder, f"{prefix}/keys", pa.table({"key": self.keys}))
        write_array(folder, f"{prefix}/starts", self.starts)
        write_array(folder, f"{prefix}/rows", self.rows)

    @classmethod
    def open(cls, folder: Path, prefix: str) -> KeyIndex:
        return cls(
            hashes=open_array(folder, f"{prefix}/hashes"),
            keys=single_array(open_table(folder, f"{prefix}/keys").column("key")),
            starts=open_array(folder, f"{prefix}/starts"),
            rows=open_array(folder, f"{prefix}/rows"),
        )
