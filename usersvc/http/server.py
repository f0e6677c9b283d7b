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

Shutting down (§6) is here too, the same for both: :func:`drain` serves on for the
drain seconds, then the runner closes the listener and lets every connection end on
its own. aiohttp's own shutdown closes every connection at once, idle or not, after the
listener: a keep-alive client whose next request is already on its way (or a client
whose connection was accepted a moment before) then sees its connection dropped with
its request unread. Here a busy connection ends after its answer (which says
``Connection: close``, see the middleware) and an idle one is given ``IDLE_GRACE``
seconds for a request first.
"""

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from usersvc.http import listeners
from usersvc.http.connections import REFUSAL, Connections
from usersvc.http.failures import BAD_REQUEST, HEADERS_TOO_LARGE, ErrorInfo
from usersvc.http.responses import answer
from usersvc.http.shutdown import SHUTDOWN, Shutdown
from usersvc.telemetry import logs, metrics
from usersvc.telemetry.context import CURRENT, Current
from usersvc.telemetry.requests import REQUEST_ID_HEADER, request_id

log = logging.getLogger(__name__)

# aiohttp says "too many headers" only in its message (a plain BadHttpMessage).
_TOO_MANY_HEADERS = "Too many headers received"
# The method label of a request that could not be read (aiohttp's own word for it).
UNKNOWN_METHOD = "UNKNOWN"

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Seconds a connection idle when the listener closes (a keep-alive client between two
# requests, or one accepted just before) has to send a request; its answer then closes
# it. Beyond that it is closed, as the keep-alive timeout would close it.
IDLE_GRACE = 2.0
SHUTDOWN_POLL = 0.01  # seconds between two looks at the connections left
# Before the listener closes: seconds for the handshakes under way to complete (a round
# trip), then at most this long for the process to accept what the kernel queued.
HANDSHAKE_WAIT = 0.1
ACCEPT_WAIT = 1.0
OWNER_WAIT = 1.0  # for a shared socket's owner to close it (see Runner._let_go_of)


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
    """One connection's handler: parser refusals answered as envelopes, and the server's
    bounds on open connections kept (``usersvc.http.connections``)."""

    _peer: str | None = None  # counted against the bounds, until the connection is lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        bounds = getattr(self._manager, "connections", None)
        if bounds is None:
            return
        peername = transport.get_extra_info("peername")
        peer = peername[0] if isinstance(peername, tuple) else str(peername)
        if bounds.admit(peer):
            self._peer = peer
        else:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(REFUSAL)
            self.force_close()
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._peer is not None:
            self._manager.connections.release(self._peer)  # type: ignore[union-attr]
            self._peer = None
        super().connection_lost(exc)

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

    def close_when_idle(self, deadline: float) -> None:
        """End after the request in hand (its answer closes the connection), or, while
        idle, at ``deadline`` unless a request comes first. (aiohttp's own keep-alive
        timer does it: it closes the connection only if it is still idle then.)"""
        waiting = self._waiter
        if waiting is None or waiting.done():
            return  # a request is being read or handled: its answer ends the connection
        if self._keepalive_handle is not None:
            if self._next_keepalive_close_time <= deadline:
                return  # idle too long already: closed sooner, as it would have been
            self._keepalive_handle.cancel()
        self._next_keepalive_close_time = deadline
        self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)


class EnvelopeServer(web.Server):
    """``web.Server`` making :class:`EnvelopeRequestHandler` for each connection, and
    shutting down without dropping a request a client has sent."""

    connections: Connections | None = None  # the bounds on open connections, if any

    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)

    def pre_shutdown(self) -> None:
        """After the listener closed: nothing is closed here (aiohttp closes every
        connection); :meth:`shutdown` waits for them to end."""

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - aiohttp's
        """Wait (at most ``timeout`` seconds) for every connection to end after its
        answer or its grace; then what is left is cancelled and closed, as aiohttp does."""
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        graced: set[RequestHandler] = set()
        while self._connections:
            now = loop.time()
            if deadline is not None and now >= deadline:
                break
            # Each connection gets its grace from now: the listener has just closed,
            # or it was accepted since (its transport made after the accept).
            for handler in self._connections.keys() - graced:
                if isinstance(handler, EnvelopeRequestHandler):
                    handler.close_when_idle(now + IDLE_GRACE)
                graced.add(handler)
            await asyncio.sleep(SHUTDOWN_POLL)
        if self._connections:
            log.warning(
                "%d connection(s) still busy at the shutdown timeout: closed",
                len(self._connections),
            )
        # Never 0: aiohttp takes 0 for "no limit".
        await super().shutdown(
            None if deadline is None else max(SHUTDOWN_POLL, deadline - loop.time())
        )


class Runner(web.AppRunner):
    """``web.AppRunner`` serving through :class:`EnvelopeServer`: the server aiohttp
    makes for the app, with the same request handler, factory and options.

    ``listeners_of``: the process the listening sockets belong to, when they are shared
    (gunicorn's master); they are then closed without a reset of what is queued only
    once that process has let go of them (``usersvc.http.listeners``).
    """

    def __init__(
        self,
        app: web.Application,
        *,
        listeners_of: int | None = None,
        connections: Connections | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._listeners_of = listeners_of
        self._connections = connections

    async def cleanup(self) -> None:
        """Close the listener, end the connections, then the app's cleanup; the app's
        ``SHUTDOWN`` begun first, whatever stops it, so its answers close connections."""
        shutdown = self.app.get(SHUTDOWN)
        if shutdown is not None:
            shutdown.begin()
        await self._accept_what_is_queued()
        await super().cleanup()

    async def _accept_what_is_queued(self) -> None:
        """New connections are refused from now; those the kernel already made are
        accepted before the listener closes (closing it would reset them)."""
        sockets = [
            sock.fileno()
            for site in self.sites
            # its sockets: aiohttp keeps the server private
            for sock in getattr(site._server, "sockets", None) or ()
        ]
        sockets = [fd for fd in sockets if fd >= 0 and listeners.is_tcp(fd)]
        if sockets and self._listeners_of is not None:
            sockets = await self._let_go_of(sockets)
        fds = [fd for fd in sockets if listeners.refuse_new_connections(fd)]
        if not fds:
            return
        log.debug("listening sockets %s: new connections dropped, queued ones accepted", fds)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(HANDSHAKE_WAIT)  # the handshakes under way complete
        deadline = loop.time() + ACCEPT_WAIT
        # The kernel tells no event for an empty queue: looked at in turns.
        while any(listeners.accept_queue(fd) for fd in fds) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(SHUTDOWN_POLL)  # the loop accepts them meanwhile

    async def _let_go_of(self, fds: list[int]) -> list[int]:
        """Those of the shared sockets the owner has closed: a gunicorn master that
        stops closes them before it signals its workers (or as they get the same signal
        from their process group: it may take it a moment). Still held, a socket is
        left as it is: other workers go on accepting what is queued."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OWNER_WAIT
        owner = self._listeners_of
        assert owner is not None
        while any(listeners.held_by(owner, fd) for fd in fds) and loop.time() < deadline:  # noqa: ASYNC110 - a process closing a file tells nobody
            await asyncio.sleep(SHUTDOWN_POLL)
        return [fd for fd in fds if not listeners.held_by(owner, fd)]

    async def _make_server(self) -> web.Server:
        # aiohttp's own server, remade as ours from its parts (its loop and handler
        # options are private attributes: test_malformed_requests fails if they move).
        made = await super()._make_server()
        server = EnvelopeServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
        server.connections = self._connections
        return server


async def drain(drain_seconds: float) -> None:
    """§6 once a stop was asked for (and ``SHUTDOWN`` begun): serve ``drain_seconds``
    more. The runner's cleanup comes next: it closes the listener, answers every request
    received (connections accepted before get their grace; its ``shutdown_timeout``
    bounds them), then the app's cleanup: the relay after its confirms, the pool."""
    if drain_seconds:
        log.info("draining: /readyz answers 503; serving %g s more", drain_seconds)
        await asyncio.sleep(drain_seconds)
    log.info("closing the listener; finishing the requests received")


def hold_signals() -> None:
    """After the event loop is gone, until the process exits: SIGTERM and SIGINT are
    ignored (what is left is exit hooks, such as the embedded PostgreSQL's stop, which
    a KeyboardInterrupt would break with a traceback). Ignored by the kernel, not by a
    Python handler: Python puts the default actions back while it finalizes, and a
    signal then (``uv run`` forwards a Ctrl-C some 200 ms late) would end it with 130."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop,
    shutdown_timeout: float,
    drain_seconds: float = 0.0,
    on_serving: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve until SIGTERM or SIGINT, :func:`drain`, then stop. The first signal
    begins the shutdown; another (a process manager signals a whole process group, and
    ``uv run`` forwards what it gets) changes nothing: only SIGKILL cuts it short.
    ``on_serving`` is called once the port is bound (an OSError raised here otherwise)."""
    runner = Runner(
        app,
        access_log=None,  # ours is written by the middleware
        shutdown_timeout=shutdown_timeout,
        **options,
    )
    shutdown = app.get(SHUTDOWN) or Shutdown()

    async def serve() -> None:
        stop = asyncio.Event()

        def signalled(signum: signal.Signals) -> None:
            if shutdown.begin():
                log.info("%s: shutting down", signum.name)
                stop.set()
            else:
                log.info("%s again: already shutting down", signum.name)

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, signalled, signum)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            if on_serving is not None:
                on_serving()
            await stop.wait()
            await drain(drain_seconds)
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve())
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # restores the signals' default actions...
            hold_signals()  # ...which must not end the exit hooks


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """What is left of the tasks, cancelled and awaited, as ``run_app`` does."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
