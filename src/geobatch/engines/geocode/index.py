"""The forward-geocoding index of a release's own data, as a worker uses it: mapped, not built.

``local_index`` covers the release's own streets, address points, places and POIs (the
worldwide GeoNames part is in ``gazetteer``). Everything was built at import
(``reference.indexes.geocode``); here the files are only mapped, and the objects a query
touches (a ``Street`` with its house numbers, an ``Area``) are made from their rows on demand
and remembered in bounded caches. Folded keys find rows through sorted 64-bit hashes; the
distinct names for rapidfuzz are read only when an exact key misses.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from geobatch.engines.geocode.cache import Memo, cached
from geobatch.engines.geocode.gazetteer import Area
from geobatch.engines.geocode.normalize import plain_umlauts, street_core
from geobatch.reference import Release
from geobatch.reference.indexes.files import open_array, open_table
from geobatch.reference.indexes.geocode import PREFIX
from geobatch.reference.indexes.keys import KeyIndex, single_array

CACHE_SIZE = 50_000
"""Remembered answers per lookup table; beyond it the cache starts again (it is a speed-up)."""
_ASCII_DIGIT = re.compile(r"[0-9]")
_ZEROS = str.maketrans("123456789", "000000000")
_ZERO_BYTES = bytes.maketrans(b"123456789", b"000000000")
"""Every digit written as "0": a query's shape for the names without digits (``FuzzyKeys``)."""

T = TypeVar("T")


class Street:
    """One street of the index: each field is read from the mapped rows when first asked
    for, so ranking many same-named streets by town costs only their towns."""

    def __init__(self, streets: Streets, index: int) -> None:
        self._streets = streets
        self.index = index

    @cached_property
    def name(self) -> str:
        return self._streets.names[self.index]

    @cached_property
    def ref_id(self) -> str | None:
        return self._streets.ref_ids[self.index]

    @cached_property
    def lon(self) -> float:
        return float(self._streets.lon[self.index])

    @cached_property
    def lat(self) -> float:
        return float(self._streets.lat[self.index])

    @cached_property
    def city(self) -> str | None:
        return self._streets.cities[self.index]

    @cached_property
    def country(self) -> str | None:
        return self._streets.countries[self.index]

    @cached_property
    def localities(self) -> set[str]:
        """Folded names of the towns the street is known in."""
        return set(self._streets.localities[self.index].as_py() or ())

    @cached_property
    def postcodes(self) -> set[str]:
        return set(self._streets.postcodes[self.index].as_py() or ())

    @cached_property
    def line(self) -> shapely.Geometry | None:
        start, end = self._streets.span(self._streets.piece_starts, self.index)
        if end == start:
            return None
        pieces = self._streets.pieces.slice(start, end - start).to_numpy(zero_copy_only=False)
        return shapely.multilinestrings(shapely.from_wkb(pieces))

    @cached_property
    def numbers(self) -> dict[str, int]:
        """House-number key -> address row."""
        start, end = self._streets.span(self._streets.number_starts, self.index)
        keys = self._streets.number_keys.slice(start, end - start).to_pylist()
        return dict(zip(keys, self._streets.number_rows[start:end].tolist(), strict=True))

    @cached_property
    def sorted_numbers(self) -> np.ndarray:
        """The numeric house numbers, ascending (with ``sorted_rows``, for interpolation)."""
        start, end = self._streets.span(self._streets.sorted_starts, self.index)
        return np.asarray(self._streets.sorted_values[start:end])

    @cached_property
    def number_list(self) -> list[int]:
        """``sorted_numbers`` as a list, for bisecting."""
        return list(self.sorted_numbers.tolist())

    @cached_property
    def sorted_rows(self) -> np.ndarray:
        start, end = self._streets.span(self._streets.sorted_starts, self.index)
        return np.asarray(self._streets.sorted_rows[start:end])


class _Memo(dict[object, T]):
    """A bounded per-process memo of ``make(key)``, read as ``memo[key]`` (thread-safe enough:
    values never change). A dict that makes what it misses: a key already made costs one
    lookup in C, no Python call."""

    def __init__(self, make: Callable[[object], T]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: object) -> T:
        if len(self) >= CACHE_SIZE:
            self.clear()
        value = self[key] = self.make(key)
        return value


