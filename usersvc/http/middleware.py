"""The one middleware: every request is measured, waits its turn, and is answered in an
envelope (routing errors, oversize bodies, a lost database, bugs included).

One function rather than three middlewares: each layer is a coroutine frame that
every request enters and every resumption of its task passes through again.

Bounded concurrency per worker: a spike degrades latency, not correctness. At most
``limit`` requests are handled at once; the next ones wait their turn up to ``wait``
seconds, then get a 503 envelope with ``Retry-After``. The health check, the probes
and ``/metrics`` never wait, so an orchestrator does not kill a busy worker.

Once the process is shutting down, every answer says ``Connection: close``: a client
on a keep-alive connection then opens its next one where a load balancer sends it,
and no request is sent on a connection the server is about to close.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from usersvc.http.callers import Access, Gate
from usersvc.http.failures import HTTP_ERRORS, INTERNAL_ERROR, OVERLOADED, SERVICE_UNAVAILABLE
from usersvc.http.responses import answer, error
from usersvc.http.shutdown import Shutdown
from usersvc.http.validation import is_json, read_in_time
from usersvc.telemetry.requests import REQUEST_ID_HEADER, Measured

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

DEFAULT_LIMIT = 64  # in flight per worker; the pool's 10 connections serve them in turn
DEFAULT_WAIT = 2.0  # seconds a request may queue before it is refused
OVERLOADED_RETRY_AFTER_SECONDS = "1"

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
type Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx (no route, wrong method, body too large) as an envelope."""
    known = HTTP_ERRORS.get(exc.status)
    code, message = (known.code, known.message) if known else ("http_error", exc.reason)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error(exc.status, code, message, headers)


def unexpected(request: web.Request, exc: Exception) -> web.Response:
    """An exception a handler let through: 503 when the database is away, else 500.
    (Called inside the ``except`` clause: the log line gets the traceback.)"""
    if isinstance(exc, DATABASE_UNAVAILABLE) and not isinstance(exc, NOT_UNAVAILABLE):
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return answer(SERVICE_UNAVAILABLE, {"Retry-After": RETRY_AFTER_SECONDS})
    log.exception("unexpected error", extra={"path": request.path})
    return answer(INTERNAL_ERROR)


class Turns:
    """At most ``limit`` requests handled at once; the next ones wait in line, each at
    most ``wait`` seconds. (``asyncio.Semaphore`` does this too, but its ``locked()``
    walks its waiters on every call: this is on every request's path.)"""

    __slots__ = ("_free", "_line", "_wait")

    def __init__(self, limit: int, wait: float) -> None:
        self._free = limit
        self._wait = wait
        self._line: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """A turn at once, if one is free and nobody is waiting for it."""
        if self._free and not self._line:
            self._free -= 1
            return True
        return False

    async def wait_for_turn(self) -> bool:
        """A turn once those ahead had theirs; False when the wait ran out."""
        turn = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            async with asyncio.timeout(self._wait):
                await turn
        except BaseException as error:
            if turn.done() and not turn.cancelled():
                self.give_back()  # handed over just as the wait ended: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._line.remove(turn)
            if isinstance(error, TimeoutError):
                return False
            raise
        return True

    def give_back(self) -> None:
        """The turn goes to the first in line, or becomes free."""
        while self._line:
            waiting = self._line.popleft()
            if not waiting.done():
                waiting.set_result(None)
                return
        self._free += 1


def middleware(
    limit: int = DEFAULT_LIMIT,
    wait: float = DEFAULT_WAIT,
    exempt: frozenset[str] = frozenset(),
    shutdown: Shutdown | None = None,
    *,
    gate: Gate | None = None,
    access: Mapping[AbstractRoute, Access] | None = None,
) -> Middleware:
    """The app's middleware; ``exempt`` paths pass without a turn; once ``shutdown`` has
    begun, answers close their connections. With a ``gate``, the routes in ``access``
    (filled in as routes are added) admit only the callers it lets through; the others
    (health, probes, metrics, documents) are open to all."""
    turns = Turns(limit, wait)
    shutdown = shutdown or Shutdown()
    rules = {} if access is None or gate is None else access

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        measured = Measured(request)
        status = 500  # what the client gets if an exception escapes
        response: web.StreamResponse | None = None
        escaped: BaseException | None = None
        try:
            try:
                turn = request.path not in exempt
                rule = rules.get(request.match_info.route)
                # The caller's checks before a turn: a refused request takes none.
                refused = None if rule is None else await gate.admit(request, rule, measured)  # type: ignore[union-attr]
                if (
                    refused is None
                    and not request.content.is_eof()
                    and is_json(request.headers.get("Content-Type"))
                ):
                    # The rest of the body before a turn (408 or 413 without one): a
                    # client sending slowly holds no turn while it sends. One not of
                    # JSON is left unread for the handler's 415.
                    await read_in_time(request)
                if refused is not None:
                    turn = False
                    response = refused
                # Only a request that has to wait pays for a timer.
                elif turn and not turns.take_now() and not await turns.wait_for_turn():
                    turn = False
                    response = answer(OVERLOADED, {"Retry-After": OVERLOADED_RETRY_AFTER_SECONDS})
                else:
                    try:
                        response = await handler(request)
                    finally:
                        if turn:
                            turns.give_back()
            except web.HTTPException as exc:
                if exc.status < 400:  # redirects and the like, raised as responses
                    exc.headers[REQUEST_ID_HEADER] = measured.request_id
                    status = exc.status
                    raise
                response = http_error(exc)
            except Exception as exc:
                response = unexpected(request, exc)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = measured.request_id
                if shutdown.begun:
                    response.force_close()
            return response
        except BaseException as exc:
            escaped = exc
            raise
        finally:
            measured.end(request, status, response, escaped)

    return edge
