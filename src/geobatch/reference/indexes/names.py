"""Names in other languages: what the release calls a place, area or street in a language.

Places, POIs, admin areas, streets and road segments keep their names in other languages in
their ``names`` map (OSM ``name:xx`` tags, Overture ``names.common``). Each (language, name)
pair is filed under one key per kind of name (``ROLES``), so a worker translates a whole
column of names with one binary search per distinct name. A name translated differently by
several objects of its kind (two streets of one name in two towns) takes the translation most
of them give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.reference.indexes.files import open_table, write_table
from geobatch.reference.indexes.keys import KeyIndex, single_array

PREFIX = "names"
NOT_LANGUAGES = frozenset({"default", "alt", "old", "official", "short", "loc", "int", "ref"})
"""Keys of the ``names`` map that are variants, not languages."""
LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
SEPARATOR = "\x1f"


ROLES = ("street", "area", "poi")
"""What a name is of: a street, a place or area (town, district, county), a POI. Each is
translated among its own kind: the station named after its town has its own English name."""


def language_key(role: str, language: str, name: str) -> str:
    return SEPARATOR.join((role, language, name))


def _pairs(table: pa.Table, role: pa.Array) -> pa.Table:
    """(key, translation) for every name of ``table`` in every language it has, the rows
    being of ``role`` (one per row). A translation equal to the name counts too: it is a
    vote for keeping the name."""
    names = table.column("names").combine_chunks()
    if not len(names):
        return pa.table({"key": pa.array([], pa.string()), "value": pa.array([], pa.string())})
    offsets = names.offsets.to_numpy()
    default = table.column("name").combine_chunks().cast(pa.string())
    owner = pa.array(np.repeat(np.arange(len(names)), np.diff(offsets)))
    language = names.keys.slice(offsets[0], offsets[-1] - offsets[0])
    value = names.items.slice(offsets[0], offsets[-1] - offsets[0])
    tags = pc.unique(language).to_pylist()
    languages = [t for t in tags if t not in NOT_LANGUAGES and LANGUAGE_TAG.match(t)]
    keep = pc.fill_null(
        pc.and_(pc.is_in(language, pa.array(languages, pa.string())), pc.is_valid(value)), False
    )
    key = pc.binary_join_element_wise(
        role.take(owner).filter(keep),
        language.filter(keep),
        default.take(owner).filter(keep),
        SEPARATOR,
    )
    return pa.table({"key": key, "value": value.filter(keep)})


def place_roles(places: pa.Table) -> pa.Array:
    is_poi = pc.fill_null(pc.equal(places.column("kind"), "poi"), False)
    return pc.if_else(is_poi, "poi", "area").combine_chunks()


@dataclass(frozen=True, kw_only=True)
class NameTranslations:
    keys: KeyIndex
    values: pa.Array

    @classmethod
    def build(cls, places: pa.Table, streets: pa.Table) -> NameTranslations:
        pairs = pa.concat_tables(
            [
                _pairs(places, place_roles(places)),
                _pairs(streets, pa.array(["street"] * streets.num_rows, pa.string())),
            ]
        )
        counted = pairs.group_by(["key", "value"]).aggregate([([], "count_all")])
        order = pc.sort_indices(
            counted, [("key", "ascending"), ("count_all", "descending"), ("value", "ascending")]
        )
        counted = counted.take(order)
        key = counted.column("key").combine_chunks()
        first = np.ones(len(key), dtype=bool)
        if len(key) > 1:
            first[1:] = pc.not_equal(key.slice(1), key.slice(0, len(key) - 1)).to_numpy(
                zero_copy_only=False
            )
        chosen = counted.filter(pa.array(first))
        return cls(
            keys=KeyIndex.build(chosen.column("key"), np.arange(chosen.num_rows)),
            values=chosen.column("value").combine_chunks(),
        )

    def save(self, folder: Path) -> None:
        self.keys.save(folder, f"{PREFIX}/keys")
        write_table(folder, f"{PREFIX}/values", pa.table({"value": self.values}))

    @classmethod
    def open(cls, folder: Path) -> NameTranslations:
        return cls(
            keys=KeyIndex.open(folder, f"{PREFIX}/keys"),
            values=single_array(open_table(folder, f"{PREFIX}/values").column("value")),
        )

    def translate(
        self, role: str, languages: list[str], names: list[str | None]
    ) -> list[str | None]:
        """Each name of ``role`` in its language, None where the release has no such name."""
        keys = [
            language_key(role, language, name) if name is not None else None
            for language, name in zip(languages, names, strict=True)
        ]
        group = self.keys.groups(keys)
        found = group >= 0
        result: list[str | None] = [None] * len(names)
        if found.any():
            rows = self.keys.rows[self.keys.starts[group[found]]]
            values = self.values.take(pa.array(rows)).to_pylist()
            for position, value in zip(np.flatnonzero(found).tolist(), values, strict=True):
                result[position] = value
        return result


def build_names_index(folder: Path, places: pa.Table, streets: pa.Table) -> None:
    NameTranslations.build(places, streets).save(folder)
