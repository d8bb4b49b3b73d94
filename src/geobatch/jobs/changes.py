"""In-process change notifications, so long polls wake as soon as a job changes.

The store publishes after every committed change; waiters in any event loop are woken
within milliseconds. Changes made by other processes are caught by the waiters' own
fallback poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class ChangeFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.version = 0

    def publish(self, _job_id: str) -> None:
        with self._lock:
            self.version += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout: float, *, since: int | None = None) -> None:
        """Return after the next change (or one after ``since``), or after ``timeout`` seconds."""
        event = asyncio.Event()
        key = (asyncio.get_running_loop(), event)
        with self._lock:
            if since is not None and self.version != since:
                return
            self._waiters.add(key)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                self._waiters.discard(key)
