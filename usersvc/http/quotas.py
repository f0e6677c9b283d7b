"""Quotas per caller (§5 of docs/api.md), counted by the ``limits`` library.

Every operation spends from the caller's general budget; the reads that return
personal data by contact or in bulk (look-ups, batch gets, listing pages) spend from
a smaller budget of their own instead, so enumerating users is slow while ordinary
use never meets a limit. Fixed windows: the cheapest count there is, and a burst at a
window's edge is still bounded by twice the limit.

The counts are the library's, in its memory storage by default (each process counts
its own) or in Redis/Valkey, where every replica and worker of a fleet spends from one
budget. A process takes requests from a budget a few at a time, a **lease** of at most
a hundredth of the smallest limit (one request at a time under a limit of 100), and
spends them without asking the storage again: one count in ten per request under the
default limit of 1000 a second, a tenth of the cost (and of the Redis round trips). So a
budget may run over by a hundredth of its limit per process (a lease taken as a window
ends is spent in the next), and a caller near its limit may be refused up to a
hundredth early (a lease the count refuses is counted whole, as the library counts).

Should the Redis server not answer, requests pass uncounted (a quota is a brake, not a
reason to fail) and a warning says so, at most every ``RETRY_STORAGE_AFTER`` seconds,
while the server is left alone.
"""

import logging
import math
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

RETRY_STORAGE_AFTER = 5.0  # seconds without asking a storage that failed
STORAGE_TIMEOUT = 0.5  # seconds for a Redis round trip (a connect, a count)
LEASE_SHARE = 100  # a lease is at most 1/100 of a budget's smallest limit
FORGET_LEASES_PAST = 10_000  # leases kept before the spent and expired are swept


class Budget(StrEnum):
    GENERAL = "general"
    LOOKUPS = "lookups"  # look-ups by contact or linked account, batch gets, the listing


type Limits = Mapping[Budget, Sequence[RateLimitItem]]


def parse_limits(general: str, lookups: str) -> Limits:
    return {Budget.GENERAL: parse_many(general), Budget.LOOKUPS: parse_many(lookups)}


def lease_size(items: Sequence[RateLimitItem]) -> int:
    """Requests taken from the storage at once: a hundredth of the smallest limit."""
    return max(1, min(item.amount for item in items) // LEASE_SHARE)


def _wait(reset_time: float) -> int:
    """Whole seconds until the window resets, at least 1 (``Retry-After``)."""
    return max(1, math.ceil(reset_time - time.time()))


class _Lease:
    """Requests a caller may still make from a budget without a count, until ``until``."""

    __slots__ = ("left", "until")

    def __init__(self, left: int, until: float) -> None:
        self.left = left
        self.until = until


class _Leases:
    """The spending of leases, the same whatever counts them."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._sizes = {budget: lease_size(items) for budget, items in limits.items()}
        # A lease never outlives its budget's shortest window: a new window, a new count.
        self._terms = {b: min(i.get_expiry() for i in items) for b, items in limits.items()}
        self._leases: dict[tuple[Budget, str], _Lease] = {}

    async def spend(self, budget: Budget, caller: str) -> int | None:
        """One request of ``caller`` from ``budget``: None when within it, else the
        seconds until it has room again."""
        lease = self._leases.get((budget, caller))
        if lease is not None and lease.left and time.monotonic() < lease.until:
            lease.left -= 1
            return None
        size = self._sizes[budget]
        wait = await self._count(budget, caller, size)
        if wait is None:
            self._lease(budget, caller, size - 1)
        return wait

    def _lease(self, budget: Budget, caller: str, left: int) -> None:
        now = time.monotonic()
        leases = self._leases
        if len(leases) >= FORGET_LEASES_PAST:
            for key in [k for k, v in leases.items() if not v.left or v.until <= now]:
                del leases[key]
        if left:
            leases[budget, caller] = _Lease(left, now + self._terms[budget])
        else:
            leases.pop((budget, caller), None)

    async def _count(self, budget: Budget, caller: str, cost: int) -> int | None:
        raise NotImplementedError


class LocalQuotas(_Leases):
    """Counts in this process's memory (the library's memory storage). Its asyncio
    flavour: the threaded one starts a thread to expire counts after every count that
    finds the last one gone, up to a hundred a second under load, which cost a GET
    4% of its instructions (benchmarks/get_cost.py); this one runs that on the loop."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self._limiter = FixedWindowRateLimiter(MemoryStorage())

    async def _count(self, budget: Budget, caller: str, cost: int) -> int | None:
        limiter = self._limiter
        for item in self._limits[budget]:
            if not await limiter.hit(item, budget, caller, cost=cost):
                stats = await limiter.get_window_stats(item, budget, caller)
                return _wait(stats.reset_time)
        return None

    async def close(self) -> None:
        pass


class SharedQuotas(_Leases):
    """Counts in Redis or Valkey, shared by every process that names the same server."""

    def __init__(self, limits: Limits, url: str) -> None:
        # Imported only where a fleet shares its budgets: Redis's client and the
        # library's asynchronous storage are a fifth of a process's memory (20 MB).
        import redis.asyncio
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import FixedWindowRateLimiter as SharedLimiter
        from limits.errors import StorageError

        super().__init__(limits)
        self._storage_error = StorageError
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

    async def _count(self, budget: Budget, caller: str, cost: int) -> int | None:
        if time.monotonic() < self._skip_until:
            return None
        limiter = self._shared
        try:
            for item in self._limits[budget]:
                if not await limiter.hit(item, budget, caller, cost=cost):
                    stats = await limiter.get_window_stats(item, budget, caller)
                    return _wait(stats.reset_time)
        except self._storage_error as error:
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
