"""Map data: bounding boxes, and samples that stay bounded and spread over every part."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geobatch.errors import InvalidInput
from geobatch.jobs.maps import PartOpener, ResultParts, parse_bbox, point_sample


def test_parse_bbox() -> None:
    assert parse_bbox("24.9, 60.1,25.0,60.2") == (24.9, 60.1, 25.0, 60.2)
    for bad in ("", "1,2,3", "1,2,3,x", "2,0,1,1", "0,2,1,1", "-181,0,0,1", "0,0,1,nan"):
        with pytest.raises(InvalidInput) as caught:
            parse_bbox(bad)
        assert caught.value.extra["field"] == "bbox"


def _part(folder: Path, seq: int, first: int, count: int) -> tuple[int, PartOpener]:
    path = folder / f"{seq}.parquet"
    ids = range(first, first + count)
    table = pa.table(
        {
            "_ordinal": pa.array(list(ids), pa.int64()),
            "recId": [f"r{i}" for i in ids],
            "lat": [None if i % 7 == 3 else 60 + i / 1e5 for i in ids],
            "lon": [25.0] * count,
            "match_level": ["street"] * count,
            "confidence": [50] * count,
            "street": ["not sent"] * count,
        }
    )
    pq.write_table(table, path)
    return seq, lambda: io.BytesIO(path.read_bytes())


def test_a_sample_is_bounded_spread_over_all_parts_and_skips_missing_points(
    tmp_path: Path,
) -> None:
    sizes = [700, 50, 1250]
    parts: list[tuple[int, PartOpener]] = []
    first = 0
    for seq, size in enumerate(sizes):
        parts.append(_part(tmp_path, seq, first, size))
        first += size
    sample = json.loads(point_sample(ResultParts(results=parts, inputs={}), 100))
    assert sample["total_rows"] == 2000
    assert sample["sampled_rows"] == 100
    ids = [int(f["properties"]["recId"][1:]) for f in sample["features"]]
    assert 80 <= len(ids) <= 90  # 100 spread evenly, less the seventh without coordinates
    assert min(ids) < 25
    assert max(ids) > 1975
    assert any(700 <= i < 750 for i in ids)  # the small middle part is sampled too
    assert {f["properties"]["match_level"] for f in sample["features"]} == {"street"}
    assert "street" not in sample["features"][0]["properties"]  # only the columns drawn
    empty = json.loads(point_sample(ResultParts(results=[], inputs={}), 100))
    assert empty == {
        "type": "FeatureCollection",
        "total_rows": 0,
        "sampled_rows": 0,
        "features": [],
    }
