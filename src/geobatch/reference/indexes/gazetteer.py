"""The gazetteer's forward index: every name and alias of a place to its rows, built at import.

Rows are the release's ``gazetteer`` table (continents, countries, admin1 and admin2 areas,
GeoNames cities) followed by the release's own OSM places and admin areas (suburbs, quarters,
neighbourhoods, boroughs; admin levels 4-10) with their names in every language tag. Each
row has a kind (``KINDS``), a population, a position, its country and admin1 code and its
region's name. Folded names (``normalize.fold``, and its ``expand_text`` form where that
differs) are filed in a ``KeyIndex`` as ``row * 4 + how`` (``OWN`` name, ``ALIAS``, ISO
``CODE``), so a worker maps the files and answers with one binary search per key.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial import cKDTree

from geobatch.reference.indexes.files import (
    index_path,
    open_array,
    open_table,
    write_array,
    write_table,
)
from geobatch.reference.indexes.keys import KeyIndex, single_array

PREFIX = "gazetteer"
WORLD = f"{PREFIX}/world"
LOCAL = f"{PREFIX}/local"
BOROUGH, LOCALITY, COUNTY, REGION, COUNTRY, CONTINENT = range(6)
KINDS = ("borough", "locality", "county", "region", "country", "continent")
OWN, ALIAS, CODE = 0, 1, 2
FEATURE_KINDS = {
    "continent": CONTINENT,
    "country": COUNTRY,
    "admin1": REGION,
    "admin2": COUNTY,
    "city": LOCALITY,
}
BOROUGH_PLACES = ("suburb", "quarter", "neighbourhood", "borough", "city_block")
LOCALITY_PLACES = ("city", "town", "village", "hamlet", "municipality")
ALIAS_POPULATION = 10_000
"""A city's alternate names are filed when it has at least this many inhabitants: smaller
places' aliases are mostly transliterations that would only shadow other towns."""
COLLIDING_POPULATION = 100_000
"""A country alias that is the own name of a city this large is not filed (a translation that
spells a city's name is read as the city)."""


def _admin_kind(level: np.ndarray) -> np.ndarray:
    """OSM admin level -> kind: 4 region, 5-6 county, 7-8 locality, 9-10 borough."""
    return np.select(
        [level <= 4, level <= 6, level <= 8], [REGION, COUNTY, LOCALITY], default=BOROUGH
    ).astype(np.int8)


def _local_rows(places: pa.Table) -> pa.Table:
    """The release's own places and admin areas as gazetteer rows (``names`` as aliases)."""
    kind = places.column("kind")
    category = places.column("category")
    level = pc.fill_null(places.column("admin_level"), 0)
    is_admin = pc.and_(
        pc.equal(kind, "admin"), pc.and_(pc.greater_equal(level, 4), pc.less_equal(level, 10))
    )
    is_place = pc.and_(
        pc.equal(kind, "place"), pc.is_in(category, pa.array(BOROUGH_PLACES + LOCALITY_PLACES))
    )
    chosen = places.filter(pc.fill_null(pc.or_(is_admin, is_place), False))
    admin = pc.equal(chosen.column("kind"), "admin").to_numpy(zero_copy_only=False)
    borough = pc.is_in(chosen.column("category"), pa.array(BOROUGH_PLACES)).to_numpy(
        zero_copy_only=False
    )
    levels = pc.fill_null(chosen.column("admin_level"), 0).to_numpy().astype(np.int64)
    kinds = np.where(
        admin, _admin_kind(levels), np.where(borough, BOROUGH, LOCALITY).astype(np.int8)
    )
    names = chosen.column("names").combine_chunks()
    aliases = pa.ListArray.from_arrays(names.offsets, names.items, mask=names.is_null())
    return pa.table(
        {
            "id": chosen.column("id"),
            "name": chosen.column("name"),
            "alternate_names": aliases if len(names) else pa.array([], pa.list_(pa.string())),
            "kind": kinds.astype(np.int8),
            "country": chosen.column("country"),
            "admin1": pa.nulls(chosen.num_rows, pa.string()),
            "population": chosen.column("population"),
            "lon": chosen.column("lon"),
            "lat": chosen.column("lat"),
        }
    )


def _world_rows(gazetteer: pa.Table) -> pa.Table:
    feature = gazetteer.column("feature").to_pylist()
    kinds = np.array([FEATURE_KINDS.get(f, LOCALITY) for f in feature], dtype=np.int8)
    return pa.table(
        {
            "id": gazetteer.column("id"),
            "name": gazetteer.column("name"),
            "alternate_names": gazetteer.column("alternate_names"),
            "kind": kinds,
            "country": gazetteer.column("country"),
            "admin1": gazetteer.column("admin1"),
            "population": gazetteer.column("population"),
            "lon": gazetteer.column("lon"),
            "lat": gazetteer.column("lat"),
        }
    )


