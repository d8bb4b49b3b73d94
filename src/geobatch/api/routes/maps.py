"""Map data: a release's basemap and a sample of a job's results, as bounded GeoJSON.

These are what the console's maps draw, and any other map client can use them too: the
basemap comes from the release itself, so a map needs no tile server on the internet.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Response

from geobatch.api.deps import PlatformDep, TenantDep
from geobatch.jobs.maps import basemap, job_parts, parse_bbox, point_sample, road_sample

router = APIRouter(tags=["maps"])

GEOJSON = "application/geo+json"
_GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {GEOJSON: {"schema": {"type": "object"}}},
        "description": "a FeatureCollection",
    }
}
_NUMBER = r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"
BBOX_PATTERN = rf"^{_NUMBER}(,{_NUMBER}){{3}}$"


@router.get(
    "/v1/releases/{release_id}/basemap", response_class=Response, responses=_GEOJSON_RESPONSE
)
async def release_basemap(
    release_id: str,
    platform: PlatformDep,
    _tenant: TenantDep,
    bbox: Annotated[
        str, Query(description="min_lon,min_lat,max_lon,max_lat", pattern=BBOX_PATTERN)
    ],
    max_roads: Annotated[int, Query(ge=1, le=20_000)] = 5000,
    max_places: Annotated[int, Query(ge=0, le=5000)] = 300,
) -> Response:
    """The release's road segments (``layer: road``, ``road_class``, ``name``) and places
    (``layer: place``) inside ``bbox``; with more roads than ``max_roads``, major ones first.
    ``roads_in_bbox`` says how many there were in all."""
    box = parse_bbox(bbox)

    def build() -> str:
        release = platform.release(release_id)
        return basemap(release, box, max_roads=max_roads, max_places=max_places)

    return Response(await anyio.to_thread.run_sync(build), media_type=GEOJSON)


@router.get("/v1/jobs/{job_id}/sample", response_class=Response, responses=_GEOJSON_RESPONSE)
async def job_sample(
    job_id: str,
    platform: PlatformDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 2000,
) -> Response:
    """Up to ``limit`` result rows spread evenly over the job's results so far, as features:
    points (``layer: result``, ``match_level``, ``confidence``, ``label``) for geocoding,
    reverse geocoding and lookup; for road matching each sampled input road (``layer:
    input``) and the stretches of reference segments matched to it (``layer: matched``).
    ``total_rows`` and ``sampled_rows`` say how much of the job the sample stands for."""

    def build() -> str:
        job, parts = job_parts(platform.service, tenant, job_id)
        if job.type == "road_match":
            return road_sample(parts, platform.release(job.options.get("release")), limit)
        return point_sample(parts, limit)

    return Response(await anyio.to_thread.run_sync(build), media_type=GEOJSON)
