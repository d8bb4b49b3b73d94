"""Ready indexes inside a release: built once at import, memory-mapped by every worker.

``build_indexes`` runs every builder over a release's finished tables and writes their
arrays under ``<release>/indexes/``; the engines open them with the readers here
(``RoadArrays.open`` ...), which map the files instead of reading them, so workers share one
copy through the page cache and a fresh worker answers without building anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from geobatch.reference.indexes.files import (
    INDEX_DIR,
    FileEntry,
    IndexFileError,
    describe,
    open_array,
    open_table,
    verify,
    write_array,
    write_table,
)
from geobatch.reference.indexes.gazetteer import build_gazetteer_index
from geobatch.reference.indexes.geocode import build_geocode_index
from geobatch.reference.indexes.grid import GridIndex
from geobatch.reference.indexes.lookup import build_lookup_index
from geobatch.reference.indexes.names import build_names_index
from geobatch.reference.indexes.projection import LocalProjection
from geobatch.reference.indexes.reverse import build_reverse_index
from geobatch.reference.indexes.roads import RoadArrays, build_road_index
from geobatch.reference.indexes.routes import RouteTable
from geobatch.reference.indexes.subdivisions import build_subdivisions_index
from geobatch.reference.memory import release_memory

INDEX_VERSION = 8
"""Bumped whenever an index's layout changes: releases of another version must be rebuilt."""

TableReader = Callable[[str], pa.Table]
IndexBuilder = Callable[[Path, TableReader], None]


def _subdivisions(folder: Path, table: TableReader) -> None:
    build_subdivisions_index(folder, table("places"))


def _names(folder: Path, table: TableReader) -> None:
    build_names_index(folder, table("places"), table("streets"))


def _roads(folder: Path, table: TableReader) -> None:
    build_road_index(folder, table("segments"), table("connectors"))


def _lookup(folder: Path, table: TableReader) -> None:
    build_lookup_index(
        folder,
        table("addresses"),
        table("places"),
        table("streets"),
        table("segments"),
        table("connectors"),
        table("gazetteer"),
    )


def _reverse(folder: Path, table: TableReader) -> None:
    build_reverse_index(
        folder, table("addresses"), table("segments"), table("places"), table("gazetteer")
    )


def _geocode(folder: Path, table: TableReader) -> None:
    build_geocode_index(
        folder, table("streets"), table("addresses"), table("places"), table("gazetteer")
    )


def _gazetteer(folder: Path, table: TableReader) -> None:
    build_gazetteer_index(folder, table("gazetteer"), table("places"))


BUILDERS: dict[str, IndexBuilder] = {
    "subdivisions": _subdivisions,
    "roads": _roads,
    "lookup": _lookup,
    "reverse": _reverse,
    "geocode": _geocode,
    "gazetteer": _gazetteer,
    "names": _names,
}
"""Every index of a release, by name; each writes its files under ``indexes/<name>/``. In
this order: the lookup and reverse-geocoding indexes read the subdivisions index."""


def build_indexes(folder: Path, table: TableReader) -> None:
    """Build every index of the release in ``folder`` from its tables (``table(name)``)."""
    for build in BUILDERS.values():
        release_memory()  # what the previous step freed, so peaks do not add up
        build(folder, table)


__all__ = [
    "BUILDERS",
    "INDEX_DIR",
    "INDEX_VERSION",
    "FileEntry",
    "GridIndex",
    "IndexFileError",
    "LocalProjection",
    "RoadArrays",
    "RouteTable",
    "build_indexes",
    "describe",
    "open_array",
    "open_table",
    "verify",
    "write_array",
    "write_table",
]
