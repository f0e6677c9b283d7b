"""What is measured of every request: its id, its server span, the RED metrics and the
access line. The HTTP shell's one middleware begins and ends it around the handler
(plain calls, not a middleware of their own: every layer costs on every request)."""

import random
import re
import time

from aiohttp import web

from usersvc.telemetry import logs, metrics
from usersvc.telemetry.context import CURRENT, Current
from usersvc.telemetry.tracing import ServerSpan

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(offered: str | None) -> str:
    """The client's id when it is a sane token, else a new one: 32 hex digits, random as
    the trace ids are (an id to find lines by, not a secret: no system call for it)."""
    if offered is not None and _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return random.getrandbits(128).to_bytes(16).hex()


def route_of(request: web.Request) -> str:
    """The route template (``/api/v1/users/{user_id}``), never the raw path; a method the
    path does not have (405) is counted under the path's route too."""
    match_info = request.match_info
    resource = match_info.route.resource
    if resource is not None:
        return resource.canonical
    if isinstance(match_info.http_exception, web.HTTPMethodNotAllowed):
        return _route_of_path(request)
    return metrics.UNMATCHED


def _route_of_path(request: web.Request) -> str:
    """The template of the route whose path this is, whatever the method (only for a
    405: aiohttp keeps no resource of a method it refused), as the router matches it."""
    path = request.rel_url.path_safe
    for resource in request.app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == path or (pattern is not None and pattern.fullmatch(path)):
            return resource.canonical
    return metrics.UNMATCHED


class Measured:
    """A request being measured: begun with its id and span, ended with its status."""

    __slots__ = ("_span", "_started", "_token", "client", "request_id")

    def __init__(self, request: web.Request) -> None:
        self._started = time.perf_counter()
        self.request_id = rid = request_id(request.headers.get(REQUEST_ID_HEADER))
        span = self._span = ServerSpan.start(request)
        self._token = CURRENT.set(Current(rid, None if span is None else span.unrecorded))
        self.client: str | None = None  # the caller's actor, once the token names one
        metrics.request_started()

    def end(
        self,
        request: web.Request,
        status: int,
        response: web.StreamResponse | None,
        error: BaseException | None,
    ) -> None:
        """``status``: what the client got (500 when an exception escaped, ``error``)."""
        seconds = time.perf_counter() - self._started
        route = route_of(request)
        metrics.request_ended(request.method, route, status, seconds)
        size = None if response is None else response.content_length
        logs.access(request.method, route, status, seconds * 1000, size, self.client)  # in the span
        if self._span is not None:
            self._span.finish(status, response, error)
        CURRENT.reset(self._token)
