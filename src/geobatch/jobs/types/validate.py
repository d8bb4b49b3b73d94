"""``validate``: check each record against another job type's schema, without matching it."""

from __future__ import annotations

from typing import Literal

import pyarrow.compute as pc

from geobatch.engines import RECORD_SCHEMAS, EngineResult, validate_records
from geobatch.jobs.types import CommonOptions, JobType, Tally, register


class ValidateOptions(CommonOptions):
    target_type: Literal["geocode", "reverse_geocode", "lookup", "road_match"] = "geocode"
    """The job type whose record schema the input is checked against."""


def _tally(result: EngineResult) -> Tally:
    valid = int(pc.sum(result.results.column("valid")).as_py() or 0)
    return Tally(
        successful=valid,
        no_match=0,
        extra={"invalid_records": result.results.num_rows - valid},
    )


register(
    JobType(
        name="validate",
        options_model=ValidateOptions,
        record_schema=lambda options: RECORD_SCHEMAS[options.target_type],
        run=lambda records, options, _release: validate_records(
            records, RECORD_SCHEMAS[options.target_type]
        ),
        tally=_tally,
    )
)
