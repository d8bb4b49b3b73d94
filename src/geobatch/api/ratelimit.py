"""Per-API-key rate limits (moving window), shared across replicas through Redis when set.

Each key has separate budgets for creating jobs, downloading files and everything else, so
a client that polls hard cannot starve its own uploads. ``hit_job_poll`` is the per-job rule
of bulk APIs (a few status polls per second per job). A refusal is a 429 whose
``Retry-After`` and ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` headers say when to retry.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from geobatch.config import Settings
from geobatch.errors import TooManyRequests


class Budget(StrEnum):
    REQUESTS = "requests"
    CREATE = "create"
    DOWNLOAD = "download"


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.limits: dict[Budget, RateLimitItem | None] = {
            Budget.REQUESTS: _parse(settings.rate_limit),
            Budget.CREATE: _parse(settings.rate_limit_create),
            Budget.DOWNLOAD: _parse(settings.rate_limit_download),
        }
        storage = storage_from_string(settings.redis_url or "memory://")
        self._limiter = MovingWindowRateLimiter(storage)

    def hit(self, key: str, budget: Budget = Budget.REQUESTS) -> None:
        """Count one request for ``key``; raise ``TooManyRequests`` with a retry time when over."""
        limit = self.limits[budget]
        if limit is not None:
            self._hit(limit, budget.value, key)

    def hit_job_poll(self, limit: RateLimitItem, job_id: str) -> None:
        """Count one status poll of ``job_id`` against ``limit`` (e.g. ``parse("2/second")``)."""
        self._hit(limit, "poll", job_id)

    def _hit(self, limit: RateLimitItem, scope: str, key: str) -> None:
        if self._limiter.hit(limit, scope, key):
            return
        stats = self._limiter.get_window_stats(limit, scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"Rate limit of {limit} for {scope} exceeded; retry in {retry_after} s.",
            retry_after=retry_after,
            headers={
                "RateLimit-Limit": str(limit.amount),
                "RateLimit-Remaining": str(stats.remaining),
                "RateLimit-Reset": str(retry_after),
            },
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


def _parse(value: str) -> RateLimitItem | None:
    return parse(value) if value else None
