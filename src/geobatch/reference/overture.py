"""Build a reference release from Overture Maps GeoParquet files.

Overture publishes one GeoParquet dataset per theme/type; this importer takes any mix of
``transportation/segment``, ``transportation/connector``, ``addresses/address`` and
``places/place`` files and writes the release tables the engines read: road segments split
at their connectors (``overture_roads``), connectors, addresses and places
(``overture_points``). Files are read in record batches, only the columns used; addresses
and places are written batch by batch, while road pieces (compact Arrow and numpy arrays)
are held until every connector is known and the nodes can be numbered.

Every file is opened and checked (Parquet, known kind, WKB geometry, not empty) before the
release is started, so a bad input fails fast with a one-sentence ``ReleaseError``; a failure
while building leaves no release behind (``ReleaseStore.building``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from geobatch.reference.batches import Bounds
from geobatch.reference.overture_points import (
    CONNECTOR_ROWS,
    OvertureDataError,
    address_rows,
    connector_rows,
    place_rows,
)
from geobatch.reference.overture_roads import Pieces, number_nodes, road_pieces
from geobatch.reference.release import (
    Manifest,
    ReleaseBuilder,
    ReleaseError,
    ReleaseStore,
    check_release_id,
)

READ_ROWS = 65_536
"""Rows per record batch read: large enough to amortise the vectorised work per batch."""

SEGMENTS, CONNECTORS = "overture-segments", "overture-connectors"
ADDRESSES, PLACES = "overture-addresses", "overture-places"

_RELEASE_DAY = re.compile(r"(?:^|/)(\d{4}-\d{2}-\d{2})(?:\.\d+)?(?:/|$)")
Convert = Callable[[pa.RecordBatch], pa.Table]


@dataclass(frozen=True)
class Kind:
    """What identifies one Overture theme/type and which of its columns the importer reads."""

    label: str  # Overture's theme/type
    required: tuple[str, ...]
    either: tuple[str, ...] = ()  # at least one of these (a column renamed across releases)
    reads: tuple[str, ...] = ()  # further columns (or struct children) read if present

    def missing(self, columns: set[str]) -> list[str]:
        gaps = [c for c in self.required if c not in columns]
        if self.either and not columns.intersection(self.either):
            gaps.append(" or ".join(self.either))
        return gaps

    @property
    def distinctive(self) -> set[str]:
        return set(self.required + self.either) - {"id", "geometry"}


KINDS: dict[str, Kind] = {
    SEGMENTS: Kind(
        "transportation/segment",
        ("id", "geometry", "subtype", "class"),
        ("connectors", "connector_ids"),
        ("names.primary", "names.common", "access_restrictions", "road_flags", "level_rules"),
    ),
    CONNECTORS: Kind("transportation/connector", ("id", "geometry")),
    ADDRESSES: Kind(
        "addresses/address",
        ("id", "geometry", "country", "street", "number"),
        reads=("postcode", "unit", "address_levels", "postal_city"),
    ),
    PLACES: Kind(
        "places/place",
        ("id", "geometry", "names", "categories"),
        reads=("names.primary", "names.common", "categories.primary", "addresses"),
    ),
}


def detect_kind(columns: Sequence[str], source: str = "the file") -> str:
    """The kind of an Overture file from its column names.

    Connector files have only the columns every feature has, so a file is taken for one only
    when it has none of the other kinds' own columns; a file that has some of them is
    reported as that kind with the columns it lacks.
    """
    names = set(columns)
    others = [kind for kind in KINDS if kind != CONNECTORS]
    complete = [kind for kind in others if not KINDS[kind].missing(names)]
    if len(complete) > 1:
        raise ReleaseError(
            f"{source} has the columns of several Overture kinds ({', '.join(complete)}); "
            "give its kind explicitly"
        )
    if complete:
        return complete[0]
    closest = max(others, key=lambda kind: len(KINDS[kind].distinctive & names))
    if KINDS[closest].distinctive & names:
        raise _wrong_schema(source, closest, KINDS[closest].missing(names))
    if KINDS[CONNECTORS].missing(names):
        raise _wrong_schema(source, None, KINDS[CONNECTORS].missing(names))
    return CONNECTORS


def _wrong_schema(source: str, kind: str | None, missing: list[str]) -> ReleaseError:
    what = f"an Overture {KINDS[kind].label}" if kind else "an Overture GeoParquet"
    return ReleaseError(
        f"{source} is not {what} file (wrong schema): it lacks the columns {', '.join(missing)}"
    )


@dataclass(frozen=True)
class _Input:
    path: Path
    kind: str
    columns: list[str]


def _inspect(path: Path, kind: str | None) -> _Input:
    """Check one file without reading its rows: Parquet, kind, WKB geometry, not empty."""
    if not path.is_file():
        raise ReleaseError(f"{path} does not exist or is not a file")
    try:
        with pq.ParquetFile(path) as parquet:
            arrow, rows = parquet.schema_arrow, parquet.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise ReleaseError(f"{path} is not a readable Parquet file ({exc})") from None
    if kind is None:
        kind = detect_kind(arrow.names, str(path))
    elif missing := KINDS[kind].missing(set(arrow.names)):
        raise _wrong_schema(str(path), kind, missing)
    _check_geometry(path, arrow)
    if rows == 0:
        raise ReleaseError(f"{path} has no rows")
    spec = KINDS[kind]
    wanted = [*spec.required, *spec.either[:1], *spec.reads]
    if kind == SEGMENTS and "connectors" not in arrow.names:
        wanted.append("connector_ids")  # releases before 2024-06
    return _Input(path, kind, [c for c in wanted if _has(arrow, c)])


def _has(schema: pa.Schema, column: str) -> bool:
    """Whether a column, or a ``struct.child`` path, exists (children differ across releases)."""
    top, _, child = column.partition(".")
    if top not in schema.names:
        return False
    kind = schema.field(top).type
    return not child or (pa.types.is_struct(kind) and kind.get_field_index(child) >= 0)


def _check_geometry(path: Path, schema: pa.Schema) -> None:
    """The geometry must be WKB, as the GeoParquet ``geo`` metadata says where it is given."""
    kind = schema.field("geometry").type
    storage = kind.storage_type if isinstance(kind, pa.ExtensionType) else kind
    if not (pa.types.is_binary(storage) or pa.types.is_large_binary(storage)):
        raise ReleaseError(f"{path} has a geometry column of type {kind}, not WKB")
    raw = (schema.metadata or {}).get(b"geo")
    try:
        geo = json.loads(raw) if raw else {}
        encoding = geo.get("columns", {}).get("geometry", {}).get("encoding", "WKB")
    except (ValueError, AttributeError):
        raise ReleaseError(f"{path} has unreadable GeoParquet metadata") from None
    if str(encoding).upper() != "WKB":
        raise ReleaseError(f"{path} stores its geometry as {encoding}, not WKB")


def _batches(source: _Input) -> Iterator[pa.RecordBatch]:
    """The file's record batches, geometry as plain WKB binary."""
    try:
        with pq.ParquetFile(source.path) as parquet:
            for batch in parquet.iter_batches(batch_size=READ_ROWS, columns=source.columns):
                geometry = batch.column("geometry")
                if isinstance(geometry, pa.ExtensionArray):
                    at = batch.schema.get_field_index("geometry")
                    batch = batch.set_column(at, "geometry", geometry.storage)
                yield batch
    except (pa.ArrowException, OSError) as exc:
        raise ReleaseError(f"{source.path} could not be read ({exc})") from None