class Members:
    """Key -> the rows filed under it (ascending), for asking which of many rows are."""

    def __init__(self, index: KeyIndex) -> None:
        self.index = index
        self._rows = _Memo(self._find)

    def _find(self, key: object) -> np.ndarray:
        group = self.index.group(key) if isinstance(key, str) else -1
        if group < 0:
            return np.zeros(0, dtype=np.int64)
        return self.index.rows[int(self.index.starts[group]) : int(self.index.starts[group + 1])]

    def rows(self, key: str) -> np.ndarray:
        """The rows filed under ``key``, a mapped slice."""
        return self._rows[key]

    def holding(self, key: str, rows: np.ndarray) -> np.ndarray:
        """Whether each of ``rows`` is filed under ``key``."""
        filed = self._rows[key]
        if not len(filed):
            return np.zeros(len(rows), dtype=bool)
        position = np.minimum(np.searchsorted(filed, rows), len(filed) - 1)
        return np.asarray(filed[position] == rows)


class Rows:
    """Folded key -> row numbers, read from a mapped ``KeyIndex``."""

    def __init__(self, index: KeyIndex) -> None:
        self.index = index
        self._rows = _Memo(self._find)
        self._arrays = Members(index)

    def array(self, key: str) -> np.ndarray:
        """The rows of ``key`` as a mapped array (empty where the key is unknown)."""
        return self._arrays.rows(key)

    def _find(self, key: object) -> list[int] | None:
        group = self.index.group(key) if isinstance(key, str) else -1
        if group < 0:
            return None
        start, end = int(self.index.starts[group]), int(self.index.starts[group + 1])
        rows: list[int] = self.index.rows[start:end].tolist()
        return rows

    def get(self, key: str, default: list[int] | None = None) -> list[int] | None:
        found = self._rows[key]
        return default if found is None else found

    def __getitem__(self, key: str) -> list[int]:
        found = self._rows[key]
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._rows[key] is not None

    def values(self) -> Iterator[list[int]]:
        """Every key's rows (reads the whole index: for tools, not for queries)."""
        starts = self.index.starts.tolist()
        for group in range(len(starts) - 1):
            yield self.index.rows[starts[group] : starts[group + 1]].tolist()


@dataclass(frozen=True)
class Countries:
    """Each row's country as a number into ``names`` (-1: none), so that many rows are
    judged by their few countries."""

    codes: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, countries: list[str | None]) -> Countries:
        names = sorted({country for country in countries if country})
        number = {name: code for code, name in enumerate(names)}
        codes = [number[country] if country else -1 for country in countries]
        return cls(np.array(codes, dtype=np.int64), names)


class Column:
    """One mapped Arrow column read row by row as Python values."""

    def __init__(self, values: pa.Array) -> None:
        self.values = values

    def __getitem__(self, row: int) -> str | None:
        value: str | None = self.values[row].as_py()
        return value

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[str | None]:
        for start in range(0, len(self.values), 65_536):
            yield from self.values.slice(start, 65_536).to_pylist()


class Names(Column):
    """A column without nulls (names, kinds)."""

    def __getitem__(self, row: int) -> str:
        return super().__getitem__(row) or ""


def _column(table: pa.Table, name: str) -> Column:
    return Column(single_array(table.column(name)))


def _names(table: pa.Table, name: str) -> Names:
    return Names(single_array(table.column(name)))


@dataclass(frozen=True, kw_only=True)
class Addresses:
    ids: Column
    numbers: Column
    postcodes: Column
    cities: Column
    states: Column
    lon: np.ndarray
    lat: np.ndarray


class Places:
    """Places and POIs: row fields, rows by folded name, and the names for fuzzy search."""

    def __init__(self, folder: Path) -> None:
        table = open_table(folder, f"{PREFIX}/places")
        self.ids = _column(table, "id")
        self.names = _names(table, "name")
        self.kinds = _names(table, "kind")
        self.countries = _column(table, "country")
        self.lon = open_array(folder, f"{PREFIX}/places/lon")
        self.lat = open_array(folder, f"{PREFIX}/places/lat")
        self.by_key = Rows(KeyIndex.open(folder, f"{PREFIX}/places/keys"))
        self._folder = folder
        self._keys: list[str] | None = None

    @property
    def keys(self) -> list[str]:
        """Every distinct folded name (read on the first fuzzy search, then kept)."""
        if self._keys is None:
            self._keys = _distinct(self._folder, f"{PREFIX}/places/names")
        return self._keys

    @cached_property
    def fuzzy(self) -> FuzzyKeys:
        """``keys`` for fuzzy search."""
        return FuzzyKeys(self.keys)