def _fill_countries(rows: pa.Table, gazetteer: pa.Table) -> pa.Array:
    """Countries of the local rows that have none: that of the nearest GeoNames city."""
    country = rows.column("country").combine_chunks().cast(pa.string())
    lon = pc.fill_null(rows.column("lon"), np.nan).to_numpy()
    lat = pc.fill_null(rows.column("lat"), np.nan).to_numpy()
    cities = gazetteer.filter(
        pc.and_(pc.equal(gazetteer.column("feature"), "city"), pc.is_valid(gazetteer.column("lat")))
    )
    missing = np.flatnonzero(~country.is_valid().to_numpy(zero_copy_only=False))
    missing = missing[np.isfinite(lon[missing]) & np.isfinite(lat[missing])]
    if not cities.num_rows or not len(missing):
        return country
    tree = cKDTree(np.column_stack([cities.column("lon"), cities.column("lat")]))
    distance, nearest = tree.query(np.column_stack([lon[missing], lat[missing]]), k=1)
    near = distance < 1.0
    values = np.array(country.to_pylist(), dtype=object)
    found = cities.column("country").combine_chunks().take(pa.array(nearest[near]))
    values[missing[near]] = found.to_numpy(zero_copy_only=False)
    return pa.array(values.tolist(), pa.string())


def _state_labels(rows: pa.Table, kind: np.ndarray) -> pa.Array:
    """Each row's region name: the admin1 row of its country and admin1 code (none for a row
    without either, such as a continent or a country)."""
    pair = pc.binary_join_element_wise(rows.column("country"), rows.column("admin1"), "|")
    regions = np.flatnonzero(kind == REGION)
    keys = pair.take(pa.array(regions))
    found = pc.index_in(pair, value_set=keys.combine_chunks(), skip_nulls=True)
    labels = rows.column("name").take(pa.array(regions)).combine_chunks()
    state = labels.take(found)
    own = pa.array(kind == REGION)
    return pc.if_else(own, pa.nulls(len(kind), pa.string()), state).combine_chunks()


