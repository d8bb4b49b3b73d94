"""``geocode``: free text or address columns to coordinates, with match level and confidence."""

from __future__ import annotations

import re

import pyarrow as pa
from pydantic import Field, field_validator

from geobatch.engines import RECORD_SCHEMAS, EngineResult
from geobatch.engines.geocode import geocode_records, parse_at
from geobatch.engines.geocode.language import localized
from geobatch.jobs.types import JobType, NamedResultOptions, register
from geobatch.jobs.types.reverse_geocode import tally_candidates
from geobatch.reference import Release

_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


class GeocodeOptions(NamedResultOptions):
    truncate_at: int = Field(
        default=1, ge=1, le=10, description="Most candidates per record, best first."
    )
    country: str | None = Field(
        default=None,
        description="ISO 3166-1 alpha-2 code: only candidates in this country are returned.",
    )
    at: str | None = Field(
        default=None,
        description="'lat,lon': prefer candidates near this point (ties, same-name cities).",
    )

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _COUNTRY.match(value):
            raise ValueError(f"expected an ISO 3166-1 alpha-2 code such as 'FI', got {value!r}")
        return value.upper()

    @field_validator("at")
    @classmethod
    def _bias(cls, value: str | None) -> str | None:
        if value is not None:
            parse_at(value)
        return value


def _run(records: pa.Table, options: GeocodeOptions, release: Release | None) -> EngineResult:
    assert release is not None  # uses_release: the worker always passes one
    found = geocode_records(
        records,
        release,
        truncate_at=options.truncate_at,
        country=options.country,
        at=parse_at(options.at) if options.at else None,
    )
    return localized(found, records, options.lang, release)


register(
    JobType(
        name="geocode",
        options_model=GeocodeOptions,
        record_schema=lambda _options: RECORD_SCHEMAS["geocode"],
        run=_run,
        tally=tally_candidates,
        uses_release=True,
    )
)
