"""Geocoding engines: forward (text or address parts to places), reverse, lookup by id."""

from geobatch.engines.geocode.batch import geocode_records
from geobatch.engines.geocode.forward import (
    Candidate,
    ForwardGeocoder,
    forward_geocoder,
    parse_at,
)
from geobatch.engines.geocode.output import GEOCODE_COLUMNS, MATCH_LEVELS, geocode_table

__all__ = [
    "GEOCODE_COLUMNS",
    "MATCH_LEVELS",
    "Candidate",
    "ForwardGeocoder",
    "forward_geocoder",
    "geocode_records",
    "geocode_table",
    "parse_at",
]
