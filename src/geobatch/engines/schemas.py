"""The record schema each job type declares: which columns a record needs and what they hold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class NumberRule:
    column: str
    minimum: float
    maximum: float


@dataclass(frozen=True, kw_only=True)
class RecordSchema:
    job_type: str
    required: tuple[str, ...] = ()
    """Columns every record must have, non-empty."""
    any_of: tuple[str, ...] = ()
    """At least one of these must be non-empty in each record."""
    numbers: tuple[NumberRule, ...] = ()
    geometry_types: tuple[str, ...] = ()
    """When set, a ``geometry`` column (WKB, or WKT text) of one of these types is required."""

    @property
    def header_columns(self) -> tuple[str, ...]:
        """Columns the header must name: the required ones and the geometry."""
        return self.required + (("geometry",) if self.geometry_types else ())


ADDRESS_FIELDS = (
    "searchText",
    "street",
    "houseNumber",
    "postalCode",
    "city",
    "county",
    "state",
    "country",
)

RECORD_SCHEMAS: dict[str, RecordSchema] = {
    "geocode": RecordSchema(job_type="geocode", any_of=ADDRESS_FIELDS),
    "reverse_geocode": RecordSchema(
        job_type="reverse_geocode",
        required=("lat", "lon"),
        numbers=(
            NumberRule(column="lat", minimum=-90, maximum=90),
            NumberRule(column="lon", minimum=-180, maximum=180),
        ),
    ),
    "lookup": RecordSchema(job_type="lookup", required=("id",)),
    "road_match": RecordSchema(
        job_type="road_match",
        any_of=("id", "recId"),  # the road id: either names it, as in every other job type
        geometry_types=("LineString", "MultiLineString"),
    ),
}


def missing_columns(schema: RecordSchema, columns: tuple[str, ...]) -> list[str]:
    """Columns the schema needs that a header lacks (names compare case-insensitively)."""
    present = {column.lower() for column in columns}
    missing = [column for column in schema.header_columns if column.lower() not in present]
    if schema.geometry_types and "wkt" in present and "geometry" in missing:
        missing.remove("geometry")
    if schema.any_of and not present.intersection(c.lower() for c in schema.any_of):
        missing.append(" or ".join(schema.any_of))
    return missing
