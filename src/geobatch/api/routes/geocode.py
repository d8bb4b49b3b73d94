"""``GET /v1/geocode``: one address or place, free text or structured, answered at once.

The same engine as the ``geocode`` job type. A query with nothing to search for, a bad
``at`` or ``country`` is a ``422`` problem naming the parameter; a query that matches nothing
is a normal answer with no items.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from geobatch.api.deps import PlatformDep, TenantDep
from geobatch.engines.geocode import Candidate, forward_geocoder, parse_at
from geobatch.engines.geocode.areas import subdivisions_index
from geobatch.engines.geocode.language import LANGUAGE_PATTERN, localize
from geobatch.errors import InvalidInput
from geobatch.reference import Release
from geobatch.reference.indexes.subdivisions import result_subdivisions

router = APIRouter(prefix="/v1", tags=["geocoding"])

LangQuery = Annotated[
    str | None,
    Query(
        pattern=LANGUAGE_PATTERN,
        description="BCP 47 language tag (sv, en-US): street, city, district and county names "
        "in this language where the release has them.",
    ),
]


Found = tuple[Candidate, str | None, str | None]
"""A candidate with its district and county."""


def _item(found: Found) -> dict[str, Any]:
    candidate, district, county = found
    return {
        "lat": candidate.lat,
        "lon": candidate.lon,
        "label": candidate.label,
        "houseNumber": candidate.house_number,
        "street": candidate.street,
        "postalCode": candidate.postal_code,
        "city": candidate.city,
        "district": district,
        "county": county,
        "state": candidate.state,
        "country": candidate.country,
        "match_level": candidate.match_level,
        "confidence": candidate.confidence,
        "ref_id": candidate.ref_id,
    }


def _search(
    release: Release,
    text: str | None,
    fields: dict[str, str | None],
    country: str | None,
    at: tuple[float, float] | None,
    limit: int,
) -> list[Found]:
    geocoder = forward_geocoder(release)
    found = geocoder.geocode(text, fields=fields, country=country, at=at, limit=limit)
    district, county = result_subdivisions(
        subdivisions_index(release),
        np.array([c.lat for c in found], dtype=np.float64),
        np.array([c.lon for c in found], dtype=np.float64),
        np.array([c.match_level for c in found], dtype=object),
        np.array([c.label for c in found], dtype=object),
    )
    return list(zip(found, district.tolist(), county.tolist(), strict=True))


def _in_language(release: Release, items: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    table = localize(pa.Table.from_pylist(items), [lang] * len(items), release)
    return list(table.to_pylist())


@router.get("/geocode")
async def geocode(
    platform: PlatformDep,
    _tenant: TenantDep,
    q: Annotated[str | None, Query(description="Free text: '12 Rue Grimaldi, Monaco'.")] = None,
    street: Annotated[str | None, Query(description="Street name (may hold the number).")] = None,
    houseNumber: Annotated[str | None, Query(description="House number: 12, 12b, 12-14.")] = None,
    postalCode: Annotated[str | None, Query(description="Postcode.")] = None,
    city: Annotated[str | None, Query(description="City, town or district.")] = None,
    county: Annotated[str | None, Query(description="County.")] = None,
    state: Annotated[str | None, Query(description="State or region: 'IL', 'Illinois'.")] = None,
    country: Annotated[
        str | None,
        Query(description="ISO 3166-1 alpha-2 code: only candidates in this country."),
    ] = None,
    at: Annotated[str | None, Query(description="'lat,lon': prefer candidates near here.")] = None,
    limit: Annotated[int, Query(ge=1, le=10, description="Most candidates, best first.")] = 1,
    release: Annotated[str | None, Query(description="Release id; the newest if absent.")] = None,
    lang: LangQuery = None,
) -> dict[str, Any]:
    """Coordinates, address parts, match level and confidence for an address or place."""
    fields = {
        "street": street,
        "house_number": houseNumber,
        "postcode": postalCode,
        "city": city,
        "county": county,
        "state": state,
    }
    if not (q and q.strip()) and not any(v and v.strip() for v in fields.values()):
        raise InvalidInput(
            "q: give free text in q, or at least one of street, houseNumber, postalCode, city, "
            "county, state",
            field="q",
        )
    code = None
    if country is not None:
        code = country.strip().upper()
        if len(code) != 2 or not code.isalpha():
            raise InvalidInput(
                f"country: expected an ISO 3166-1 alpha-2 code such as 'FI', got {country!r}",
                field="country",
            )
    bias = None
    if at is not None:
        try:
            bias = parse_at(at)
        except ValueError as exc:
            raise InvalidInput(f"at: {exc}", field="at") from None
    loaded = await run_in_threadpool(platform.release, release)
    found = await run_in_threadpool(_search, loaded, q, fields, code, bias, limit)
    items = [_item(c) for c in found]
    if lang and items:
        items = await run_in_threadpool(_in_language, loaded, items, lang)
    return {"release": loaded.manifest.id, "items": items}