class FuzzyKeys:
    """Distinct names for ``fuzz.ratio`` searches.

    The ratio of two texts depends only on their lengths and their longest common
    subsequence, and no digit of a query is in a name without digits: against those names a
    query scores what it scores with each of its digits written as "0". Their matches are
    remembered per such shape, so that the many queries naming one street and town with
    other house numbers share one search. Of the few names with digits, each shape also
    remembers those that any query of it may match (``_Numbered``): mostly none.
    """

    REMEMBERED = 20_000
    """Shapes whose matches are remembered (then it starts again)."""

    def __init__(self, keys: list[str]) -> None:
        numbered = [bool(_ASCII_DIGIT.search(key)) for key in keys]
        self.plain = _ByLength(keys, [i for i, has in enumerate(numbered) if not has])
        self.numbered = _Numbered(keys, [i for i, has in enumerate(numbered) if has])
        self._shapes: Memo[tuple[str, float, int], _ShapeMatches] = Memo(self.REMEMBERED)

    def forget(self) -> None:
        """Drop the remembered matches (to measure queries as new)."""
        self._shapes.clear()

    def extract(self, query: str, cutoff: float, limit: int) -> list[tuple[str, float]]:
        """What ``process.extract(query, keys, scorer=fuzz.ratio, limit=limit,
        score_cutoff=cutoff)`` finds, in its order (best first, then by position in ``keys``),
        as (name, score)."""
        shape = _shape(query)
        found, numbered = self._shapes.made(
            (shape, cutoff, limit), self._shape_matches, shape, cutoff, limit
        )
        if numbered is not None and (more := numbered.extract(query, cutoff, limit)):
            found = sorted([*found, *more], key=_best_then_first)[:limit]
        return [(name, score) for name, score, _ in found]

    def same_for_shape(self, shape: str, cutoff: float, limit: int) -> bool:
        """Whether ``extract`` finds the same for every query of ``shape`` (``number_shape``):
        no name with digits may match them."""
        _, numbered = self._shapes.made(
            (shape, cutoff, limit), self._shape_matches, shape, cutoff, limit
        )
        return numbered is None

    def _shape_matches(self, shape: str, cutoff: float, limit: int) -> _ShapeMatches:
        return self.plain.extract(shape, cutoff, limit), self.numbered.may_match(shape, cutoff)


class _ByLength:
    """Some of the names, by length: a name much shorter or longer than the query cannot
    reach the cut-off (the ratio is at most twice the shorter length over both lengths), so
    only the names of lengths that can are scored."""

    def __init__(self, keys: list[str], chosen: list[int]) -> None:
        self.order = sorted(chosen, key=lambda i: len(keys[i]))
        self.keys = [keys[i] for i in self.order]
        self.lengths = [len(key) for key in self.keys]

    def window(self, size: int, cutoff: float) -> tuple[int, int]:
        """The positions of the names whose lengths may reach ``cutoff`` with a query of
        ``size`` characters."""
        shortest = math.floor(cutoff * size / (200.0 - cutoff)) - 1  # a unit of slack
        longest = math.ceil((200.0 - cutoff) * size / cutoff) + 1 if cutoff > 0 else math.inf
        start = bisect.bisect_left(self.lengths, shortest)
        return start, bisect.bisect_right(self.lengths, longest)

    def extract(self, query: str, cutoff: float, limit: int) -> list[tuple[str, float, int]]:
        """The ``limit`` best names at least ``cutoff`` alike, as (name, score, position in
        all the names), best first, then by position."""
        start, end = self.window(len(query), cutoff)
        if start >= end:
            return []
        found = process.extract(
            query, self.keys[start:end], scorer=fuzz.ratio, limit=None, score_cutoff=cutoff
        )
        named = [(name, score, self.order[start + at]) for name, score, at in found]
        named.sort(key=_best_then_first)
        return named[:limit]


