"""Handing memory a finished import step freed back to the operating system.

Arrow's pool (mimalloc or jemalloc) and glibc's heap keep freed pages for reuse; an import
moves from one large step to the next (reading, the network, each index), and without this
every step's leftovers add to the next one's peak.

No garbage collection is forced: the steps leave almost no reference cycles (a full
collection lowered Monaco's import peak by 0.4 %), and in a process holding many objects each
collection takes a good part of a second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache
from typing import cast

import pyarrow as pa


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None with another C library (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None
    return cast("Callable[[int], int] | None", trim)


def release_memory() -> None:
    """Return free pages of Arrow's pool and of the C heap (glibc) to the system."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
