"""One index per release in each process (built or opened on first use, then kept), and
bounded memos of answers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from geobatch.reference import Release

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()
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


class Memo(dict[K, V]):
    """Remembered answers that start afresh once ``size`` are held: bounded memory without
    the bookkeeping of a least-recently-used cache."""

    def __init__(self, size: int = 100_000) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` and return it."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value

    def made(self, key: K, make: Callable[..., V], *args: object) -> V:
        """The value under ``key``; where there is none yet, ``make(*args)``, remembered."""
        found = self.get(key, _MISSING)
        if found is _MISSING:
            return self.keep(key, make(*args))
        return found  # type: ignore[return-value]
