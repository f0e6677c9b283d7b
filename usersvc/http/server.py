"""The HTTP server around the app: aiohttp's, except for requests its parser refuses.

Why this exists: a request aiohttp's HTTP parser cannot read (a header line over
8190 bytes, more than 128 headers, a malformed request line, bad chunked encoding,
an invalid method) never reaches the app or its middleware; aiohttp answers it from
``RequestHandler.handle_error`` with a plain-text 400. Here that answer is the
contract's envelope, from the failure table, like every other error answer.

aiohttp has no setting for it: the handler is built per connection by
``web.Server``, which ``AppRunner`` makes. So both ways the service runs use the
runner below: ``usersvc serve`` through :func:`run`, gunicorn through
``usersvc.production.Worker``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from usersvc.http.failures import BAD_REQUEST, HEADERS_TOO_LARGE, ErrorInfo
from usersvc.http.responses import answer
from usersvc.telemetry import logs, metrics
from usersvc.telemetry.context import CURRENT, Current
from usersvc.telemetry.requests import REQUEST_ID_HEADER, request_id

log = logging.getLogger(__name__)

# aiohttp says "too many headers" only in its message (a plain BadHttpMessage).
_TOO_MANY_HEADERS = "Too many headers received"
# The method label of a request that could not be read (aiohttp's own word for it).
UNKNOWN_METHOD = "UNKNOWN"


def refusal(exc: BaseException | None) -> ErrorInfo:
    """The failure-table row for what the parser refused. aiohttp reports a line over
    its limit as ``LineTooLong`` whether it is a header line or the request line (both
    parsers alike, so no 414 apart): both are the head being too large."""
    if isinstance(exc, LineTooLong) or (
        isinstance(exc, HttpProcessingError) and exc.message == _TOO_MANY_HEADERS
    ):
        return HEADERS_TOO_LARGE
    return BAD_REQUEST


class EnvelopeRequestHandler(RequestHandler):
    """One connection's handler: parser refusals answered as envelopes."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Parser errors come as 400 with the parser's exception; the rest (a 500 or
        # 504 that escaped the app's middleware) stays aiohttp's.
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("Response is sent already, cannot send an error answer")
        started = time.perf_counter()
        info = refusal(exc)
        rid = request_id(None)
        token = CURRENT.set(Current(rid, None))
        try:
            # The type only: the parser's message quotes the request's bytes (a header
            # value, a query string), which may be personal data.
            log.info("malformed request refused: %s (%s)", info.code, type(exc).__name__)
            # Closed after the answer: the rest of the stream cannot be read as requests.
            # Said in a header too (the answer is HTTP/1.0, which would only imply it).
            response = answer(info, {REQUEST_ID_HEADER: rid, "Connection": "close"})
            response.force_close()
            metrics.observe_request(
                UNKNOWN_METHOD, metrics.UNMATCHED, info.status, time.perf_counter() - started
            )
            logs.access(
                UNKNOWN_METHOD,
                metrics.UNMATCHED,
                info.status,
                (time.perf_counter() - started) * 1000,
                response.content_length,
            )
        finally:
            CURRENT.reset(token)
        return response


class EnvelopeServer(web.Server):
    """``web.Server`` making :class:`EnvelopeRequestHandler` for each connection."""

    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`EnvelopeServer`: the server aiohttp
    makes for the app, with the same request handler, factory and options."""

    async def _make_server(self) -> web.Server:
        # aiohttp's own server, remade as ours from its parts (its loop and handler
        # options are private attributes: test_malformed_requests fails if they move).
        made = await super()._make_server()
        return EnvelopeServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop,
    shutdown_timeout: float,
    on_serving: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """``web.run_app`` with :class:`Runner` (``run_app`` always makes its own
    ``AppRunner``): serve until SIGTERM or SIGINT, then shut down gracefully.
    ``on_serving`` is called once the port is bound (an OSError raised here otherwise)."""
    runner = Runner(
        app,
        handle_signals=True,  # SIGTERM/SIGINT raise GracefulExit out of the loop
        access_log=None,  # ours is written by the middleware
        shutdown_timeout=shutdown_timeout,
        **options,
    )

    async def serve() -> None:
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            if on_serving is not None:
                on_serving()
            await asyncio.Event().wait()  # until a signal
        finally:
            await runner.cleanup()  # requests in flight finish, then the app's cleanup

    main = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """What is left of the tasks, cancelled and awaited, as ``run_app`` does."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
