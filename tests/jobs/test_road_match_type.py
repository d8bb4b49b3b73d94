"""The ``road_match`` job type: options, what a chunk adds to the statistics, and the ratios."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geobatch.errors import InvalidInput
from geobatch.io.outputs import OutputFormat, read_output, write_output
from geobatch.jobs.types import job_type, type_statistics
from geobatch.jobs.types.road_match import RoadMatchOptions
from geobatch.reference import Release, ReleaseStore, import_osm

KIND = job_type("road_match")
FAR_AWAY = "LINESTRING (-40 -40, -40.001 -40.001)"  # mid-Atlantic: nothing to match


def _chunk(helsinki: Release, start: int, count: int, extra: list[str]) -> pa.Table:
    segments = helsinki.table("segments")
    rows = np.flatnonzero(segments.column("length_m").to_numpy() > 80)[start : start + count]
    lines = shapely.from_wkb(segments.column("geometry").take(rows).to_numpy(False))
    wkts = [*shapely.to_wkt(lines).tolist(), *extra]
    size = len(wkts)
    return pa.table(
        {
            "_ordinal": pa.array(np.arange(start + 1, start + size + 1), pa.int64()),
            "recId": [f"r{start + i}" for i in range(size)],
            "id": [f"road-{start + i}" for i in range(size)],
            "geometry": wkts,
        }
    )


def _options(helsinki: Release, **raw: object) -> RoadMatchOptions:
    options = KIND.parse_options({"release": helsinki.manifest.id, **raw})
    assert isinstance(options, RoadMatchOptions)
    return options


def test_options_are_checked() -> None:
    assert KIND.uses_release
    defaults = KIND.parse_options({})
    assert isinstance(defaults, RoadMatchOptions)
    assert (defaults.confidence_threshold, defaults.search_radius_m) == (60, 30)
    assert defaults.output_layout == "roads"
    with pytest.raises(InvalidInput, match=r"options\.confidence_threshold"):
        KIND.parse_options({"confidence_threshold": 101})
    with pytest.raises(InvalidInput, match=r"options\.search_radius_m"):
        KIND.parse_options({"search_radius_m": 0})
    with pytest.raises(InvalidInput, match=r"options\.output_layout"):
        KIND.parse_options({"output_layout": "flat"})


@pytest.mark.parametrize("layout", ["roads", "pairs"])
def test_statistics_sum_over_chunks_into_the_documented_ratios(
    helsinki: Release, layout: str
) -> None:
    options = _options(helsinki, confidence_threshold=70, output_layout=layout)
    chunks = [
        _chunk(helsinki, 0, 6, [FAR_AWAY, "POINT (1 1)"]),
        _chunk(helsinki, 6, 4, [FAR_AWAY]),
    ]
    summed: dict[str, float] = {}
    answered = 0
    for records in chunks:
        result = KIND.run(records, options, helsinki)
        tally = KIND.tally(result)
        answered += tally.successful + tally.no_match
        for name, value in tally.extra.items():
            summed[name] = summed.get(name, 0) + value
    stats = type_statistics("road_match", summed)
    assert stats["num_roads_processed"] == answered == 12
    assert stats["roads_rejected"] == 1
    assert stats["confidence_threshold"] == 70
    assert stats["roads_unmatched_ratio"] == pytest.approx(2 / 12, abs=1e-4)
    assert stats["roads_matched_ratio"] == pytest.approx(10 / 12, abs=1e-4)
    assert stats["roads_matched_ratio"] == pytest.approx(
        stats["roads_fully_matched_ratio"] + stats["roads_partially_matched_ratio"], abs=1e-4
    )
    assert stats["kms_processed"] > 0.08 * 10  # ten roads over 80 m, two tiny far ones
    assert stats["execution_time_sec"] > 0
    assert set(stats) >= {
        "kms_processed",
        "num_roads_processed",
        "roads_fully_matched_ratio",
        "roads_partially_matched_ratio",
        "roads_matched_ratio",
        "roads_unmatched_ratio",
        "confidence_threshold",
        "execution_time_sec",
    }


def test_every_record_is_answered_once_and_internal_columns_stay_internal(
    helsinki: Release,
) -> None:
    records = _chunk(helsinki, 0, 5, [FAR_AWAY, "", "POINT (24.94 60.17)"])
    result = KIND.run(records, _options(helsinki), helsinki)
    answered = result.results.column("recId").to_pylist()
    failed = result.errors.column("recId").to_pylist()
    assert sorted(answered + failed) == sorted(records.column("recId").to_pylist())
    assert result.errors.column("code").to_pylist() == ["missing_geometry", "not_a_line"]
    public = [name for name in result.results.column_names if not name.startswith("_")]
    assert public == [
        "recId",
        "seqNumber",
        "seqLength",
        "id",
        "status",
        "confidence",
        "matched_ratio",
        "length_m",
        "segments",
    ]
    far = result.results.to_pylist()[5]
    assert (far["status"], far["segments"], far["confidence"]) == ("unmatched", [], 0)


def test_a_chunk_of_only_bad_records_adds_nothing_but_the_rejections(helsinki: Release) -> None:
    options = _options(helsinki, confidence_threshold=45)
    bad = KIND.tally(KIND.run(_chunk(helsinki, 0, 0, ["POINT (1 1)"]), options, helsinki))
    assert (bad.successful, bad.no_match) == (0, 0)
    assert bad.extra["num_roads_processed"] == 0
    assert bad.extra["roads_rejected"] == 1
    good = KIND.tally(KIND.run(_chunk(helsinki, 0, 3, []), options, helsinki))
    summed = {name: bad.extra[name] + good.extra[name] for name in good.extra}
    stats = type_statistics("road_match", summed)
    assert stats["num_roads_processed"] == 3
    assert stats["confidence_threshold"] == 45


def _osm_xml_ways(path: Path) -> pa.Table:
    """The highway ways of an OSM XML file as road records (the DC files use negative ids)."""
    root = ET.parse(path).getroot()
    nodes = {
        n.attrib["id"]: (float(n.attrib["lon"]), float(n.attrib["lat"])) for n in root.iter("node")
    }
    ids, wkts = [], []
    for way in root.iter("way"):
        tags = {tag.attrib["k"]: tag.attrib["v"] for tag in way.iter("tag")}
        coords = [nodes[nd.attrib["ref"]] for nd in way.iter("nd") if nd.attrib["ref"] in nodes]
        if "highway" in tags and len(coords) > 1:
            ids.append(way.attrib["id"])
            wkts.append(shapely.LineString(coords).wkt)
    return pa.table(
        {
            "_ordinal": pa.array(np.arange(1, len(ids) + 1), pa.int64()),
            "recId": ids,
            "id": ids,
            "geometry": wkts,
        }
    )


def test_real_city_roads_that_lie_along_osm_are_matched(shared_data: Path, tmp_path: Path) -> None:
    """DC city GIS roads onto the OSM roads of the same area: those within 20 m of OSM roads
    along their whole length must come out matched, the others (mostly outside the OSM
    extract) mostly unmatched."""
    store = ReleaseStore(tmp_path)
    source = shared_data / "dc-roads" / "DcOsmRoads.osm"
    release = store.load(import_osm(source, store, gazetteer=False).id)
    records = _osm_xml_ways(shared_data / "dc-roads" / "DcGisRoads.osm")
    result = KIND.run(records, _options(release), release)
    assert result.results.column("recId").to_pylist() == records.column("recId").to_pylist()
    segments = shapely.from_wkb(release.table("segments").column("geometry").to_numpy(False))
    scale = np.array([np.cos(np.radians(38.9)) * 111_320, 111_320])  # metres near DC
    near = shapely.union_all(shapely.buffer(shapely.transform(segments, lambda xy: xy * scale), 20))
    lines = shapely.transform(
        shapely.from_wkt(records.column("geometry").to_pylist()), lambda xy: xy * scale
    )
    along = shapely.length(shapely.intersection(lines, near)) >= 0.95 * shapely.length(lines)
    status = np.asarray(result.results.column("status").to_pylist())
    ratio = np.asarray(result.results.column("matched_ratio"))
    assert along.sum() >= 80
    assert np.mean(status[along] != "unmatched") >= 0.9
    assert np.mean(ratio[along]) >= 0.85
    assert np.mean(status[~along] != "unmatched") <= 0.15  # no matches made up elsewhere


def test_recid_is_the_road_id_when_there_is_no_id_column(helsinki: Release) -> None:
    records = _chunk(helsinki, 0, 3, [FAR_AWAY]).drop_columns(["id"])
    for layout in ("roads", "pairs"):
        result = KIND.run(records, _options(helsinki, output_layout=layout), helsinki)
        table = result.results
        assert table.column("id").to_pylist() == table.column("recId").to_pylist()
        assert set(table.column("id").to_pylist()) == {"r0", "r1", "r2", "r3"}


def _stretch_lengths_m(geometry: shapely.Geometry) -> float:
    scale = np.array([np.cos(np.radians(60.17)) * 111_320, 111_320])  # metres near Helsinki
    return float(shapely.length(shapely.transform(geometry, lambda xy: xy * scale)))


@pytest.mark.parametrize("fmt", [OutputFormat.GEOJSON, OutputFormat.PARQUET])
def test_matched_geometry_per_road_and_per_pair(
    helsinki: Release, fmt: OutputFormat, tmp_path: Path
) -> None:
    records = _chunk(helsinki, 0, 4, [FAR_AWAY])
    roads = KIND.run(records, _options(helsinki, output_geometry="matched"), helsinki).results
    pairs = KIND.run(
        records, _options(helsinki, output_geometry="matched", output_layout="pairs"), helsinki
    ).results
    for table, kind in ((roads, "MultiLineString"), (pairs, "LineString")):
        geo = json.loads(table.schema.metadata[b"geo"])
        assert geo["columns"]["geometry"]["geometry_types"] == [kind]
        path = tmp_path / f"{kind}.{fmt.value}"
        with path.open("wb") as sink:
            write_output([lambda t=table: pa.BufferReader(_parquet_bytes(t))], fmt, sink)
        rows = read_output(path.read_bytes(), fmt)
        assert len(rows) == table.num_rows
        if fmt is OutputFormat.PARQUET:  # GeoParquet: the metadata travels to the output
            assert b"geo" in (pq.read_schema(path).metadata or {})
        else:
            assert rows[0]["geometry"]["type"] == kind
    by_road = roads.to_pylist()
    for row in by_road[:4]:
        shape = shapely.from_wkb(row["geometry"])
        assert shape.geom_type == "MultiLineString"
        # The stretches drawn add up to the lengths reported, and lie on the input road.
        reported = sum(s["length_m"] for s in row["segments"])
        assert _stretch_lengths_m(shape) == pytest.approx(reported, rel=0.02)
        road = shapely.from_wkt(records.column("geometry")[by_road.index(row)].as_py())
        assert shapely.hausdorff_distance(shape, road) < 1e-4  # the road is a reference segment
    assert by_road[4]["geometry"] is None  # unmatched: no geometry
    pair_rows = pairs.to_pylist()
    assert all(shapely.from_wkb(r["geometry"]).geom_type == "LineString" for r in pair_rows[:-1])
    assert pair_rows[-1]["geometry"] is None


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue())
