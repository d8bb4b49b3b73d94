"""Records that break their job type's schema, as error-report rows with a reason code.

The rules and their wording come from the ``validate`` engine, so a record refused here reads
exactly as a ``validate`` dry run described it; the code names the kind of failure so users
can filter the error report without parsing messages.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.engines.result import ERROR_COLUMNS
from geobatch.engines.schemas import RecordSchema
from geobatch.engines.validate import validate_records

REASON_CODES = (
    ("is missing", "missing_value"),
    ("is not a number", "not_a_number"),
    ("is outside", "out_of_range"),
)
"""Reason wording → error code; anything else is ``invalid_record``."""


def reason_code(reason: str) -> str:
    for phrase, code in REASON_CODES:
        if phrase in reason:
            return code
    return "invalid_record"


def split_invalid(records: pa.Table, schema: RecordSchema) -> tuple[np.ndarray, pa.Table]:
    """A mask of the valid records, and error rows (``ERROR_COLUMNS``) for the others."""
    checked = validate_records(records, schema).results
    valid = np.asarray(checked.column("valid"))
    bad = checked.filter(pc.invert(checked.column("valid")))
    reasons = bad.column("reason").to_pylist()
    errors = pa.table(
        {
            "_ordinal": bad.column("_ordinal"),
            "recId": bad.column("recId"),
            "code": pa.array([reason_code(r) for r in reasons], pa.string()),
            "message": bad.column("reason"),
            "input": pa.nulls(bad.num_rows, pa.string()),
        },
        schema=ERROR_COLUMNS,
    )
    return valid, errors
