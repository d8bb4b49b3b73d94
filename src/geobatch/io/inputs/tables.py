"""Arrow helpers shared by the readers: header checks, recId and ordinal columns, error rows."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.io.inputs.common import ERROR_SCHEMA, InputError

_RESERVED: Final = "_ordinal"


def _check_columns(columns: tuple[str, ...]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, 1):
        if not name.strip():
            raise InputError("bad_header", f"column {position} of the header has an empty name")
        if name in seen:
            raise InputError(
                "bad_header",
                f"duplicate column name {name!r} in the header (columns {seen[name]} "
                f"and {position})",
            )
        if name == _RESERVED:
            raise InputError("bad_header", f"column name {name!r} is reserved")
        seen[name] = position
    if sum(name.lower() == "recid" for name in columns) > 1:
        raise InputError("bad_header", "the header has more than one recId column")


def _recid_index(columns: tuple[str, ...] | list[str]) -> int | None:
    return next((i for i, name in enumerate(columns) if name.lower() == "recid"), None)


def _fill_ids(values: Any, ordinals: pa.Array) -> Any:
    """recId values as strings; a missing or empty one falls back to the ordinal."""
    values = pc.cast(values, pa.string())
    missing = pc.fill_null(pc.equal(values, ""), True)
    if not pc.any(missing).as_py():
        return values
    return pc.if_else(missing, pc.cast(ordinals, pa.string()), values)


def _errors_table(rows: list[tuple[int, str, str, str, str]]) -> pa.Table:
    if not rows:
        return ERROR_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, ERROR_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=ERROR_SCHEMA)


def _good_ordinals(start: int, count: int, bad: list[int]) -> pa.Array:
    ordinals = np.arange(start, start + count, dtype=np.int64)
    if bad:
        keep = np.ones(count, dtype=bool)
        keep[np.asarray(bad, dtype=np.int64) - start] = False
        ordinals = ordinals[keep]
    return pa.array(ordinals, type=pa.int64())
