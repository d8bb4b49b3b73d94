"""``GET /v1/reverse`` and ``GET /v1/lookup``: one point or a few ids, answered at once.

The same engines and checks as the ``reverse_geocode`` and ``lookup`` job types; a bad
coordinate or a blank id is a ``422`` problem naming the parameter, while a point with nothing
near or an unknown id is a normal answer whose item has a null ``match_level``.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import numpy as np
import pyarrow as pa
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from geobatch.api.deps import PlatformDep, TenantDep
from geobatch.api.routes.geocode import LangQuery
from geobatch.engines import RECORD_SCHEMAS
from geobatch.engines.geocode.language import localize
from geobatch.engines.geocode.lookup import DEFAULT_LIMIT, lookup
from geobatch.engines.geocode.reverse import (
    DEFAULT_RADIUS_M,
    DEFAULT_STREET_RADIUS_M,
    ReverseSettings,
    reverse_geocode,
)
from geobatch.engines.validate import validate_records
from geobatch.errors import InvalidInput
from geobatch.jobs import Platform
from geobatch.reference import Release

router = APIRouter(prefix="/v1", tags=["geocoding"])

MAX_IDS: Final = 100
_HIDDEN: Final = ("_ordinal", "recId")


def _coordinates(at: str) -> tuple[float, float]:
    """``lat,lon`` checked by the reverse_geocode record rules (ranges, numbers)."""
    parts = at.split(",")
    if len(parts) != 2:
        raise InvalidInput(
            f"at: expected 'lat,lon' (two numbers separated by a comma), got {at!r}", field="at"
        )
    records = pa.table(
        {
            "_ordinal": pa.array([0], pa.int64()),
            "recId": pa.array(["at"]),
            "lat": pa.array([parts[0]]),
            "lon": pa.array([parts[1]]),
        }
    )
    checked = validate_records(records, RECORD_SCHEMAS["reverse_geocode"]).results
    reason = checked.column("reason")[0].as_py()
    if reason is not None:
        raise InvalidInput(f"at: {reason}", field="at")
    return float(parts[0]), float(parts[1])


def _release(platform: Platform, release_id: str | None) -> Release:
    """The release asked for (else the newest); an unknown one is a 422 naming ``release``."""
    try:
        return platform.release(release_id)
    except InvalidInput as exc:
        raise InvalidInput(exc.detail.removeprefix("options."), field="release") from None


def _in_language(release: Release, table: pa.Table, lang: str | None) -> pa.Table:
    return localize(table, [lang] * table.num_rows, release) if lang else table


def _items(table: pa.Table) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in row.items() if key not in _HIDDEN}
        for row in table.to_pylist()
    ]


@router.get("/reverse")
async def reverse(
    platform: PlatformDep,
    _tenant: TenantDep,
    at: Annotated[str, Query(description="The point as 'lat,lon' in degrees (WGS 84).")],
    radius: Annotated[float, Query(gt=0, le=1_000, description="Address radius, m.")] = (
        DEFAULT_RADIUS_M
    ),
    street_radius: Annotated[float, Query(gt=0, le=5_000, description="Street radius, m.")] = (
        DEFAULT_STREET_RADIUS_M
    ),
    limit: Annotated[int, Query(ge=1, le=100, description="Most candidates, best first.")] = 1,
    release: Annotated[str | None, Query(description="Release id; the newest if absent.")] = None,
    lang: LangQuery = None,
) -> dict[str, Any]:
    """The address, street, locality, region or country at a point (``reverse_geocode``)."""
    lat, lon = _coordinates(at)
    loaded = await run_in_threadpool(_release, platform, release)
    settings = ReverseSettings(radius_m=radius, street_radius_m=street_radius, limit=limit)
    found = await run_in_threadpool(
        reverse_geocode, loaded, np.array([lat]), np.array([lon]), settings
    )
    found = await run_in_threadpool(_in_language, loaded, found, lang)
    return {"release": loaded.manifest.id, "items": _items(found)}


@router.get("/lookup")
async def lookup_ids(
    platform: PlatformDep,
    _tenant: TenantDep,
    id: Annotated[
        list[str],
        Query(description="Reference ids (osm:node/1, osm:way/2:0, geonames:2988507, ...)."),
    ],
    limit: Annotated[int, Query(ge=1, le=1_000, description="Most objects per id.")] = (
        DEFAULT_LIMIT
    ),
    release: Annotated[str | None, Query(description="Release id; the newest if absent.")] = None,
    lang: LangQuery = None,
) -> dict[str, Any]:
    """The objects a release keeps under each id; an unknown id has one empty item."""
    if len(id) > MAX_IDS:
        raise InvalidInput(
            f"id: {len(id)} ids; at most {MAX_IDS} per request (submit a lookup job for more)",
            field="id",
        )
    blank = [position for position, value in enumerate(id) if not value.strip()]
    if blank:
        raise InvalidInput(f"id: id number {blank[0] + 1} is empty", field="id")
    loaded = await run_in_threadpool(_release, platform, release)
    found = await run_in_threadpool(lookup, loaded, list(id), limit)
    found = await run_in_threadpool(_in_language, loaded, found, lang)
    items = _items(found)
    for item, position in zip(items, found.column("_ordinal").to_pylist(), strict=True):
        item["id"] = id[position]
    return {"release": loaded.manifest.id, "items": items}
