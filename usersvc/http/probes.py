"""The probes an orchestrator sends (§6), and what a stopping process tells them.

``GET /livez``: 200 while the process serves; it asks nothing of the database, so a
database outage never gets a healthy process restarted. ``GET /readyz``: 200 while the
database answers, every migration this code needs is applied and the process is not
shutting down; else 503, so a load balancer sends its requests elsewhere. Both at the
root, as Kubernetes names them, outside ``/api/v1``; they never wait for a turn (the
middleware's ``exempt`` paths) and, like the health check, need no token.
"""

import asyncio
import logging

import asyncpg
from aiohttp import web

from usersvc.db.migrations import migration_ids
from usersvc.http.failures import NOT_MIGRATED, SERVICE_UNAVAILABLE, SHUTTING_DOWN
from usersvc.http.handlers import POOL, QUERIES
from usersvc.http.middleware import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS
from usersvc.http.responses import answer, success
from usersvc.http.shutdown import SHUTDOWN

log = logging.getLogger(__name__)

LIVEZ = "/livez"
READYZ = "/readyz"
PATHS = frozenset({LIVEZ, READYZ})
# Longer than a pool connection takes to open, shorter than a probe's usual timeout.
READY_WAIT = 2.0
OK = {"status": "OK"}
_RETRY = {"Retry-After": RETRY_AFTER_SECONDS}


async def livez(request: web.Request) -> web.Response:
    """200 while the process serves."""
    return success(OK)


async def readyz(request: web.Request) -> web.Response:
    """200 when this process should be sent requests, else 503 ``service_unavailable``."""
    app = request.app
    if app[SHUTDOWN].begun:
        return answer(SHUTTING_DOWN, _RETRY)
    try:
        async with asyncio.timeout(READY_WAIT):  # the wait for a connection too
            missing = await app[POOL].fetchval(app[QUERIES].missing_migrations, migration_ids())
    except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as error:
        # No migration table at all is a PostgresError too: not migrated.
        log.debug("not ready: %s: %s", type(error).__name__, error)
        return answer(SERVICE_UNAVAILABLE, _RETRY)
    if missing:
        return answer(NOT_MIGRATED, _RETRY)
    return success(OK)
