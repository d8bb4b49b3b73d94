"""Map data for viewers: a release's roads and places in a box, and a sample of a job's results.

Both answer GeoJSON FeatureCollections of bounded size, whatever the size of the release or the
job: a browser draws a few thousand features smoothly, not millions. The basemap keeps the most
important roads when a box holds more than asked for; the sample takes rows spread evenly over
the job's committed result parts, reading only the columns it draws.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
import shapely.ops

from geobatch.errors import Conflict, Gone, InvalidInput
from geobatch.jobs import layout
from geobatch.jobs.models import Job
from geobatch.jobs.service import JobService
from geobatch.jobs.states import JobStatus
from geobatch.reference import Release

BBox = tuple[float, float, float, float]

ROAD_RANK: Final[dict[str, int]] = {
    name: rank
    for rank, name in enumerate(
        ["motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential"]
    )
}
"""Which roads a crowded box keeps first; classes not listed come after these."""

POINT_COLUMNS: Final = ("recId", "label", "match_level", "confidence", "lat", "lon")
"""Result columns a point feature carries (those the job type has)."""


def parse_bbox(text: str) -> BBox:
    """``min_lon,min_lat,max_lon,max_lat`` in degrees, as in GeoJSON and OGC APIs."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidInput("bbox must be min_lon,min_lat,max_lon,max_lat", field="bbox")
    west, south, east, north = values
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InvalidInput(
            "bbox must satisfy -180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90",
            field="bbox",
        )
    return west, south, east, north


def _collection(features: list[str], **members: Any) -> str:
    extra = "".join(f',"{key}":{json.dumps(value)}' for key, value in members.items())
    return f'{{"type":"FeatureCollection"{extra},"features":[{",".join(features)}]}}'


def _feature(geometry: str, properties: dict[str, Any]) -> str:
    return f'{{"type":"Feature","geometry":{geometry},"properties":{json.dumps(properties)}}}'


# --- basemap -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _segment_index(release: Release) -> tuple[np.ndarray, np.ndarray]:
    """Each road segment's bounds (n x 4) and rank, computed once per loaded release."""
    segments = release.table("segments")
    geometries = shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False))
    classes = segments.column("road_class").to_pylist()
    ranks = np.array([ROAD_RANK.get(c or "", len(ROAD_RANK)) for c in classes], dtype=np.int16)
    return shapely.bounds(geometries), ranks


def basemap(release: Release, bbox: BBox, *, max_roads: int, max_places: int) -> str:
    """Roads and named places of the release inside ``bbox``, important ones first."""
    west, south, east, north = bbox
    bounds, ranks = _segment_index(release)
    inside = np.flatnonzero(
        (bounds[:, 0] <= east)
        & (bounds[:, 2] >= west)
        & (bounds[:, 1] <= north)
        & (bounds[:, 3] >= south)
    )
    chosen = inside[np.argsort(ranks[inside], kind="stable")[:max_roads]]
    segments = release.table("segments").take(pa.array(np.sort(chosen), pa.int64()))
    shapes = shapely.from_wkb(segments.column("geometry").to_numpy(zero_copy_only=False))
    texts = shapely.to_geojson(shapely.set_precision(shapes, 1e-6))
    features = [
        _feature(text, {"layer": "road", "road_class": road_class, "name": name})
        for text, road_class, name in zip(
            texts,
            segments.column("road_class").to_pylist(),
            segments.column("name").to_pylist(),
            strict=True,
        )
    ]
    places = release.table("places")
    lon, lat = places.column("lon"), places.column("lat")
    box = pc.and_(
        pc.and_(pc.greater_equal(lon, west), pc.less_equal(lon, east)),
        pc.and_(pc.greater_equal(lat, south), pc.less_equal(lat, north)),
    )
    found = places.filter(box).select(["name", "category", "kind", "population", "lon", "lat"])
    found = found.sort_by([("kind", "descending"), ("population", "descending")])
    for row in found.slice(0, max_places).to_pylist():
        point = f'{{"type":"Point","coordinates":[{row["lon"]:.6f},{row["lat"]:.6f}]}}'
        features.append(
            _feature(
                point,
                {"layer": "place", "name": row["name"], "category": row["category"]},
            )
        )
    return _collection(features, release=release.manifest.id, roads_in_bbox=len(inside))


# --- job result sample ---------------------------------------------------------------------

PartOpener = Callable[[], BinaryIO]


@dataclass(frozen=True, kw_only=True)
class ResultParts:
    """A job's committed parts, in input order: (seq, opener of its results, of its input)."""

    results: list[tuple[int, PartOpener]]
    inputs: dict[int, PartOpener]


def job_parts(service: JobService, tenant: str, job_id: str) -> tuple[Job, ResultParts]:
    """The tenant's job and its committed parts so far (a running job shows what is done)."""
    job = service.get(tenant, job_id)
    if job.status is JobStatus.EXPIRED:
        raise Gone(f"Job {job_id} has expired; its files were deleted.")
    if job.status is JobStatus.CANCELLED:
        raise Gone(f"Job {job_id} was cancelled; its results were discarded.")
    if job.status is JobStatus.FAILED:
        raise Conflict(f"Job {job_id} failed and has no results.")
    storage = service.storage

    def opener(key: str) -> PartOpener:
        return lambda: storage.open_read(key)

    seqs = service.store.done_seqs(job_id)
    return job, ResultParts(
        results=[(seq, opener(layout.result_key(job_id, seq))) for seq in seqs],
        inputs={seq: opener(layout.chunk_key(job_id, seq)) for seq in seqs},
    )


def _read(opener: PartOpener, columns: list[str] | None = None) -> pa.Table:
    """A part, or only those of ``columns`` that it has."""
    handle = opener()
    try:
        parquet = pq.ParquetFile(handle)
        names = parquet.schema_arrow.names
        return parquet.read(columns=[c for c in columns if c in names] if columns else None)
    finally:
        handle.close()


