"""The lookup, reverse-geocoding and area indexes: built once at import, then only mapped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from geobatch.reference import Release, ReleaseError, ReleaseStore
from geobatch.reference.indexes import BUILDERS, describe

GEOCODE_INDEXES = ("subdivisions", "lookup", "reverse", "geocode", "names")
"""In build order: the lookup and reverse indexes read the subdivisions index."""
GEOCODE_FOLDERS = ("subdivisions", "lookup", "reverse", "areas", "geocode", "names")


def test_index_files_are_identical_across_builds(monaco: Release, tmp_path: Path) -> None:
    gazetteer = monaco.table("gazetteer")
    near = pc.and_(
        pc.less(pc.abs(pc.subtract(gazetteer.column("lat"), 43.7)), 1.0),
        pc.less(pc.abs(pc.subtract(gazetteer.column("lon"), 7.4)), 1.0),
    )
    # the cities near Monaco and every country and region (the whole world takes longer)
    small = gazetteer.filter(pc.or_(pc.fill_null(near, False), pc.is_null(gazetteer["lat"])))
    built = []
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        for name in GEOCODE_INDEXES:
            BUILDERS[name](folder, lambda t: small if t == "gazetteer" else monaco.table(t))
        built.append(describe(folder))
    assert built[0] == built[1]
    assert set(GEOCODE_FOLDERS) == {name.split("/")[1] for name in built[0]}
    geocode_files = {
        name for name in monaco.manifest.files if name.split("/")[:2][-1] in GEOCODE_FOLDERS
    }
    assert set(built[0]) == geocode_files


ANSWER_SCRIPT = """
import json, sys
from geobatch.reference import ReleaseStore
from geobatch.reference.indexes import areas, grid, keys, lookup, sphere, subdivisions

def refuse(*args, **kwargs):
    raise AssertionError("a worker built an index")

for owner, name in [(sphere.SpherePoints, "build"), (grid.GridIndex, "build"),
                    (keys.KeyIndex, "build"), (areas.AreaIndex, "build"),
                    (lookup.LookupIndex, "build"), (subdivisions.Subdivisions, "build")]:
    setattr(owner, name, classmethod(refuse))
from geobatch.engines.geocode.lookup import lookup as find
from geobatch.engines.geocode.reverse import reverse_geocode
from geobatch.engines.geocode.forward import forward_geocoder
import numpy as np

release = ReleaseStore(sys.argv[1]).load(sys.argv[2])
lat, lon = np.array(json.loads(sys.argv[3])), np.array(json.loads(sys.argv[4]))
answer = reverse_geocode(release, lat, lon)
found = find(release, sys.argv[6:])
geocoder = forward_geocoder(release)
forward = [c.__dict__ for text in json.loads(sys.argv[5]) for c in geocoder.geocode(text, limit=3)]
print(json.dumps({"reverse": answer.to_pylist(), "lookup": found.to_pylist(),
                  "forward": forward}, default=str))
"""


def test_a_fresh_process_answers_without_building(monaco: Release) -> None:
    from geobatch.engines.geocode.forward import ForwardGeocoder
    from geobatch.engines.geocode.lookup import lookup
    from geobatch.engines.geocode.reverse import reverse_geocode

    ids = [monaco.table(t).column("id")[0].as_py() for t in ("addresses", "segments", "places")]
    ids.append("osm:node/0")
    addresses = monaco.table("addresses")
    lat = np.r_[addresses.column("lat").to_numpy()[:2], 43.7311, 43.75, 44.5]
    lon = np.r_[addresses.column("lon").to_numpy()[:2], 7.4197, 7.43, 7.0]
    numbered = addresses.filter(pc.is_valid(addresses.column("housenumber"))).slice(0, 1)
    [address] = numbered.to_pylist()
    texts = [f"{address['street']} {address['housenumber']}", "Boulevard des Moulins", "Casino"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            ANSWER_SCRIPT,
            str(monaco.path.parent),
            monaco.manifest.id,
            json.dumps(lat.tolist()),
            json.dumps(lon.tolist()),
            json.dumps(texts),
            *ids,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    answers = json.loads(out.stdout)
    here = json.loads(
        json.dumps(
            {
                "reverse": reverse_geocode(monaco, lat, lon).to_pylist(),
                "lookup": lookup(monaco, ids).to_pylist(),
                "forward": [
                    c.__dict__
                    for text in texts
                    for c in ForwardGeocoder(monaco).geocode(text, limit=3)
                ],
            },
            default=str,
        )
    )
    assert answers == here
    assert {row["match_level"] for row in answers["reverse"]} >= {"houseNumber"}
    assert [row["seqLength"] for row in answers["lookup"]][-1] == 0
    assert {row["match_level"] for row in answers["forward"]} >= {"houseNumber", "street"}


def test_a_truncated_index_file_is_refused(monaco: Release, tmp_path: Path) -> None:
    root = tmp_path / "releases"
    shutil.copytree(monaco.path, root / monaco.manifest.id)
    path = root / monaco.manifest.id / "indexes" / "reverse" / "addresses" / "xyz.npy"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 8)
    with pytest.raises(ReleaseError, match=r"xyz.npy has .* bytes"):
        ReleaseStore(root).load(monaco.manifest.id)