class _Numbered(_ByLength):
    """The names with digits. A query's common subsequence with one is at most that of the
    two without their digits plus the fewer digits of the two, which the query's shape tells:
    the names whose ratio that bound keeps below the cut-off are left out for the shape."""

    def __init__(self, keys: list[str], chosen: list[int]) -> None:
        super().__init__(keys, chosen)
        self.names = keys
        self.letters = [_ASCII_DIGIT.sub("", key) for key in self.keys]

    def may_match(self, shape: str, cutoff: float) -> _ByLength | None:
        """The names a query of ``shape`` may match at ``cutoff`` (None: none)."""
        letters = shape.replace("0", "")
        digits, size = len(shape) - len(letters), len(shape)
        start, end = self.window(size, cutoff)
        kept = [
            self.order[at]
            for at in range(start, end)
            if 200.0 * self._most(at, letters, digits)
            >= (cutoff - _SLACK) * (size + self.lengths[at])
        ]
        return _ByLength(self.names, kept) if kept else None

    def _most(self, at: int, letters: str, digits: int) -> int:
        """The longest common subsequence a query of these letters and ``digits`` digits may
        have with the name at ``at``."""
        bare = self.letters[at]
        return LCSseq.similarity(letters, bare) + min(digits, self.lengths[at] - len(bare))


_ShapeMatches = tuple[list[tuple[str, float, int]], _ByLength | None]
"""A shape's matches among the names without digits, and the names with digits it may match."""
_SLACK = 1e-6
"""Below the cut-off a bound may be and still keep its name: rapidfuzz rounds its own way."""


def _best_then_first(item: tuple[str, float, int]) -> tuple[float, int]:
    return -item[1], item[2]


def _shape(query: str) -> str:
    """``query`` with every digit written as "0" (through bytes where it is ASCII, which is
    several times faster)."""
    if query.isascii():
        return query.encode("ascii").translate(_ZERO_BYTES).decode("ascii")
    return query.translate(_ZEROS)


def number_shape(key: str) -> str | None:
    """``key`` with each digit written as "0" (``_shape``), None where it has no digit."""
    return None if _ASCII_DIGIT.search(key) is None else _shape(key)


def _distinct(folder: Path, name: str) -> list[str]:
    keys: list[str] = open_table(folder, name).column("key").to_pylist()
    return keys


def _area(table: pa.Table, row: int) -> Area:
    values = {name: table.column(name)[row].as_py() for name in table.column_names}
    return Area(**values)


