"""``reverse_geocode``: the address, street or place at each ``lat``/``lon`` record."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from geobatch.engines import RECORD_SCHEMAS, EngineResult
from geobatch.engines.geocode import MATCH_LEVELS
from geobatch.engines.geocode.language import localized
from geobatch.engines.geocode.reverse import (
    DEFAULT_RADIUS_M,
    DEFAULT_STREET_RADIUS_M,
    ReverseSettings,
    reverse_records,
)
from geobatch.jobs.types import JobType, NamedResultOptions, Tally, register
from geobatch.reference import Release


class ReverseGeocodeOptions(NamedResultOptions):
    radius_m: float = Field(
        default=DEFAULT_RADIUS_M, gt=0, le=1_000, description="Address search radius in metres."
    )
    street_radius_m: float = Field(
        default=DEFAULT_STREET_RADIUS_M,
        gt=0,
        le=5_000,
        description="Street search radius in metres, used where no address is within radius_m.",
    )
    truncate_at: int = Field(
        default=1, ge=1, le=100, description="Most candidates per record, best first."
    )


def level_counts(results: pa.Table) -> dict[str, float]:
    """How many records were answered at each level (their best candidate's)."""
    best = results.filter(pc.equal(results.column("seqNumber"), 1)).column("match_level")
    counts = {item["values"]: item["counts"] for item in pc.value_counts(best).to_pylist()}
    return {f"{level}_records": float(counts.get(level, 0)) for level in MATCH_LEVELS}


def tally_candidates(result: EngineResult) -> Tally:
    """Records with a candidate, records without one, and counts per level."""
    seq = result.results.column("seqNumber")
    return Tally(
        successful=int(pc.sum(pc.equal(seq, 1)).as_py() or 0),
        no_match=int(pc.sum(pc.equal(seq, 0)).as_py() or 0),
        extra=level_counts(result.results),
    )


def _run(
    records: pa.Table, options: ReverseGeocodeOptions, release: Release | None
) -> EngineResult:
    assert release is not None  # uses_release: the worker always passes one
    settings = ReverseSettings(
        radius_m=options.radius_m,
        street_radius_m=options.street_radius_m,
        limit=options.truncate_at,
    )
    return localized(reverse_records(records, release, settings), records, options.lang, release)


register(
    JobType(
        name="reverse_geocode",
        options_model=ReverseGeocodeOptions,
        record_schema=lambda _options: RECORD_SCHEMAS["reverse_geocode"],
        run=_run,
        tally=tally_candidates,
        uses_release=True,
        chunk_scale=10,
    )
)
