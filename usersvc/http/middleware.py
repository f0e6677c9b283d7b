"""Every answer is an envelope: routing errors, oversize bodies, a lost database, bugs."""

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from usersvc.http.failures import HTTP_ERRORS, INTERNAL_ERROR, SERVICE_UNAVAILABLE
from usersvc.http.responses import answer, error

log = logging.getLogger(__name__)

# The database is down, restarting or out of connections: the client may retry.
DATABASE_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
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
    except DATABASE_UNAVAILABLE:
        log.warning("database unavailable", exc_info=True)
        return answer(SERVICE_UNAVAILABLE, {"Retry-After": RETRY_AFTER_SECONDS})
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return answer(INTERNAL_ERROR)