def _keys(rows: pa.Table, kind: np.ndarray, population: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Every (folded key, row * 4 + how) pair of the rows."""
    from geobatch.engines.geocode.normalize import expand_text, fold_array

    size = rows.num_rows
    own_rows = np.arange(size, dtype=np.int64)
    aliases = rows.column("alternate_names").combine_chunks()
    counts = pc.fill_null(pc.list_value_length(aliases), 0).to_numpy().astype(np.int64)
    owners = np.repeat(own_rows, counts)
    flat = pc.list_flatten(aliases)
    is_code = (
        pc.and_(pc.less_equal(pc.utf8_length(flat), 3), pc.utf8_is_upper(flat))
        .to_numpy(zero_copy_only=False)
        .astype(bool)
    )
    keep = (population[owners] >= ALIAS_POPULATION) | (kind[owners] != LOCALITY) | is_code
    texts = pa.concat_arrays(
        [
            rows.column("name").combine_chunks().cast(pa.string()),
            rows.column("country")
            .combine_chunks()
            .cast(pa.string())
            .filter(pa.array(kind == COUNTRY)),
            flat.filter(pa.array(keep)).cast(pa.string()),
        ]
    )
    country_rows = np.flatnonzero(kind == COUNTRY)
    how = np.concatenate(
        [
            np.full(size, OWN),
            np.full(len(country_rows), CODE),
            np.where(is_code[keep], CODE, ALIAS),
        ]
    ).astype(np.int64)
    entry_rows = np.concatenate([own_rows, country_rows, owners[keep]])
    folded = fold_array(texts)
    # the expanded form ("St Louis" -> "saint louis") of keys whose words expand
    unique = pc.unique(folded)
    expanded = pa.array([expand_text(k) for k in unique.to_pylist()], pa.string())
    changed = pc.not_equal(expanded, unique)
    position = pc.index_in(folded, value_set=unique)
    alternative = expanded.take(position)
    differs = changed.take(position).to_numpy(zero_copy_only=False)
    # "Bosnia & Herzegovina" folds to "bosnia herzegovina": file "and" names without it too
    without_and = pc.utf8_trim_whitespace(pc.replace_substring_regex(folded, r"(^| )and( |$)", " "))
    has_and = pc.match_substring_regex(folded, r"(^| )and( |$)").to_numpy(zero_copy_only=False)
    keys = pa.concat_arrays(
        [
            folded,
            alternative.filter(pa.array(differs)),
            pc.replace_substring(without_and, "  ", " ").filter(pa.array(has_and)),
        ]
    )
    entries = np.concatenate([entry_rows, entry_rows[differs], entry_rows[has_and]])
    hows = np.concatenate([how, how[differs], how[has_and]])
    keys, entries, hows = _drop_colliding(keys, entries, hows, kind, population)
    nonempty = pc.greater(pc.utf8_length(keys), 0).to_numpy(zero_copy_only=False)
    keys = keys.filter(pa.array(nonempty))
    packed = entries[nonempty] * 4 + hows[nonempty]
    table = pa.table({"k": keys, "v": packed}).group_by(["k", "v"]).aggregate([])
    order = pc.sort_indices(table, [("k", "ascending"), ("v", "ascending")])
    table = table.take(order)
    return table.column("k").combine_chunks(), table.column("v").to_numpy()


def _drop_colliding(
    keys: pa.Array, entries: np.ndarray, hows: np.ndarray, kind: np.ndarray, population: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Country aliases that spell a large city's own name are dropped (see COLLIDING_POPULATION)."""
    big_city = (
        (kind[entries] == LOCALITY) & (hows == OWN) & (population[entries] >= COLLIDING_POPULATION)
    )
    city_keys = pc.unique(keys.filter(pa.array(big_city)))
    alias = (kind[entries] == COUNTRY) & (hows == ALIAS)
    clash = alias & pc.is_in(keys, value_set=city_keys).to_numpy(zero_copy_only=False)
    keep = pa.array(~clash)
    return keys.filter(keep), entries[~clash], hows[~clash]


@dataclass(frozen=True, kw_only=True)
class GazetteerArrays:
    """The mapped gazetteer: rows (``labels``: id, name, country, admin1, state) and keys."""

    keys: KeyIndex
    kind: np.ndarray  # int8, KINDS
    population: np.ndarray  # int64, 0 where unknown
    lon: np.ndarray
    lat: np.ndarray
    labels: pa.Table

    @classmethod
    def build(cls, rows: pa.Table) -> GazetteerArrays:
        kind = rows.column("kind").to_numpy().astype(np.int8)
        population = pc.fill_null(rows.column("population"), 0).to_numpy().astype(np.int64)
        keys, entries = _keys(rows, kind, population)
        return cls(
            keys=KeyIndex.build(keys, entries),
            kind=kind,
            population=population,
            lon=pc.fill_null(rows.column("lon"), np.nan).to_numpy().astype(np.float64),
            lat=pc.fill_null(rows.column("lat"), np.nan).to_numpy().astype(np.float64),
            labels=pa.table(
                {
                    "id": rows.column("id").combine_chunks().cast(pa.string()),
                    "name": rows.column("name").combine_chunks().cast(pa.string()),
                    "country": rows.column("country").combine_chunks().cast(pa.string()),
                    "admin1": rows.column("admin1").combine_chunks().cast(pa.string()),
                    "state": _state_labels(rows, kind).cast(pa.string()),
                }
            ),
        )

    @classmethod
    def build_world(cls, gazetteer: pa.Table) -> GazetteerArrays:
        """The GeoNames part: the same for every release with the same gazetteer table."""
        return cls.build(_world_rows(gazetteer))

    @classmethod
    def build_local(cls, places: pa.Table, gazetteer: pa.Table) -> GazetteerArrays:
        """The release's own places and admin areas."""
        rows = _local_rows(places)
        position = rows.schema.get_field_index("country")
        return cls.build(rows.set_column(position, "country", _fill_countries(rows, gazetteer)))

    def save(self, folder: Path, prefix: str) -> None:
        self.keys.save(folder, f"{prefix}/keys")
        write_array(folder, f"{prefix}/kind", self.kind)
        write_array(folder, f"{prefix}/population", self.population)
        write_array(folder, f"{prefix}/lon", self.lon)
        write_array(folder, f"{prefix}/lat", self.lat)
        write_table(folder, f"{prefix}/labels", self.labels)

    @classmethod
    def open(cls, folder: Path, prefix: str) -> GazetteerArrays:
        labels = open_table(folder, f"{prefix}/labels")
        return cls(
            keys=KeyIndex.open(folder, f"{prefix}/keys"),
            kind=open_array(folder, f"{prefix}/kind"),
            population=open_array(folder, f"{prefix}/population"),
            lon=open_array(folder, f"{prefix}/lon"),
            lat=open_array(folder, f"{prefix}/lat"),
            labels=pa.table(
                {name: single_array(labels.column(name)) for name in labels.schema.names}
            ),
        )


def build_gazetteer_index(folder: Path, gazetteer: pa.Table, places: pa.Table) -> None:
    """Both parts; the world part only where ``link_world_index`` has not put it in already."""
    if not index_path(folder, f"{WORLD}/kind", ".npy").is_file():
        GazetteerArrays.build_world(gazetteer).save(folder, WORLD)
    GazetteerArrays.build_local(places, gazetteer).save(folder, LOCAL)


def link_world_index(folder: Path, gazetteer_file: Path) -> None:
    """Give a release under construction the world part built for ``gazetteer_file`` (an
    immutable cached table): built once beside it, then hard-linked into every release."""
    built = gazetteer_file.with_name(f"{gazetteer_file.stem}-index")
    if not built.is_dir():
        partial = built.with_name(f".{built.name}.{uuid.uuid4().hex}")
        try:
            with pa.memory_map(str(gazetteer_file), "r") as source:
                table = pa.ipc.open_file(source).read_all()
            GazetteerArrays.build_world(table).save(partial, WORLD)
            os.replace(partial, built)
        except OSError:
            if not built.is_dir():  # another process won the race: use its copy
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    for path in sorted(built.rglob("*")):
        if not path.is_file():
            continue
        target = folder / path.relative_to(built)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
