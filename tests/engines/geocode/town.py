"""A small mapped town as an OSM XML file, for districts, counties and names in languages.

The town has a county boundary (admin level 6) around it, an old town mapped as a district
polygon (admin level 10), a suburb mapped as a point only, and a street with numbered houses
in each; the county, the old town, the town and one street have English names.
"""

from __future__ import annotations

from pathlib import Path

from geobatch.reference import Release, ReleaseStore, import_osm

COUNTY = [(10.00, 50.00), (10.10, 50.00), (10.10, 50.10), (10.00, 50.10)]
OLD_TOWN = [(10.040, 50.040), (10.050, 50.040), (10.050, 50.050), (10.040, 50.050)]
SUBURB = (10.080, 50.080)
"""A suburb node: its district reaches about 1.5 km around it."""


def _ring(first_id: int, corners: list[tuple[float, float]]) -> tuple[str, list[int]]:
    nodes = "".join(
        f'<node id="{first_id + i}" version="1" lat="{lat}" lon="{lon}"/>'
        for i, (lon, lat) in enumerate(corners)
    )
    return nodes, [*range(first_id, first_id + len(corners)), first_id]


def _way(way_id: int, refs: list[int], tags: dict[str, str]) -> str:
    nds = "".join(f'<nd ref="{ref}"/>' for ref in refs)
    tag = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<way id="{way_id}" version="1">{nds}{tag}</way>'


def _house(node_id: int, lon: float, lat: float, street: str, number: str) -> str:
    return (
        f'<node id="{node_id}" version="1" lat="{lat}" lon="{lon}">'
        f'<tag k="addr:street" v="{street}"/><tag k="addr:housenumber" v="{number}"/>'
        '<tag k="addr:city" v="Musterstadt"/></node>'
    )


def town_xml() -> str:
    county_nodes, county_ring = _ring(1, COUNTY)
    old_nodes, old_ring = _ring(11, OLD_TOWN)
    street_nodes = (
        '<node id="21" version="1" lat="50.045" lon="10.041"/>'
        '<node id="22" version="1" lat="50.045" lon="10.049"/>'
        '<node id="23" version="1" lat="50.0805" lon="10.078"/>'
        '<node id="24" version="1" lat="50.0805" lon="10.084"/>'
    )
    places = (
        '<node id="31" version="1" lat="50.07" lon="10.07">'
        '<tag k="place" v="town"/><tag k="name" v="Musterstadt"/>'
        '<tag k="name:en" v="Sampletown"/></node>'
        f'<node id="32" version="1" lat="{SUBURB[1]}" lon="{SUBURB[0]}">'
        '<tag k="place" v="suburb"/><tag k="name" v="Neudorf"/></node>'
    )
    houses = (
        _house(41, 10.044, 50.0452, "Marktgasse", "1")
        + _house(42, 10.046, 50.0452, "Marktgasse", "3")
        + _house(43, 10.080, 50.0807, "Feldweg", "2")
    )
    ways = (
        _way(100, county_ring, {"boundary": "administrative", "admin_level": "6",
                                "name": "Landkreis Muster", "name:en": "Muster County"})
        + _way(101, old_ring, {"boundary": "administrative", "admin_level": "10",
                               "name": "Altstadt", "name:en": "Old Town"})
        + _way(102, [21, 22], {"highway": "residential", "name": "Marktgasse",
                               "name:en": "Market Lane"})
        + _way(103, [23, 24], {"highway": "residential", "name": "Feldweg"})
    )  # fmt: skip
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        '<osm version="0.6" generator="test">'
        f"{county_nodes}{old_nodes}{street_nodes}{places}{houses}{ways}</osm>"
    )


def build_town(folder: Path) -> Release:
    source = folder / "town.osm"
    source.write_text(town_xml())
    store = ReleaseStore(folder / "releases")
    return store.load(import_osm(source, store, gazetteer=False).id)
