"""Bounded concurrency per worker: a spike degrades latency, not correctness.

At most ``limit`` requests are handled at once; the next ones wait their turn up
to ``wait`` seconds, then get a 503 envelope with ``Retry-After``. The health
check is never held back, so an orchestrator does not kill a busy worker.
"""

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from usersvc.http.failures import OVERLOADED
from usersvc.http.responses import answer

DEFAULT_LIMIT = 64  # in flight per worker; the pool's 10 connections serve them in turn
DEFAULT_WAIT = 2.0  # seconds a request may queue before it is refused
RETRY_AFTER_SECONDS = "1"

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
type Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def overload_limit(
    limit: int = DEFAULT_LIMIT, wait: float = DEFAULT_WAIT, exempt: frozenset[str] = frozenset()
) -> Middleware:
    """The middleware; ``exempt`` paths pass without a turn."""
    slots = asyncio.Semaphore(limit)

    @web.middleware
    async def limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in exempt:
            return await handler(request)
        if slots.locked():  # only a queued request pays for the timer
            try:
                async with asyncio.timeout(wait):
                    await slots.acquire()
            except TimeoutError:
                return answer(OVERLOADED, {"Retry-After": RETRY_AFTER_SECONDS})
        else:
            await slots.acquire()
        try:
            return await handler(request)
        finally:
            slots.release()

    return limited
