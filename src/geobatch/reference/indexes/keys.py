"""Text keys as sorted 64-bit hashes with runs of rows (CSR), searched in mapped arrays.

A key is hashed with BLAKE2b (8 bytes; the same on every machine and run, unlike Python's
``hash``). ``KeyIndex`` keeps the distinct hashes sorted, the start of each one's run of rows
and the key text itself (an Arrow string array in the same order), so finding many keys is one
``np.searchsorted`` over mapped pages plus a comparison of the texts found; two keys that share
a hash sit side by side and are told apart by their text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from geobatch.reference.indexes.files import open_array, open_table, write_array, write_table


def single_array(column: pa.ChunkedArray) -> pa.Array:
    """The one chunk of a mapped column (no copy), or an empty array of its type."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def key_hashes(keys: Iterable[str | None]) -> np.ndarray:
    """uint64 BLAKE2b hash of each key (0 for a null)."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little")
            if k is not None
            else 0
            for k in keys
        ),
        dtype=np.uint64,
    )


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
        values = keys.to_pylist()
        valid = np.array([v is not None for v in values], dtype=bool)
        texts = np.array([v for v in values if v is not None], dtype=object)
        rows = np.asarray(rows, dtype=np.int64)[valid]
        hashes = key_hashes(texts.tolist())
        # sort by hash, then position (rows stay in order within a key)
        order = np.argsort(hashes, kind="stable")
        hashes, texts, rows = hashes[order], texts[order], rows[order]
        same = hashes[1:] == hashes[:-1]
        if np.any(texts[1:][same] != texts[:-1][same]):  # keys sharing a hash: keep them apart
            order = np.lexsort((np.arange(len(texts)), texts.astype(str), hashes))
            hashes, texts, rows = hashes[order], texts[order], rows[order]
        first = np.ones(len(texts), dtype=bool)
        first[1:] = (hashes[1:] != hashes[:-1]) | (texts[1:] != texts[:-1])
        starts = np.append(np.flatnonzero(first), len(texts)).astype(np.int64)
        return cls(
            hashes=hashes[first],
            keys=pa.array(texts[first].tolist(), pa.string()),
            starts=starts,
            rows=rows,
        )

    def groups(self, keys: list[str | None]) -> np.ndarray:
        """The group of each key, -1 where it is unknown (or null)."""
        size = len(keys)
        found = np.full(size, -1, dtype=np.int64)
        if not size or not len(self.hashes):
            return found
        hashes = key_hashes(keys)
        pos = np.searchsorted(self.hashes, hashes)
        hit = (pos < len(self.hashes)) & np.array([k is not None for k in keys], dtype=bool)
        hit[hit] = self.hashes[pos[hit]] == hashes[hit]
        queries = np.flatnonzero(hit)
        if not len(queries):
            return found
        texts = self.keys.take(pa.array(pos[queries])).to_pylist()
        for query, group, text in zip(queries.tolist(), pos[queries].tolist(), texts, strict=True):
            while text != keys[query]:  # a hash shared by several keys: try the next
                group += 1
                if group >= len(self.hashes) or self.hashes[group] != hashes[query]:
                    group = -1
                    break
                text = self.keys[group].as_py()
            found[query] = group
        return found

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
