"""``POST /v1/match/roads``: road matching for a small GeoJSON FeatureCollection, synchronously.

The same engine and options as the ``road_match`` job type, for a few hundred roads or GPS
traces at most; bigger inputs belong in a job. A feature that cannot be matched (bad geometry)
is listed in the answer's ``errors`` with a reason code, and the others are still answered.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

import numpy as np
import pyarrow as pa
import shapely
import shapely.errors
import shapely.geometry
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from geobatch.api.deps import PlatformDep, TenantDep
from geobatch.engines.roadmatch import network_for
from geobatch.engines.roadmatch.chunk import match_records
from geobatch.engines.roadmatch.inputs import traces_from_points
from geobatch.errors import InvalidInput, PayloadTooLarge
from geobatch.jobs import Platform
from geobatch.jobs.types import job_type
from geobatch.jobs.types.road_match import RoadMatchOptions, params_of

router = APIRouter(prefix="/v1/match", tags=["road matching"])

MAX_BODY_BYTES: Final = 4 << 20
MAX_FEATURES: Final = 1000
GEOJSON_MEDIA_TYPE: Final = "application/geo+json"
_ANSWER_FIELDS: Final = ("status", "confidence", "matched_ratio", "length_m", "segments")


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the body of {declared} bytes exceeds {MAX_BODY_BYTES} bytes; "
            "submit a road_match job for larger inputs",
            limit=MAX_BODY_BYTES,
        )
    received = bytearray()
    async for piece in request.stream():
        received += piece
        if len(received) > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body exceeds {MAX_BODY_BYTES} bytes; submit a road_match job instead",
                limit=MAX_BODY_BYTES,
            )
    return bytes(received)


def _features(raw: bytes) -> list[Any]:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON ({exc})", code="bad_geojson") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise InvalidInput("the body must be a GeoJSON FeatureCollection", code="bad_geojson")
    features = document.get("features")
    if not isinstance(features, list):
        raise InvalidInput('the FeatureCollection has no "features" array', code="bad_geojson")
    if not features:
        raise InvalidInput("the FeatureCollection has no features", code="empty_input")
    if len(features) > MAX_FEATURES:
        raise InvalidInput(
            f"{len(features)} features; at most {MAX_FEATURES} per request "
            "(submit a road_match job for more)",
            code="too_many_features",
        )
    return features


def _property(feature: dict[str, Any], name: str) -> Any:
    props = feature.get("properties")
    return props.get(name) if isinstance(props, dict) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _parse(feature: Any) -> tuple[Any, str | None, str | None]:
    """(shapely geometry or None, reason code, message) of one feature."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, "invalid_geometry", "the element is not a GeoJSON Feature"
    geometry = feature.get("geometry")
    if geometry is None:
        return None, None, None
    if not isinstance(geometry, dict):
        return None, "invalid_geometry", "the geometry is not a JSON object"
    coordinates = geometry.get("coordinates")
    if (
        geometry.get("type") == "LineString"
        and isinstance(coordinates, list)
        and len(coordinates) == 1
    ):
        return None, "too_few_points", "the line has a single point"
    try:
        return shapely.geometry.shape(geometry), None, None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return None, "invalid_geometry", f"the geometry cannot be read ({exc})"
    except shapely.errors.ShapelyError as exc:
        return None, "invalid_geometry", f"the geometry cannot be read ({exc})"