def _rows(sources: list[_Input], convert: Convert, bounds: Bounds) -> Iterator[pa.RecordBatch]:
    """Converted rows of all the files of one kind, batch by batch, widening ``bounds``."""
    for source in sources:
        with _naming(source):
            for batch in _batches(source):
                table = convert(batch)
                bounds.update(table.column("lon").to_numpy(), table.column("lat").to_numpy())
                yield from table.to_batches()


@contextmanager
def _naming(source: _Input) -> Iterator[None]:
    """Turns a data error in one file into a ``ReleaseError`` that names the file."""
    try:
        yield
    except (OvertureDataError, shapely.errors.GEOSException, pa.ArrowException) as exc:
        raise ReleaseError(f"{source.path} could not be imported: {exc}") from None


def _write_roads(
    builder: ReleaseBuilder, sources: list[_Input], known: pa.Table, bounds: Bounds
) -> None:
    """Segments and connectors: all road pieces are gathered, then their nodes numbered."""
    parts: list[Pieces] = []
    for source in sources:
        with _naming(source):
            lookup = known if known.num_rows else None  # only connector_ids need it
            parts.extend(road_pieces(batch, lookup) for batch in _batches(source))
    pieces = Pieces.concat(parts)
    segments, connectors = number_nodes(pieces, known)
    bounds.update(pieces.coords[:, 0], pieces.coords[:, 1])
    bounds.update(connectors.column("lon").to_numpy(), connectors.column("lat").to_numpy())
    builder.write_table("segments", segments)
    builder.write_table("connectors", connectors)


def release_day(paths: Sequence[Path]) -> str:
    """The day of the Overture release the files come from: the ``YYYY-MM-DD`` of the release
    in their path (``.../release/2024-09-18.0/theme=...``), else their newest modification day.
    """
    for path in paths:
        if match := _RELEASE_DAY.search(str(Path(path).resolve())):
            return match.group(1)
    newest = max(Path(path).stat().st_mtime for path in paths)
    return f"{datetime.fromtimestamp(newest, UTC):%Y-%m-%d}"


def import_overture(
    paths: Sequence[Path], store: ReleaseStore, *, kind: str | None, name: str | None = None
) -> Manifest:
    """Build one release from Overture files of any kinds (``kind=None`` detects each one).

    The release is named ``name`` (default ``overture``) and its id is
    ``<name>-<release_day>``, made unique with a ``-N`` suffix. Returns its manifest.
    """
    if kind is not None and kind not in KINDS:
        raise ReleaseError(f"unknown Overture kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not paths:
        raise ReleaseError("no Overture files were given")
    inputs = [_inspect(Path(path), kind) for path in paths]
    by_kind = {k: [i for i in inputs if i.kind == k] for k in KINDS}
    legacy = [i.path for i in by_kind[SEGMENTS] if "connector_ids" in i.columns]
    if legacy and not by_kind[CONNECTORS]:
        raise ReleaseError(
            f"{legacy[0]} lists connector_ids without positions (a release before 2024-06), "
            "so the connector files must be imported with it"
        )
    base = check_release_id(name) if name else "overture"
    release_id = f"{base}-{release_day([i.path for i in inputs])}"
    bounds = Bounds()
    with store.building(release_id, base, auto_suffix=True) as builder:
        for item in inputs:
            builder.add_source(item.path, item.kind)
        known = pa.Table.from_batches(
            list(_rows(by_kind[CONNECTORS], connector_rows, bounds)), schema=CONNECTOR_ROWS
        )
        if by_kind[SEGMENTS] or by_kind[CONNECTORS]:
            _write_roads(builder, by_kind[SEGMENTS], known, bounds)
        if by_kind[ADDRESSES]:
            builder.write_table("addresses", _rows(by_kind[ADDRESSES], address_rows, bounds))
        if by_kind[PLACES]:
            builder.write_table("places", _rows(by_kind[PLACES], place_rows, bounds))
        builder.bbox = bounds.bbox
    return builder.manifest
