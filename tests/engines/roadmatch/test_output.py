"""Road match result tables: combining a MultiLineString's parts, both layouts, every format."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geobatch.engines.roadmatch.match import RoadMatch, SegmentMatch
from geobatch.engines.roadmatch.matches import Matches
from geobatch.engines.roadmatch.output import (
    PAIR_COLUMNS,
    ROAD_COLUMNS,
    RoadAnswer,
    combine_parts,
    road_table,
)
from geobatch.io.outputs import OutputFormat, read_output, write_output


def _segment(sid: str, start: float, end: float, confidence: float = 90.0) -> SegmentMatch:
    return SegmentMatch(
        segment_id=sid,
        source_id=sid.rsplit(":", 1)[0],
        from_fraction=0.0,
        to_fraction=1.0,
        input_from_m=start,
        input_to_m=end,
        length_m=end - start,
        confidence=confidence,
    )


def _road(status: str, ratio: float, length: float, *segments: SegmentMatch) -> RoadMatch:
    confidence = 0.0 if status == "unmatched" else 80.0
    return RoadMatch(
        status=status,  # type: ignore[arg-type]
        confidence=confidence,
        matched_ratio=ratio,
        length_m=length,
        segments=segments,
    )


def _combined(owner: np.ndarray, parts: list[RoadMatch]) -> list[RoadMatch]:
    return combine_parts(owner, Matches.from_roads(parts)).roads()


def test_columns_give_back_the_roads_they_were_made_of() -> None:
    roads = [
        _road("full", 1.0, 120.0, _segment("osm:way/1:0", 0, 70), _segment("osm:way/1:1", 70, 120)),
        _road("unmatched", 0.0, 40.0),
        _road("partial", 0.5, 60.0, _segment("osm:way/2:0", 10, 40, 70.5)),
    ]
    assert Matches.from_roads(roads).roads() == roads
    joined = Matches.concat([Matches.from_roads(roads[:2]), Matches.from_roads(roads[2:])])
    assert joined.roads() == roads
    assert joined.counts.tolist() == [2, 0, 1]
    order = [2, 0, 1]
    assert joined.take(np.array(order)).roads() == [roads[k] for k in order]
    assert joined.take(np.array([1, 1])).roads() == [roads[1], roads[1]]


def test_a_single_part_road_is_passed_through() -> None:
    only = _road("full", 1.0, 100.0, _segment("osm:way/1:0", 0, 100))
    (answer,) = _combined(np.array([4]), [only])
    assert answer == RoadAnswer(
        status="full",
        confidence=80.0,
        matched_ratio=1.0,
        length_m=100.0,
        segments=only.segments,
    )


def test_parts_combine_by_length_and_shift_input_ranges() -> None:
    parts = [
        _road("full", 1.0, 300.0, _segment("osm:way/1:0", 0, 300)),
        _road("unmatched", 0.0, 100.0),
        _road("full", 1.0, 50.0, _segment("osm:way/2:0", 0, 50)),
    ]
    first, second = _combined(np.array([0, 0, 1]), parts)
    assert first.status == "partial"
    assert first.length_m == 400.0
    assert first.matched_ratio == pytest.approx(0.75)
    assert first.confidence == pytest.approx(60.0)
    assert [s.input_from_m for s in first.segments] == [0]
    assert second.status == "full"
    assert second.segments[0].input_from_m == 0
    shifted = _combined(np.array([0, 0]), [parts[1], parts[0]])[0]
    assert (shifted.segments[0].input_from_m, shifted.segments[0].input_to_m) == (100, 400)


def test_all_parts_unmatched_is_unmatched_and_no_parts_no_answers() -> None:
    parts = [_road("unmatched", 0.0, 10.0), _road("unmatched", 0.0, 30.0)]
    assert _combined(np.array([2, 2]), parts)[0].status == "unmatched"
    assert _combined(np.zeros(0, dtype=np.int64), []) == []


def _records() -> pa.Table:
    return pa.table(
        {
            "_ordinal": pa.array([1, 2, 3], pa.int64()),
            "recId": ["a", "b", "c"],
            "id": ["road-1", "road-2", "road-3"],
        }
    )


def _answers() -> Matches:
    return combine_parts(
        np.array([0, 2]),
        Matches.from_roads(
            [
                _road(
                    "full",
                    1.0,
                    120.0,
                    _segment("osm:way/1:0", 0, 70, 88.4),
                    _segment("osm:way/1:1", 70, 120),
                ),
                _road("unmatched", 0.0, 40.0),
            ]
        ),
    )


def test_roads_layout_has_one_row_per_road_with_its_segments() -> None:
    table = road_table(_records(), np.array([0, 2]), _answers())
    assert table.schema.equals(ROAD_COLUMNS)
    rows = table.to_pylist()
    assert [r["recId"] for r in rows] == ["a", "c"]
    assert [(r["seqNumber"], r["seqLength"]) for r in rows] == [(1, 1), (1, 1)]
    assert rows[0]["id"] == "road-1"
    assert rows[0]["status"] == "full"
    assert [s["segment_id"] for s in rows[0]["segments"]] == ["osm:way/1:0", "osm:way/1:1"]
    assert rows[0]["segments"][0]["confidence"] == 88
    assert rows[1]["segments"] == []
    assert rows[1]["confidence"] == 0


def test_pairs_layout_has_one_row_per_road_and_segment() -> None:
    table = road_table(_records(), np.array([0, 2]), _answers(), "pairs")
    assert table.schema.equals(PAIR_COLUMNS)
    rows = table.to_pylist()
    assert [(r["recId"], r["seqNumber"], r["seqLength"]) for r in rows] == [
        ("a", 1, 2),
        ("a", 2, 2),
        ("c", 0, 0),
    ]
    assert rows[1]["segment_id"] == "osm:way/1:1"
    assert (rows[1]["input_from_m"], rows[1]["input_to_m"]) == (70.0, 120.0)
    assert rows[2]["segment_id"] is None
    assert rows[2]["status"] == "unmatched"


def _write(table: pa.Table, fmt: OutputFormat) -> list[dict[str, object]]:
    part = io.BytesIO()
    pq.write_table(table, part)
    data = part.getvalue()
    sink = io.BytesIO()
    write_output([lambda: io.BytesIO(data)], fmt, sink)
    return read_output(sink.getvalue(), fmt)


def test_segments_survive_every_output_format() -> None:
    table = road_table(_records(), np.array([0, 2]), _answers())
    parquet = _write(table, OutputFormat.PARQUET)
    assert parquet[0]["segments"][1]["segment_id"] == "osm:way/1:1"  # type: ignore[index]
    geojson = _write(table, OutputFormat.GEOJSON)
    assert geojson[0]["segments"][0]["input_to_m"] == 70.0  # type: ignore[index]
    csv_rows = _write(table, OutputFormat.CSV)
    assert "_ordinal" not in csv_rows[0]
    segments = json.loads(str(csv_rows[0]["segments"]))
    assert [s["segment_id"] for s in segments] == ["osm:way/1:0", "osm:way/1:1"]
    assert json.loads(str(csv_rows[1]["segments"])) == []


def test_pairs_layout_of_roads_without_any_match_has_null_segments() -> None:
    answers = Matches.from_roads([_road("unmatched", 0.0, 40.0), _road("unmatched", 0.0, 9.0)])
    rows = road_table(_records(), np.array([1, 2]), answers, "pairs").to_pylist()
    assert [(r["recId"], r["seqNumber"], r["seqLength"]) for r in rows] == [
        ("b", 0, 0),
        ("c", 0, 0),
    ]
    assert {r["segment_id"] for r in rows} == {None}
    assert {r["length_m"] for r in rows} == {None}
