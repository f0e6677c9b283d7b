"""One middleware per request: request id, server span, RED metrics and the access log line.

One rather than four: every layer costs on each request, and these need the same
facts (the route template and the status) at the same moment.
"""

import random
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from usersvc.telemetry import logs, metrics
from usersvc.telemetry.tracing import ServerSpan

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id(offered: str | None) -> str:
    """The client's id when it is a sane token, else a new one: 32 hex digits, random as
    the trace ids are (an id to find lines by, not a secret: no system call for it)."""
    if offered is not None and _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return f"{random.getrandbits(128):032x}"


def route_of(request: web.Request) -> str:
    """The route template (``/api/v1/users/{user_id}``), never the raw path."""
    resource = request.match_info.route.resource
    return metrics.UNMATCHED if resource is None else resource.canonical


@web.middleware
async def telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    rid = request_id(request.headers.get(REQUEST_ID_HEADER))
    token = logs.REQUEST_ID.set(rid)
    span = ServerSpan.start(request)
    metrics.HTTP_IN_FLIGHT.inc()
    status = 500  # what the client gets if something below us lets an exception through
    response: web.StreamResponse | None = None
    error: BaseException | None = None
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and the like, raised as responses
            exc.headers[REQUEST_ID_HEADER] = rid
            status = exc.status
            raise
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
        return response
    except BaseException as exc:
        error = exc
        raise
    finally:
        seconds = time.perf_counter() - started
        metrics.HTTP_IN_FLIGHT.dec()
        route = route_of(request)
        metrics.observe_request(request.method, route, status, seconds)
        size = None if response is None else response.content_length
        logs.access(request.method, route, status, seconds * 1000, size)  # in the span
        if span is not None:
            span.finish(status, response, error)
        logs.REQUEST_ID.reset(token)