class Areas:
    """Folded name -> the localities and regions of that name (``Area``), in row order; their
    places, countries and levels also as columns, so that a country's many towns of one name
    are ranked without making each into an ``Area``."""

    def __init__(self, table: pa.Table, keys: KeyIndex) -> None:
        self.table = table
        self.rows = Rows(keys)
        self._areas = _Memo(self._find)
        self._area = _Memo(lambda row: _area(self.table, int(row)))  # type: ignore[call-overload]
        self._regions = _Memo(self._any_region)

    def _find(self, key: object) -> list[Area] | None:
        rows = self.rows.get(key) if isinstance(key, str) else None
        return None if rows is None else [self.area(row) for row in rows]

    def _any_region(self, key: object) -> bool:
        return bool(self.is_region[self.rows_of(key)].any()) if isinstance(key, str) else False

    def has_region(self, key: str) -> bool:
        """Whether a region is among the areas of that name (a country has many towns of
        one name: this is asked once per name)."""
        return self._regions[key]

    def rows_of(self, key: str) -> np.ndarray:
        """The rows of the areas of that name (a mapped slice; empty where there is none)."""
        return self.rows.array(key)

    def area(self, row: int) -> Area:
        """The area of one row (remembered)."""
        return self._area[row]

    @cached_property
    def is_region(self) -> np.ndarray:
        """Whether each row is a region (one byte a row, read on first use)."""
        region = pc.fill_null(pc.equal(self.table.column("level"), "region"), False)
        return np.asarray(region.to_numpy(zero_copy_only=False), dtype=bool)

    def column(self, name: str, rows: np.ndarray) -> list[object]:
        """A column's values at ``rows``."""
        values: list[object] = self.table.column(name).take(pa.array(rows)).to_pylist()
        return values

    def places(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitudes and latitudes at ``rows``."""
        taken = self.table.select(["lon", "lat"]).take(pa.array(rows))
        return (
            np.asarray(taken.column("lon").to_numpy(), dtype=np.float64),
            np.asarray(taken.column("lat").to_numpy(), dtype=np.float64),
        )

    def get(self, key: str, default: tuple[Area, ...] | list[Area] = ()) -> list[Area]:
        found = self._areas[key]
        return list(default) if found is None else found

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def values(self) -> Iterator[list[Area]]:
        """Every name's areas (reads the whole table: for tools, not for queries)."""
        groups: dict[str, list[Area]] = {}
        for key in self.rows.index.keys.to_pylist():
            groups[key] = self.get(key)
        yield from groups.values()


class Postcodes:
    """Postcode key -> its area (the first of its groups of addresses)."""

    def __init__(self, areas: Areas) -> None:
        self.areas = areas

    def __contains__(self, code: object) -> bool:
        return code in self.areas

    def __getitem__(self, code: str) -> Area:
        found = self.areas.get(code)
        if not found:
            raise KeyError(code)
        return found[0]


class Streets:
    """Streets by number, made from their mapped rows when a query touches them."""

    def __init__(self, folder: Path) -> None:
        table = open_table(folder, f"{PREFIX}/streets")
        self.names = _names(table, "name")
        self.ref_ids = _column(table, "ref_id")
        self.cities = _column(table, "city")
        self.countries = _column(table, "country")
        self.localities = single_array(table.column("localities"))
        self.postcodes = single_array(table.column("postcodes"))
        self.lon = open_array(folder, f"{PREFIX}/streets/lon")
        self.lat = open_array(folder, f"{PREFIX}/streets/lat")
        self.pieces = single_array(open_table(folder, f"{PREFIX}/pieces").column("wkb"))
        self.piece_starts = open_array(folder, f"{PREFIX}/pieces/starts")
        self.number_keys = single_array(open_table(folder, f"{PREFIX}/numbers").column("key"))
        self.number_rows = open_array(folder, f"{PREFIX}/numbers/rows")
        self.number_starts = open_array(folder, f"{PREFIX}/numbers/starts")
        self.sorted_values = open_array(folder, f"{PREFIX}/sorted/values")
        self.sorted_rows = open_array(folder, f"{PREFIX}/sorted/rows")
        self.sorted_starts = open_array(folder, f"{PREFIX}/sorted/starts")
        self.town_counts = _list_sizes(self.localities)
        self.postcode_counts = _list_sizes(self.postcodes)
        self.by_town = Members(KeyIndex.open(folder, f"{PREFIX}/streets/by_town"))
        self.by_postcode = Members(KeyIndex.open(folder, f"{PREFIX}/streets/by_postcode"))
        self.by_number = Members(KeyIndex.open(folder, f"{PREFIX}/streets/by_number"))
        """Folded town, postcode or house number -> the streets that have it."""
        self.country_codes = Countries(
            open_array(folder, f"{PREFIX}/streets/country"),
            _distinct(folder, f"{PREFIX}/streets/countries"),
        )
        self.west = open_array(folder, f"{PREFIX}/streets/west")
        self.south = open_array(folder, f"{PREFIX}/streets/south")
        self.east = open_array(folder, f"{PREFIX}/streets/east")
        self.north = open_array(folder, f"{PREFIX}/streets/north")
        """Each street's bounding box, around every point a candidate of it can stand at."""
        self._streets = _Memo(self._make)

    def __len__(self) -> int:
        return len(self.lon)

    def __getitem__(self, index: int) -> Street:
        street = self._streets.get(index)  # most streets asked for were made before
        return street if street is not None else self._streets[int(index)]

    def __iter__(self) -> Iterator[Street]:
        for index in range(len(self)):
            yield self[index]

    def _make(self, key: object) -> Street:
        return Street(self, int(key))  # type: ignore[call-overload]

    @staticmethod
    def span(starts: np.ndarray, index: int) -> tuple[int, int]:
        return int(starts[index]), int(starts[index + 1])


def _list_sizes(lists: pa.Array) -> np.ndarray:
    offsets = np.asarray(lists.offsets.to_numpy(zero_copy_only=False))
    return np.diff(offsets)


class LocalIndex:
    """The release's own streets, addresses, places, localities and postcodes, mapped."""

    def __init__(self, folder: Path) -> None:
        self.streets = Streets(folder)
        self.street_by_key = Rows(KeyIndex.open(folder, f"{PREFIX}/streets/keys"))
        """Folded street name -> its streets (one per town and stretch of road)."""
        self.street_by_core = Rows(KeyIndex.open(folder, f"{PREFIX}/streets/cores"))
        """Street name without its street type -> the streets whose full names differ."""
        self.street_by_plain = Rows(KeyIndex.open(folder, f"{PREFIX}/streets/plain"))
        """Street name with umlauts written out ("ae" as "a") -> every street so spelled."""
        table = open_table(folder, f"{PREFIX}/addresses")
        self.addresses = Addresses(
            ids=_column(table, "id"),
            numbers=_column(table, "number"),
            postcodes=_column(table, "postcode"),
            cities=_column(table, "city"),
            states=_column(table, "state"),
            lon=open_array(folder, f"{PREFIX}/addresses/lon"),
            lat=open_array(folder, f"{PREFIX}/addresses/lat"),
        )
        self.places = Places(folder)
        self.localities = Areas(
            open_table(folder, f"{PREFIX}/towns"), KeyIndex.open(folder, f"{PREFIX}/towns/keys")
        )
        self.postcodes = Postcodes(
            Areas(
                open_table(folder, f"{PREFIX}/postcodes"),
                KeyIndex.open(folder, f"{PREFIX}/postcodes/keys"),
            )
        )
        country: str | None = open_table(folder, f"{PREFIX}/country").column(0)[0].as_py()
        self.country = country
        """The release's main country (most of its streets and places), when known."""
        self._folder = folder
        self._street_keys: list[str] | None = None
        self._lock = threading.Lock()

    @property
    def street_keys(self) -> list[str]:
        """Every distinct folded street name (read on the first fuzzy search, then kept)."""
        with self._lock:
            if self._street_keys is None:
                self._street_keys = _distinct(self._folder, f"{PREFIX}/streets/names")
        return self._street_keys

    @cached_property
    def fuzzy_streets(self) -> FuzzyKeys:
        """``street_keys`` for fuzzy search."""
        return FuzzyKeys(self.street_keys)

    @cached_property
    def _numbered_street_shapes(self) -> frozenset[str]:
        """The shapes (``number_shape``) of the street keys, cores and plain spellings with a
        digit in them: few ("Route 40"), read on first use."""
        shapes: set[str] = set()
        for rows in (self.street_by_key, self.street_by_core, self.street_by_plain):
            keys = rows.index.keys
            numbered = keys.filter(pc.match_substring_regex(keys, "[0-9]")).to_pylist()
            shapes.update(_shape(key) for key in numbered)
        return frozenset(shapes)

    @cached_property
    def _numbered_places(self) -> frozenset[str]:
        """The place and POI names with a digit in them ("Fire Station 30"): few."""
        keys = self.places.by_key.index.keys
        return frozenset(keys.filter(pc.match_substring_regex(keys, "[0-9]")).to_pylist())

    def names_place(self, key: str) -> bool:
        """Whether a place or POI is named ``key``; one with a digit (a reading's street
        running on into its house number, mostly) is looked for among the few such names."""
        if _ASCII_DIGIT.search(key) is not None:
            return key in self._numbered_places
        return key in self.places.by_key

    def names_no_street(self, shape: str) -> bool:
        """Whether no key of ``shape`` (``number_shape``) is a street key, nor its plain
        spelling one of the plain spellings (``plain_umlauts``) nor its core one of the cores
        (``street_core``), whatever its digits: writing digits as "0" commutes with both (no
        street type has a digit), and a key found has the shape of a key with a digit."""
        numbered = self._numbered_street_shapes
        return not (
            shape in numbered or plain_umlauts(shape) in numbered or street_core(shape) in numbered
        )

    def forget(self) -> None:
        """Drop the remembered fuzzy matches of streets and places (to measure queries as
        new)."""
        self.fuzzy_streets.forget()
        self.places.fuzzy.forget()

    def is_locality(self, key: str) -> bool:
        return key in self.localities

    def is_region(self, key: str) -> bool:
        return self.localities.has_region(key)

    def is_postcode(self, code: str) -> bool:
        return code in self.postcodes


def local_index(release: Release) -> LocalIndex:
    """The release's forward-geocoding index, mapped from its files (once per process)."""
    return cached("local", release, lambda r: LocalIndex(r.path))
