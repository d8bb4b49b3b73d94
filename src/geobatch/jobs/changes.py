"""In-process change notifications, so long polls and the webhook delivery loop wake as soon
as a job changes.

The store publishes after every committed change; waiters in any event loop, and threads
that subscribed, are woken within milliseconds. Changes made by other processes are caught by
the waiters' own fallback poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class ChangeFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._subscribers: list[Callable[[str], None]] = []
        self.version = 0

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the job id of every change, on the publishing thread (so it
        must be quick: setting an event, say)."""
        with self._lock:
            self._subscribers.append(callback)

    def publish(self, job_id: str) -> None:
        with self._lock:
            self.version += 1
            waiters = list(self._waiters)
            subscribers = list(self._subscribers)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                loop.call_soon_threadsafe(event.set)
        for callback in subscribers:
            callback(job_id)

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
