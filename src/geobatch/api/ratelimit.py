"""Per-API-key rate limits (moving window), shared across replicas through Redis when set."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from geobatch.config import Settings
from geobatch.errors import TooManyRequests


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.limit = parse(settings.rate_limit) if settings.rate_limit else None
        storage = storage_from_string(settings.redis_url or "memory://")
        self._limiter = MovingWindowRateLimiter(storage)

    def hit(self, key: str) -> None:
        """Count one request for ``key``; raise ``TooManyRequests`` with a retry time when over."""
        if self.limit is None or self._limiter.hit(self.limit, key):
            return
        reset = self._limiter.get_window_stats(self.limit, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise TooManyRequests(
            f"Rate limit of {self.limit} exceeded; retry in {retry_after} s.",
            retry_after=retry_after,
        )


class KeyedLimit:
    """One fixed limit counted separately per key, e.g. two status polls a second per job.

    The same moving window (and Redis, when configured) as the per-key request limit, for a
    route that documents a limit of its own.
    """

    def __init__(self, limit: str, settings: Settings, detail: str) -> None:
        self.limit = parse(limit)
        self.detail = detail
        self._limiter = MovingWindowRateLimiter(
            storage_from_string(settings.redis_url or "memory://")
        )

    def hit(self, key: str) -> None:
        """Count one request for ``key``; raise ``TooManyRequests`` with a retry time when over."""
        if self._limiter.hit(self.limit, key):
            return
        reset = self._limiter.get_window_stats(self.limit, key).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise TooManyRequests(self.detail, retry_after=retry_after)
