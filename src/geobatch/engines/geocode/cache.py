"""One index per release in each process: built or opened on first use, then kept."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from geobatch.reference import Release

T = TypeVar("T")
_INDEXES: dict[tuple[str, str, str], object] = {}
_LOCK = threading.RLock()


def cached(kind: str, release: Release, build: Callable[[Release], T]) -> T:
    """One index per release folder and id in this process (releases never change)."""
    key = (kind, str(release.path), release.manifest.id)
    with _LOCK:
        found = _INDEXES.get(key)
        if found is None:
            found = _INDEXES[key] = build(release)
    return found  # type: ignore[return-value]
