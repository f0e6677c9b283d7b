"""Every answer is an envelope: routing errors, oversize bodies, a lost database, bugs."""

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from usersvc.http.failures import HTTP_ERRORS, INTERNAL_ERROR, SERVICE_UNAVAILABLE
from usersvc.http.responses import answer, error

log = logging.getLogger(__name__)

# The database is down, restarting, out of connections, too slow, or the connection
# broke under a request (at acquire, a statement, commit, rollback or release: asyncpg
# then raises any of these, its own state errors included): the client may retry.
DATABASE_UNAVAILABLE = (
    OSError,
    TimeoutError,  # waiting for a pool connection, or the client-side command timeout
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "the underlying connection is closed", "... in progress"
    asyncpg.InternalClientError,  # "cannot switch to state 15; another operation ..."
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, restart, pg_terminate_backend
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.QueryCanceledError,  # statement_timeout
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout
    asyncpg.exceptions.TransactionRollbackError,  # deadlock or serialization, retries spent
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby, during a failover
)
# InterfaceErrors that are our bugs (a bad query argument), not an outage.
NOT_UNAVAILABLE = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)
RETRY_AFTER_SECONDS = "5"


type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def envelopes(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        known = HTTP_ERRORS.get(exc.status)
        code, message = (known.code, known.message) if known else ("http_error", exc.reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error(exc.status, code, message, headers)
    except NOT_UNAVAILABLE:
        log.exception("unexpected error", extra={"path": request.path})
        return answer(INTERNAL_ERROR)
    except DATABASE_UNAVAILABLE as exc:
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return answer(SERVICE_UNAVAILABLE, {"Retry-After": RETRY_AFTER_SECONDS})
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return answer(INTERNAL_ERROR)
