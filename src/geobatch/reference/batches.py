"""Row-at-a-time collection into Arrow record batches, and scratch Arrow files for importers.

Importers see one OSM object at a time; these helpers turn that stream into bounded batches
so no table is ever held whole in Python objects, and let an importer park intermediate rows
on disk (memory-mapped back) until the information to finish them is known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

BATCH_ROWS = 16_384


class RowBuffer:
    """Collects rows column by column and hands each full batch to ``sink``."""

    def __init__(
        self,
        schema: pa.Schema,
        sink: Callable[[pa.RecordBatch], None],
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.schema = schema
        self.rows = 0
        self._sink = sink
        self._batch_rows = batch_rows
        self._columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self._pending = 0

    def append(self, row: dict[str, Any]) -> None:
        """Add one row; missing keys are nulls."""
        for name, column in self._columns.items():
            column.append(row.get(name))
        self._pending += 1
        self.rows += 1
        if self._pending >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        arrays = [pa.array(self._columns[field.name], type=field.type) for field in self.schema]
        self._sink(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        for column in self._columns.values():
            column.clear()
        self._pending = 0


class ScratchFile:
    """An Arrow IPC file of intermediate rows: written in batches, read back memory-mapped."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._sink, schema)
        self.buffer = RowBuffer(schema, self._writer.write_batch)
        self._closed = False

    def append(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)

    def close(self) -> None:
        if not self._closed:
            self.buffer.flush()
            self._writer.close()
            self._sink.close()
            self._closed = True

    def read(self) -> pa.Table:
        """Close (if still open) and map the rows back without copying them."""
        self.close()
        return read_mapped(self.path)


def read_mapped(path: Path) -> pa.Table:
    """An Arrow IPC file as a table whose buffers point into a memory map of the file."""
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


class Bounds:
    """Running bounding box (min lon, min lat, max lon, max lat) of everything written."""

    def __init__(self) -> None:
        self._box = [np.inf, np.inf, -np.inf, -np.inf]

    def update(self, lon: Any, lat: Any) -> None:
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if lon.size:
            box = self._box
            box[0] = min(box[0], float(lon.min()))
            box[1] = min(box[1], float(lat.min()))
            box[2] = max(box[2], float(lon.max()))
            box[3] = max(box[3], float(lat.max()))

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        box = self._box
        if box[0] > box[2]:
            return None
        return (box[0], box[1], box[2], box[3])
