"""``road_match``: match each input road (or GPS trace) onto the release's road network.

Statistics follow the TomTom Orbis GEM road matching job: each chunk adds its counts
(``num_roads_processed``, ``kms_processed``, ``roads_{fully,partially,un}matched``,
``roads_rejected``, ``execution_time_sec``) and the ratios are computed from the sums when the
job is shown. ``execution_time_sec`` is the matching time summed over chunks.
``confidence_threshold`` is summed once per road, so that dividing by ``num_roads_processed``
gives back the job's threshold whatever the number of chunks (it is shown once a road is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from geobatch.engines import RECORD_SCHEMAS, EngineResult
from geobatch.engines.roadmatch import MatchParams, network_for
from geobatch.engines.roadmatch.chunk import match_records
from geobatch.jobs.types import JobType, ReleaseOptions, Tally, register

if TYPE_CHECKING:
    from geobatch.reference import Release

SECONDS_COLUMN = "_seconds"
"""Internal column: each result row's share of the chunk's matching time."""
LENGTH_COLUMN = "_length_m"
"""Internal column: the input road's length on the row that counts it (first of its rows)."""
THRESHOLD_COLUMN = "_threshold"
"""Internal column: the threshold on the row that counts a road, so the sum is threshold x roads."""


class RoadMatchOptions(ReleaseOptions):
    confidence_threshold: float = Field(
        default=60.0,
        ge=0,
        le=100,
        description="A matched stretch below this confidence does not count as matched.",
    )
    search_radius_m: float = Field(
        default=30.0,
        gt=0,
        le=500,
        description="How far from the input line reference segments are considered (metres).",
    )
    use_names: bool = Field(
        default=True, description="Compare the input's name with reference names when scoring."
    )
    input_kind: Literal["roads", "traces"] = Field(
        default="roads",
        description="roads: LineString/MultiLineString per record; traces: one GPS trace per "
        "record as a LineString or MultiPoint with its fixes in time order.",
    )
    output_layout: Literal["roads", "pairs"] = Field(
        default="roads",
        description="roads: one row per input road with a segments list; pairs: one row per "
        "(input road, reference segment).",
    )
    output_geometry: Literal["none", "matched"] = Field(
        default="none",
        description="matched: add the matched geometry (per road a MultiLineString of its "
        "matched stretches, per pair the stretch), to look at in GeoJSON or GeoParquet output.",
    )


def params_of(options: RoadMatchOptions) -> MatchParams:
    return MatchParams(
        search_radius_m=options.search_radius_m,
        confidence_threshold=options.confidence_threshold,
        use_names=options.use_names,
        with_geometry=options.output_geometry == "matched",
    )


def _run(records: pa.Table, options: RoadMatchOptions, release: Release | None) -> EngineResult:
    if release is None:
        raise ValueError("road_match runs against a release")
    batch = match_records(
        records,
        network_for(release),
        params_of(options),
        traces=options.input_kind == "traces",
    )
    table = batch.table(
        records, options.output_layout, geometry=options.output_geometry == "matched"
    )
    first = np.ones(table.num_rows, dtype=bool)
    if options.output_layout == "pairs":
        first = np.asarray(table.column("seqNumber")) <= 1
    lengths = np.zeros(table.num_rows)
    lengths[first] = batch.matches.length_m
    seconds = np.full(table.num_rows, batch.seconds / max(table.num_rows, 1))
    weight = np.where(first, options.confidence_threshold, 0.0)
    table = (
        table.append_column(SECONDS_COLUMN, pa.array(seconds))
        .append_column(LENGTH_COLUMN, pa.array(lengths))
        .append_column(THRESHOLD_COLUMN, pa.array(weight))
    )
    return EngineResult(results=table, errors=batch.errors)


def _tally(result: EngineResult) -> Tally:
    table = result.results
    if LENGTH_COLUMN not in table.column_names:  # a chunk whose records were given up on
        return Tally(successful=0, no_match=0, extra={})
    first = np.asarray(table.column("seqNumber")) <= 1  # one row per road in either layout
    status = np.asarray(table.column("status").to_numpy(zero_copy_only=False))[first]
    counts = {name: int((status == name).sum()) for name in ("full", "partial", "unmatched")}
    roads = int(first.sum())
    return Tally(
        successful=counts["full"] + counts["partial"],
        no_match=counts["unmatched"],
        extra={
            "num_roads_processed": roads,
            "kms_processed": float(pc.sum(table.column(LENGTH_COLUMN)).as_py() or 0) / 1000,
            "roads_fully_matched": counts["full"],
            "roads_partially_matched": counts["partial"],
            "roads_unmatched": counts["unmatched"],
            "roads_rejected": result.errors.num_rows,
            "execution_time_sec": float(pc.sum(table.column(SECONDS_COLUMN)).as_py() or 0),
            "confidence_threshold": float(pc.sum(table.column(THRESHOLD_COLUMN)).as_py() or 0),
        },
    )


def _derived(summed: Mapping[str, float]) -> dict[str, float]:
    roads = summed.get("num_roads_processed", 0)
    out = {
        "kms_processed": round(summed.get("kms_processed", 0), 3),
        "execution_time_sec": round(summed.get("execution_time_sec", 0), 3),
    }
    if not roads:
        return out
    full = summed.get("roads_fully_matched", 0) / roads
    partial = summed.get("roads_partially_matched", 0) / roads
    return {
        **out,
        "confidence_threshold": round(summed.get("confidence_threshold", 0) / roads, 6),
        "roads_fully_matched_ratio": round(full, 4),
        "roads_partially_matched_ratio": round(partial, 4),
        "roads_matched_ratio": round(full + partial, 4),
        "roads_unmatched_ratio": round(summed.get("roads_unmatched", 0) / roads, 4),
    }


register(
    JobType(
        name="road_match",
        options_model=RoadMatchOptions,
        record_schema=lambda options: RECORD_SCHEMAS["road_match"],
        run=_run,
        tally=_tally,
        uses_release=True,
        derived_statistics=_derived,
    )
)
