"""The job types the platform runs: each names its options, its input schema and its engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, ValidationError

from geobatch.engines import RECORD_SCHEMAS, EngineResult, RecordSchema, validate_records
from geobatch.errors import InvalidInput


class CommonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_format: Literal["csv", "geojson", "parquet"] = "csv"


class ValidateOptions(CommonOptions):
    target_type: Literal["geocode", "reverse_geocode", "lookup", "road_match"] = "geocode"
    """The job type whose record schema the input is checked against."""


@dataclass(frozen=True, kw_only=True)
class Tally:
    """How an engine's output counts toward the job statistics."""

    successful: int
    no_match: int
    extra: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class JobType:
    name: str
    options_model: type[CommonOptions]
    record_schema: Callable[[Any], RecordSchema]
    run: Callable[[Any, Any], EngineResult]
    tally: Callable[[EngineResult], Tally]

    def parse_options(self, raw: dict[str, Any]) -> CommonOptions:
        try:
            return self.options_model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidInput(
                f"options.{where}: {first['msg']}",
                errors=[
                    {"field": "options." + ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                    for e in exc.errors()
                ],
            ) from None


def _validate_tally(result: EngineResult) -> Tally:
    valid = int(pc.sum(result.results.column("valid")).as_py() or 0)
    return Tally(
        successful=valid,
        no_match=0,
        extra={"invalid_records": result.results.num_rows - valid},
    )


JOB_TYPES: dict[str, JobType] = {
    "validate": JobType(
        name="validate",
        options_model=ValidateOptions,
        record_schema=lambda options: RECORD_SCHEMAS[options.target_type],
        run=lambda records, options: validate_records(records, RECORD_SCHEMAS[options.target_type]),
        tally=_validate_tally,
    ),
}

PLANNED_TYPES = frozenset({"geocode", "reverse_geocode", "lookup", "road_match"})


def job_type(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except KeyError:
        if name in PLANNED_TYPES:
            raise InvalidInput(
                f"job type {name!r} is not available on this server yet; available: "
                + ", ".join(sorted(JOB_TYPES)),
                field="type",
            ) from None
        raise InvalidInput(
            f"unknown job type {name!r}; available: {', '.join(sorted(JOB_TYPES))}", field="type"
        ) from None
