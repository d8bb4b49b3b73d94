"""``road_match`` over HTTP on a real server: GeoJSON and CSV-WKT jobs, the error report,
the statistics, the flat layout, and the single-shot ``POST /v1/match/roads``."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geobatch.io.outputs import OutputFormat
from geobatch.reference import Release
from tests.e2e.helpers import (
    assert_problem,
    check_exactly_once,
    create_job,
    download,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

OFFSET_DEG = 3 / 111_320  # three metres north
BAD = {
    "bad-point": ("POINT (24.94 60.17)", "not_a_line"),
    "bad-one-point": ("LINESTRING (24.94 60.17)", "too_few_points"),
    "bad-range": ("LINESTRING (24.94 95, 24.95 96)", "coordinates_out_of_range"),
    "bad-crs": ("LINESTRING (385000 6672000, 385100 6672100)", "wrong_crs"),
    "bad-empty": ("LINESTRING EMPTY", "empty_geometry"),
}


def _roads(helsinki: Release, count: int = 30) -> list[dict[str, Any]]:
    """Reference segments longer than 80 m, moved three metres: each should match itself."""
    segments = helsinki.table("segments")
    lengths = segments.column("length_m").to_numpy()
    rows = np.flatnonzero(lengths > 80)[:: max(1, int(np.sum(lengths > 80)) // count)][:count]
    geometries = shapely.from_wkb(segments.column("geometry").take(rows).to_numpy(False))
    moved = shapely.transform(geometries, lambda xy: xy + np.array([0.0, OFFSET_DEG]))
    ids = segments.column("id").take(rows).to_pylist()
    names = segments.column("name").take(rows).to_pylist()
    return [
        {"recId": f"road-{i}", "id": sid, "name": name or "", "wkt": shapely.to_wkt(line)}
        for i, (sid, name, line) in enumerate(zip(ids, names, moved, strict=True))
    ]


def _geojson(roads: list[dict[str, Any]], bad: bool = True) -> bytes:
    features = [
        {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(shapely.from_wkt(road["wkt"]))),
            "properties": {"recId": road["recId"], "id": road["id"], "name": road["name"]},
        }
        for road in roads
    ]
    if bad:
        for rec_id, (wkt, _code) in BAD.items():
            geometry = (
                {"type": "LineString", "coordinates": [[24.94, 60.17]]}
                if rec_id == "bad-one-point"  # shapely cannot even build it
                else json.loads(shapely.to_geojson(shapely.from_wkt(wkt)))
            )
            features.append(
                {"type": "Feature", "geometry": geometry, "properties": {"recId": rec_id}}
            )
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def _csv(roads: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["recId", "id", "name", "geometry"])
    for road in roads:
        writer.writerow([road["recId"], road["id"], road["name"], road["wkt"]])
    for rec_id, (wkt, _code) in BAD.items():
        writer.writerow([rec_id, rec_id, "", wkt])
    return out.getvalue().encode()


def _run(client: httpx.Client, body: bytes, media_type: str, options: dict[str, Any]) -> str:
    job = create_job(
        client,
        body,
        media_type=media_type,
        params={"type": "road_match", "options": json.dumps(options)},
    )
    wait_for_status(client, job["id"], "succeeded", timeout=120)
    return str(job["id"])


def _check_statistics(job: dict[str, Any], roads: int, km: float, threshold: float) -> None:
    stats = job["statistics"]
    assert stats["num_roads_processed"] == roads
    assert stats["kms_processed"] == pytest.approx(km, rel=0.01)
    assert stats["confidence_threshold"] == threshold
    assert stats["execution_time_sec"] > 0
    full, partial = stats["roads_fully_matched_ratio"], stats["roads_partially_matched_ratio"]
    assert stats["roads_matched_ratio"] == pytest.approx(full + partial, abs=1e-3)
    assert stats["roads_matched_ratio"] + stats["roads_unmatched_ratio"] == pytest.approx(1, 1e-3)
    assert stats["roads_matched_ratio"] >= 0.9
    assert stats["successful_records"] + stats["no_match_records"] == roads
    assert stats["failed_records"] == len(BAD)


def test_geojson_job_matches_roads_and_reports_bad_geometries(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    roads = _roads(helsinki)
    job_id = _run(
        shared_client,
        _geojson(roads),
        "application/geo+json",
        {"release": helsinki.manifest.id, "confidence_threshold": 55},
    )
    results = download(shared_client, job_id, fmt=OutputFormat.GEOJSON)
    errors = download(shared_client, job_id, errors=True, fmt=OutputFormat.CSV)
    check_exactly_once(
        [r["recId"] for r in results] + [e["recId"] for e in errors],
        [r["recId"] for r in roads] + list(BAD),
    )
    codes = {e["recId"]: e["code"] for e in errors}
    expected = {rec_id: code for rec_id, (_wkt, code) in BAD.items()}
    expected["bad-one-point"] = "bad_feature"  # GeoJSON cannot even hold a one-point line
    assert codes == expected
    by_rec = {r["recId"]: r for r in results}
    own = [
        road["id"] in {s["segment_id"] for s in by_rec[road["recId"]]["segments"]} for road in roads
    ]
    assert np.mean(own) >= 0.9
    row = by_rec[roads[0]["recId"]]
    assert row["id"] == roads[0]["id"]
    assert row["status"] in ("full", "partial")
    assert 0 <= row["confidence"] <= 100
    km = sum(r["length_m"] for r in results) / 1000
    job = shared_client.get(f"/v1/jobs/{job_id}").json()
    _check_statistics(job, len(roads), km, 55)


def test_csv_wkt_job_in_pairs_layout(shared_client: httpx.Client, helsinki: Release) -> None:
    roads = _roads(helsinki, count=12)
    job_id = _run(
        shared_client,
        _csv(roads),
        "text/csv",
        {"release": helsinki.manifest.id, "output_layout": "pairs"},
    )
    rows = download(shared_client, job_id, fmt=OutputFormat.CSV)
    assert {"segment_id", "from_fraction", "to_fraction", "input_from_m"} <= set(rows[0])
    per_road: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_road.setdefault(row["recId"], []).append(row)
    assert set(per_road) == {r["recId"] for r in roads}
    for road in roads:
        pairs = per_road[road["recId"]]
        assert [int(p["seqNumber"]) for p in pairs] == list(range(1, len(pairs) + 1))
        assert {int(p["seqLength"]) for p in pairs} == {len(pairs)}
        assert all(0 <= float(p["from_fraction"]) <= 1 for p in pairs)
    matched = [road["id"] in {p["segment_id"] for p in per_road[road["recId"]]} for road in roads]
    assert np.mean(matched) >= 0.9
    errors = download(shared_client, job_id, errors=True)
    assert {e["recId"]: e["code"] for e in errors} == {k: v[1] for k, v in BAD.items()}
    job = shared_client.get(f"/v1/jobs/{job_id}").json()
    assert job["statistics"]["num_roads_processed"] == len(roads)
    assert job["statistics"]["confidence_threshold"] == 60


@pytest.mark.parametrize(
    ("crs", "accepted"),
    [
        ({"id": {"authority": "EPSG", "code": 4326}}, True),
        (None, True),  # no crs member: OGC:CRS84 by the GeoParquet spec
        ({"id": {"authority": "EPSG", "code": 3857}}, False),
    ],
    ids=["epsg-4326", "crs84-by-default", "epsg-3857"],
)
def test_geoparquet_job_checks_the_declared_crs(
    shared_client: httpx.Client, helsinki: Release, crs: dict[str, Any] | None, accepted: bool
) -> None:
    roads = _roads(helsinki, count=4)
    column: dict[str, Any] = {"encoding": "WKB"} if crs is None else {"encoding": "WKB", "crs": crs}
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}
    wkb = [shapely.to_wkb(shapely.from_wkt(road["wkt"])) for road in roads]
    table = pa.table({"id": [road["id"] for road in roads], "geometry": pa.array(wkb, pa.binary())})
    body = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), body)
    job_id = _run(
        shared_client,
        body.getvalue(),
        "application/vnd.apache.parquet",
        {"release": helsinki.manifest.id},
    )
    assert len(download(shared_client, job_id)) == (4 if accepted else 0)
    codes = [e["code"] for e in download(shared_client, job_id, errors=True)]
    assert codes == ([] if accepted else ["wrong_crs"] * 4)


def test_gps_traces_job_takes_multipoints(shared_client: httpx.Client, helsinki: Release) -> None:
    roads = _roads(helsinki, count=3)
    rows = [["recId", "id", "geometry"]]
    for road in roads:
        line = shapely.from_wkt(road["wkt"])
        fixes = [line.interpolate(f, normalized=True) for f in np.linspace(0, 1, 6)]
        rows.append([road["recId"], road["id"], shapely.to_wkt(shapely.MultiPoint(fixes))])
    rows.append(["lonely", "lonely", "MULTIPOINT (24.94 60.17)"])
    body = "\n".join(",".join(f'"{v}"' for v in row) for row in rows).encode()
    job_id = _run(
        shared_client,
        body,
        "text/csv",
        {"release": helsinki.manifest.id, "input_kind": "traces", "output_layout": "pairs"},
    )
    pairs = download(shared_client, job_id)
    for road in roads:
        assert road["id"] in {p["segment_id"] for p in pairs if p["recId"] == road["recId"]}
    errors = download(shared_client, job_id, errors=True)
    assert [(e["recId"], e["code"]) for e in errors] == [("lonely", "too_few_points")]


def test_single_shot_endpoint_answers_a_feature_collection(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    roads = _roads(helsinki, count=5)
    response = shared_client.post(
        "/v1/match/roads",
        params={"release": helsinki.manifest.id, "search_radius_m": 25},
        content=_geojson(roads),
        headers={"Content-Type": "application/geo+json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    answer = response.json()
    assert answer["type"] == "FeatureCollection"
    assert answer["release"] == helsinki.manifest.id
    assert [f["properties"]["id"] for f in answer["features"]] == [r["id"] for r in roads]
    first = answer["features"][0]
    assert first["geometry"]["type"] == "LineString"
    assert first["properties"]["status"] in ("full", "partial")
    assert roads[0]["id"] in {s["segment_id"] for s in first["properties"]["segments"]}
    reported = {e["index"]: e["code"] for e in answer["errors"]}
    assert reported == {len(roads) + i: code for i, (_wkt, code) in enumerate(BAD.values())}


def test_a_csv_with_only_recid_gets_matched_geometry_in_geojson(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    roads = _roads(helsinki, count=4)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["recId", "geometry"])
    writer.writerows([road["recId"], road["wkt"]] for road in roads)
    options = {"release": helsinki.manifest.id, "output_geometry": "matched"}
    job_id = _run(shared_client, out.getvalue().encode(), "text/csv", options)
    results = download(shared_client, job_id, fmt=OutputFormat.GEOJSON)
    assert [r["id"] for r in results] == [r["recId"] for r in results]
    assert sorted(r["recId"] for r in results) == sorted(r["recId"] for r in roads)
    for row in results:
        assert row["status"] in ("full", "partial")
        assert row["geometry"]["type"] == "MultiLineString"
        assert len(row["geometry"]["coordinates"]) == len(row["segments"])


def test_single_shot_takes_recid_as_the_road_id(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    roads = _roads(helsinki, count=2)
    features = [
        {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(shapely.from_wkt(road["wkt"]))),
            "properties": {"recId": road["recId"]},
        }
        for road in roads
    ]
    response = shared_client.post(
        "/v1/match/roads",
        params={"release": helsinki.manifest.id},
        json={"type": "FeatureCollection", "features": features},
    )
    assert response.status_code == 200, response.text
    answered = response.json()["features"]
    assert [f["id"] for f in answered] == [r["recId"] for r in roads]
    assert [f["properties"]["id"] for f in answered] == [r["recId"] for r in roads]


def test_single_shot_groups_point_features_into_a_trace(
    shared_client: httpx.Client, helsinki: Release
) -> None:
    (road,) = _roads(helsinki, count=1)
    line = shapely.from_wkt(road["wkt"])
    fixes = [line.interpolate(f, normalized=True) for f in np.linspace(0, 1, 8)]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [p.x, p.y]},
            "properties": {"trace_id": "t1", "timestamp": f"2024-05-01T10:00:{59 - i:02d}Z"},
        }
        for i, p in enumerate(reversed(fixes))
    ]
    response = shared_client.post(
        "/v1/match/roads",
        params={"release": helsinki.manifest.id, "input_kind": "traces"},
        json={"type": "FeatureCollection", "features": features},
    )
    assert response.status_code == 200, response.text
    (feature,) = response.json()["features"]
    assert feature["id"] == "t1"
    assert feature["geometry"]["coordinates"][0] == pytest.approx([fixes[0].x, fixes[0].y])
    assert road["id"] in {s["segment_id"] for s in feature["properties"]["segments"]}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 422, "bad_geojson"),
        (b'{"type": "Feature"}', 422, "bad_geojson"),
        (b'{"type": "FeatureCollection", "features": []}', 422, "empty_input"),
    ],
)
def test_single_shot_rejects_bad_bodies_as_problems(
    shared_client: httpx.Client, body: bytes, status: int, code: str
) -> None:
    response = shared_client.post(
        "/v1/match/roads", content=body, headers={"Content-Type": "application/geo+json"}
    )
    assert_problem(response, status, code=code)


def test_single_shot_limits(shared_client: httpx.Client) -> None:
    point = {"type": "Feature", "geometry": None, "properties": {}}
    many = {"type": "FeatureCollection", "features": [point] * 1001}
    response = shared_client.post("/v1/match/roads", json=many)
    assert_problem(response, 422, code="too_many_features")
    huge = b" " * (5 << 20)
    response = shared_client.post(
        "/v1/match/roads", content=huge, headers={"Content-Type": "application/geo+json"}
    )
    assert_problem(response, 413)
    response = shared_client.post(
        "/v1/match/roads", params={"confidence_threshold": 120}, json=many
    )
    assert_problem(response, 422)
