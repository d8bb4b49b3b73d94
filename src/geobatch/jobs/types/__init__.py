"""The job types the platform runs: each names its options, its input schema and its engine.

A job type lives in a module of this package and registers itself with ``register``; this
module imports them all at the bottom, so ``JOB_TYPES`` is complete once it is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geobatch.engines import EngineResult, RecordSchema
from geobatch.engines.geocode.language import LANGUAGE_PATTERN
from geobatch.errors import InvalidInput

if TYPE_CHECKING:
    from geobatch.reference import Release


class CommonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_format: Literal["csv", "geojson", "parquet"] = "csv"


class ReleaseOptions(CommonOptions):
    """Options of job types that match against reference data."""

    release: str | None = Field(
        default=None,
        description="Reference release to match against; the newest one when not given, "
        "the bundled default one with 'default'. The job records the release it resolved to.",
    )


class NamedResultOptions(ReleaseOptions):
    """Options of job types whose results name streets and places (geocoding, lookup)."""

    lang: str | None = Field(
        default=None,
        pattern=LANGUAGE_PATTERN,
        description="BCP 47 language tag (sv, en-US): street, city, district and county names "
        "in this language where the release has them (OSM name:xx tags), else as mapped. A "
        "record's own lang column overrides it.",
    )


@dataclass(frozen=True, kw_only=True)
class Tally:
    """How an engine's output counts toward the job statistics (``extra`` values are summed)."""

    successful: int
    no_match: int
    extra: dict[str, float]


def _no_derived(statistics: Mapping[str, float]) -> dict[str, float]:
    return {}


@dataclass(frozen=True, kw_only=True)
class JobType:
    name: str
    options_model: type[CommonOptions]
    record_schema: Callable[[Any], RecordSchema]
    run: Callable[[pa.Table, Any, Release | None], EngineResult]
    """(records, parsed options, release or None when ``uses_release`` is False)."""
    tally: Callable[[EngineResult], Tally]
    uses_release: bool = False
    chunk_scale: int = 1
    """Its chunks hold this many times ``GEOBATCH_CHUNK_SIZE`` records. A type whose engine
    answers a record in microseconds (reverse geocoding, lookup) needs bigger chunks than a
    slow one for the fixed cost of a chunk (reading, writing, committing) not to dominate."""
    derived_statistics: Callable[[Mapping[str, float]], dict[str, float]] = field(
        default=_no_derived
    )
    """Statistics computed from the summed ``extra`` ones (ratios, averages) when shown."""

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


JOB_TYPES: dict[str, JobType] = {}


def register(kind: JobType) -> JobType:
    JOB_TYPES[kind.name] = kind
    return kind


def type_statistics(name: str, summed: Mapping[str, float]) -> dict[str, float]:
    """A job's type-specific statistics: the summed chunk counts plus the derived ones."""
    kind = JOB_TYPES.get(name)
    derived = kind.derived_statistics(summed) if kind is not None else {}
    return {**summed, **derived}


def job_type(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown job type {name!r}; available: {', '.join(sorted(JOB_TYPES))}", field="type"
        ) from None


from geobatch.jobs.types import (  # noqa: E402, F401  (each registers itself)
    geocode,
    lookup,
    reverse_geocode,
    road_match,
    validate,
)