def _row_counts(parts: list[tuple[int, PartOpener]]) -> list[int]:
    counts = []
    for _seq, opener in parts:
        handle = opener()
        try:
            counts.append(pq.ParquetFile(handle).metadata.num_rows)
        finally:
            handle.close()
    return counts


def _sampled(
    parts: ResultParts, limit: int, columns: list[str] | None = None
) -> tuple[int, list[tuple[int, pa.Table, np.ndarray]]]:
    """The number of result rows, and (seq, part, rows to take) for up to ``limit`` rows
    spread evenly over all parts; parts with none of them are not read."""
    counts = _row_counts(parts.results)
    total = sum(counts)
    wanted = np.unique(np.linspace(0, total - 1, num=min(limit, total)).astype(np.int64))
    found = []
    start = 0
    for (seq, opener), count in zip(parts.results, counts, strict=True):
        local = wanted[(wanted >= start) & (wanted < start + count)] - start
        start += count
        if len(local):
            found.append((seq, _read(opener, columns), local))
    return total, found


def _value(value: Any) -> Any:
    return None if isinstance(value, float) and not np.isfinite(value) else value


def point_sample(parts: ResultParts, limit: int) -> str:
    """Result rows with coordinates as points carrying their match level and confidence
    (a sampled row without a position, such as a record that matched nothing, is not drawn)."""
    features: list[str] = []
    total, sampled = _sampled(parts, limit, list(POINT_COLUMNS))
    for _seq, table, rows in sampled:
        if "lat" not in table.column_names or "lon" not in table.column_names:
            continue
        columns = [c for c in POINT_COLUMNS if c in table.column_names]
        for row in table.select(columns).take(pa.array(rows)).to_pylist():
            lat, lon = _value(row.pop("lat")), _value(row.pop("lon"))
            if lat is None or lon is None:
                continue
            point = f'{{"type":"Point","coordinates":[{float(lon):.6f},{float(lat):.6f}]}}'
            features.append(_feature(point, {"layer": "result", **row}))
    taken = sum(len(rows) for _seq, _table, rows in sampled)
    return _collection(features, total_rows=total, sampled_rows=taken)


GEOMETRY_COLUMNS: Final = ("geometry", "wkt", "WKT")
"""Where a road_match input record keeps its geometry (WKB, or WKT from CSV)."""


def _input_geometries(table: pa.Table, ordinals: set[int]) -> dict[int, Any]:
    """The input geometry of each wanted record of a chunk (WKB or WKT), by ordinal."""
    column = next((c for c in GEOMETRY_COLUMNS if c in table.column_names), None)
    if column is None:
        return {}
    keep = pc.is_in(table.column("_ordinal"), value_set=pa.array(sorted(ordinals), pa.int64()))
    found = table.filter(keep)
    values = found.column(column).to_numpy(zero_copy_only=False)
    if pa.types.is_binary(found.schema.field(column).type):
        shapes = shapely.from_wkb(values, on_invalid="ignore")
    else:
        shapes = shapely.from_wkt(values, on_invalid="ignore")
    return dict(zip(found.column("_ordinal").to_pylist(), shapes, strict=True))


def _pieces(row: dict[str, Any]) -> list[dict[str, Any]]:
    if "segments" in row:
        return list(row["segments"] or [])
    return [row] if row.get("segment_id") else []


def road_sample(parts: ResultParts, release: Release, limit: int) -> str:
    """Sampled roads: each input road, and the stretches of reference segments it matched."""
    total, sampled = _sampled(parts, limit)
    roads: list[tuple[int, dict[str, Any]]] = []
    for seq, table, rows in sampled:
        roads.extend((seq, row) for row in table.take(pa.array(rows)).to_pylist())
    by_seq: dict[int, set[int]] = {}
    for seq, row in roads:
        by_seq.setdefault(seq, set()).add(row["_ordinal"])
    inputs: dict[tuple[int, int], Any] = {}
    for seq, ordinals in by_seq.items():
        if seq in parts.inputs:
            chunk = _read(parts.inputs[seq], ["_ordinal", *GEOMETRY_COLUMNS])
            for ordinal, shape in _input_geometries(chunk, ordinals).items():
                inputs[(seq, ordinal)] = shape
    wanted = sorted({p["segment_id"] for _s, row in roads for p in _pieces(row)})
    segments = release.table("segments")
    found = segments.filter(pc.is_in(segments.column("id"), value_set=pa.array(wanted)))
    lines = dict(
        zip(
            found.column("id").to_pylist(),
            shapely.from_wkb(found.column("geometry").to_numpy(zero_copy_only=False)),
            strict=True,
        )
    )
    features: list[str] = []
    seen: set[tuple[int, int]] = set()
    for seq, row in roads:
        road = {"recId": row["recId"], "id": row.get("id"), "status": row.get("status")}
        shape = inputs.get((seq, row["_ordinal"]))
        if shape is not None and (seq, row["_ordinal"]) not in seen:
            seen.add((seq, row["_ordinal"]))
            features.append(_feature(shapely.to_geojson(shape), {"layer": "input", **road}))
        for piece in _pieces(row):
            line = lines.get(piece["segment_id"])
            if line is None:
                continue
            low, high = sorted((piece["from_fraction"], piece["to_fraction"]))
            stretch = shapely.ops.substring(line, low, high, normalized=True)
            properties = {
                "layer": "matched",
                **road,
                "segment_id": piece["segment_id"],
                "confidence": piece.get("confidence"),
            }
            features.append(_feature(shapely.to_geojson(stretch), properties))
    return _collection(features, total_rows=total, sampled_rows=len(roads))