def _records(
    features: list[Any], kind: Literal["roads", "traces"]
) -> tuple[pa.Table, list[int | None], list[dict[str, Any]]]:
    """The records to match (one per road or trace), the feature index of each (None for a
    trace grouped from Point features), and the errors found while parsing."""
    ids: list[str] = []
    positions: list[int | None] = []
    names: list[str | None] = []
    geometries: list[Any] = []
    errors: list[dict[str, Any]] = []
    points: list[tuple[str, float, float, str | None]] = []
    for index, feature in enumerate(features):
        geometry, code, problem = _parse(feature)
        if code is not None:
            errors.append({"index": index, "id": None, "code": code, "message": problem})
            continue
        given = (feature.get("id"), _property(feature, "id"), _property(feature, "recId"))
        ident = _text(next((value for value in given if value is not None), None))
        if kind == "traces" and geometry is not None and geometry.geom_type == "Point":
            trace = _text(_property(feature, "trace_id")) or ident or "1"
            stamp = _text(_property(feature, "timestamp") or _property(feature, "time"))
            points.append((trace, geometry.x, geometry.y, stamp))
            continue
        ids.append(ident or str(index + 1))
        positions.append(index)
        names.append(_text(_property(feature, "name")))
        geometries.append(geometry)
    if points:
        trace_ids, lons, lats, stamps = zip(*points, strict=True)
        for trace, geometry in traces_from_points(trace_ids, lons, lats, stamps):
            ids.append(trace)
            positions.append(None)
            names.append(None)
            geometries.append(geometry)
    shapes = np.empty(len(geometries), dtype=object)
    shapes[:] = geometries
    records = pa.table(
        {
            "_ordinal": pa.array(np.arange(1, len(ids) + 1), pa.int64()),
            "recId": pa.array(ids, pa.string()),
            "id": pa.array(ids, pa.string()),
            "name": pa.array(names, pa.string()),
            "geometry": pa.array(shapely.to_wkb(shapes), pa.binary()),
        }
    )
    return records, positions, errors


def _answer(options: RoadMatchOptions, features: list[Any], platform: Platform) -> dict[str, Any]:
    records, positions, errors = _records(features, options.input_kind)
    release = platform.release(options.release)
    batch = match_records(
        records,
        network_for(release),
        params_of(options),
        traces=options.input_kind == "traces",
    )
    table = batch.table(records).select(["recId", *_ANSWER_FIELDS])
    geometries = records.column("geometry").to_numpy(zero_copy_only=False)
    names = records.column("name").to_pylist()
    out = []
    for row, answer in zip(batch.rows, table.to_pylist(), strict=True):
        rec_id = answer.pop("recId")
        shape = shapely.from_wkb(geometries[row])
        out.append(
            {
                "type": "Feature",
                "id": rec_id,
                "geometry": json.loads(shapely.to_geojson(shape)),
                "properties": {"id": rec_id, "name": names[row], **answer},
            }
        )
    for error in batch.errors.to_pylist():
        errors.append(
            {
                "index": positions[error["_ordinal"] - 1],
                "id": error["recId"],
                "code": error["code"],
                "message": error["message"],
            }
        )
    errors.sort(key=lambda error: (error["index"] is None, error["index"] or 0))
    return {
        "type": "FeatureCollection",
        "release": release.manifest.id,
        "features": out,
        "errors": errors,
    }


@router.post(
    "/roads",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON_MEDIA_TYPE: {}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {GEOJSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
        }
    },
)
async def match_roads(
    request: Request,
    platform: PlatformDep,
    _tenant: TenantDep,
    release: Annotated[str | None, Query()] = None,
    confidence_threshold: Annotated[float, Query(ge=0, le=100)] = 60.0,
    search_radius_m: Annotated[float, Query(gt=0, le=500)] = 30.0,
    use_names: bool = True,
    input_kind: Literal["roads", "traces"] = "roads",
) -> JSONResponse:
    """Match the roads (LineString/MultiLineString features, optional ``name``) or GPS traces
    (LineString/MultiPoint features, or Point features with ``trace_id`` and ``timestamp``) of
    a GeoJSON FeatureCollection onto the reference network; answers a FeatureCollection."""
    options = job_type("road_match").parse_options(
        {
            "release": release,
            "confidence_threshold": confidence_threshold,
            "search_radius_m": search_radius_m,
            "use_names": use_names,
            "input_kind": input_kind,
        }
    )
    assert isinstance(options, RoadMatchOptions)
    features = _features(await _body(request))
    answer = await run_in_threadpool(_answer, options, features, platform)
    return JSONResponse(answer, media_type=GEOJSON_MEDIA_TYPE)
