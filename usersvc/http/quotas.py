"""Quotas per caller (§5 of docs/api.md), counted by the ``limits`` library.

Every operation spends from the caller's general budget; the reads that return
personal data by contact or in bulk (look-ups, batch gets, listing pages) spend from
a smaller budget of their own instead, so enumerating users is slow while ordinary
use never meets a limit. Fixed windows: the cheapest count there is (one increment a
request), and a burst at a window's edge is still bounded by twice the limit.

In memory by default (each process counts its own); with a Redis or Valkey URL the
replicas and workers of a fleet share one budget. Should that server not answer,
requests pass uncounted (a quota is a brake, not a reason to fail) and a warning says
so, at most every ``RETRY_STORAGE_AFTER`` seconds, while the server is left alone.
"""

import logging
import math
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum

import redis.asyncio
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter as SharedLimiter
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

RETRY_STORAGE_AFTER = 5.0  # seconds without asking a storage that failed
STORAGE_TIMEOUT = 0.5  # seconds for a Redis round trip (a connect, a count)


class Budget(StrEnum):
    GENERAL = "general"
    LOOKUPS = "lookups"  # look-ups by contact or linked account, batch gets, the listing


type Limits = Mapping[Budget, Sequence[RateLimitItem]]


def parse_limits(general: str, lookups: str) -> Limits:
    return {Budget.GENERAL: parse_many(general), Budget.LOOKUPS: parse_many(lookups)}


def _wait(reset_time: float) -> int:
    """Whole seconds until the window resets, at least 1 (``Retry-After``)."""
    return max(1, math.ceil(reset_time - time.time()))


class LocalQuotas:
    """Counts in this process's memory."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def spend(self, budget: Budget, caller: str) -> int | None:
        """One request of ``caller`` from ``budget``: None when within it, else the
        seconds until it has room again."""
        limiter = self._limiter
        for item in self._limits[budget]:
            if not limiter.hit(item, budget, caller):
                return _wait(limiter.get_window_stats(item, budget, caller).reset_time)
        return None

    async def close(self) -> None:
        pass


class SharedQuotas:
    """Counts in Redis or Valkey, shared by every process that names the same server."""

    def __init__(self, limits: Limits, url: str) -> None:
        self._limits = limits
        # Valkey speaks Redis's protocol: one client for both.
        url = url.replace("valkey", "redis", 1)
        self._pool = redis.asyncio.ConnectionPool.from_url(
            url, socket_timeout=STORAGE_TIMEOUT, socket_connect_timeout=STORAGE_TIMEOUT
        )
        storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix="usersvc",
            wrap_exceptions=True,
            connection_pool=self._pool,
        )
        self._shared = SharedLimiter(storage)
        self._skip_until = 0.0

    async def spend(self, budget: Budget, caller: str) -> int | None:
        if time.monotonic() < self._skip_until:
            return None
        limiter = self._shared
        try:
            for item in self._limits[budget]:
                if not await limiter.hit(item, budget, caller):
                    stats = await limiter.get_window_stats(item, budget, caller)
                    return _wait(stats.reset_time)
        except StorageError as error:
            self._skip_until = time.monotonic() + RETRY_STORAGE_AFTER
            log.warning(
                "the quota storage did not answer (%s): requests pass uncounted for %.0f s",
                type(error.storage_error).__name__,
                RETRY_STORAGE_AFTER,
            )
        return None

    async def close(self) -> None:
        await self._pool.aclose()


type Quotas = LocalQuotas | SharedQuotas


def quotas(storage: str, limits: Limits) -> Quotas:
    """The quotas of ``USERSVC_RATE_LIMIT_STORAGE``: ``memory://`` or a Redis/Valkey URL."""
    return LocalQuotas(limits) if storage == "memory://" else SharedQuotas(limits, storage)
