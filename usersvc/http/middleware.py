"""Every answer is an envelope: routing errors, oversize bodies, a lost database, bugs."""

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from usersvc.http.responses import error

log = logging.getLogger(__name__)

# What aiohttp raises itself, as contract codes.
HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    408: ("request_timeout", "The request body came too slowly"),
    413: ("payload_too_large", "Request body is larger than 1 MiB"),
    415: ("unsupported_media_type", "The body must be JSON (Content-Type: application/json)"),
}

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
        code, message = HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error(exc.status, code, message, headers)
    except DATABASE_UNAVAILABLE:
        log.warning("database unavailable", exc_info=True)
        return error(
            503,
            "service_unavailable",
            "The database is unavailable, try again later",
            {"Retry-After": RETRY_AFTER_SECONDS},
        )
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return error(500, "internal_error", "Internal server error")
