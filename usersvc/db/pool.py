"""The asyncpg pool, with JSON done by orjson, and every wait on the database bounded.

The pool may connect through PgBouncer in transaction mode (docs/operations.md,
"PgBouncer"): its statement cache can be turned off, and where the server refuses the
session settings as startup parameters they come from the role's defaults instead.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import orjson

from usersvc.db.queries import load
from usersvc.serialization import dumps
from usersvc.telemetry import metrics

log = logging.getLogger(__name__)

# Every wait on the database has an end, after which the request answers 503:
ACQUIRE_TIMEOUT = 5.0  # for a pool connection to become free
CONNECT_TIMEOUT = 5.0  # for a new one to open
# Server side, so a query is cancelled where it runs (the client-side command timeout
# is the last resort for a server that no longer answers). A lock is waited for longer
# than the relay holds a batch's outbox rows (its confirm timeout, 10 s).
SERVER_SETTINGS = {
    "statement_timeout": "15s",
    "lock_timeout": "12s",
    "idle_in_transaction_session_timeout": "60s",
}
COMMAND_TIMEOUT = 20.0
# Prepared statements kept per connection (asyncpg's default). 0 turns the cache off, for
# a pooler that cannot keep prepared statements across transactions (PgBouncer before
# 1.21, or with max_prepared_statements = 0): every query is then parsed again, on one
# more round trip.
STATEMENT_CACHE = 100
# A connection beyond the pool's minimum that serves nothing for this long (up to twice
# as long: see BoundedPool._sweep) is closed, so a quiet worker holds few connections.
IDLE_LIFETIME = 300.0


def _dumps(value: object) -> str:
    return dumps(value).decode()


async def init_connection(connection: asyncpg.Connection) -> None:
    """JSON columns read and written with orjson (also on connections outside the pool)."""
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def keep_session(connection: asyncpg.Connection) -> None:
    """On release, nothing to undo beyond what asyncpg always does.

    asyncpg's default reset sends ``RESET ALL; UNLISTEN *; CLOSE ALL;
    pg_advisory_unlock_all()`` on every release: one more round trip per request.
    Pooled connections never change session state: no SET, LISTEN, session advisory
    lock or cursor outside a transaction (the relay takes its lock and listens on a
    connection of its own). A transaction left open is still rolled back and
    listeners dropped by asyncpg before this is called.
    """


# What a connection breaking while it is reset raises.
_BROKEN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


_CLOCK_STEP = 0.001


class _FairHolderQueue(asyncpg.pool._PoolConnectionHolderQueue):
    """asyncpg's queue of idle connections, but a released connection goes straight to
    the longest-waiting acquirer, a newcomer queues behind those already waiting, and
    nobody waits longer than ``wait`` seconds (then ``TimeoutError``).

    asyncpg's (an ``asyncio.LifoQueue``) puts the connection back and wakes a waiter;
    until that waiter runs, any new request takes the connection first, and the
    waiter goes back to the end of the line. Under load some requests lost that race
    again and again: a p99 of 20 times the mean.

    The waits end by one timer for the whole queue, armed for the oldest waiter (all
    wait equally long, so the oldest is always the first due), instead of asyncpg's
    ``wait_for`` around every acquire: a timer made and cancelled per request.
    """

    def __init__(self, maxsize: int, wait: float) -> None:
        super().__init__(maxsize=maxsize)
        self._wait = wait
        self._deadlines: dict[asyncio.Future[Any], float] = {}  # the waiters, oldest first
        self._timer: asyncio.TimerHandle | None = None

    def put_nowait(self, item: Any) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(item)
                return
        super().put_nowait(item)

    async def get(self) -> Any:
        if not self._getters and not self.empty():
            return self.get_nowait()
        loop = self._get_loop()
        getter = loop.create_future()
        self._getters.append(getter)
        self._deadlines[getter] = loop.time() + self._wait
        if self._timer is None:
            self._timer = loop.call_at(self._deadlines[getter], self._expire)
        try:
            return await getter
        except BaseException:
            if getter.done() and not getter.cancelled() and getter.exception() is None:
                self.put_nowait(getter.result())  # handed over just as we gave up: pass it on
            else:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
            raise
        finally:
            del self._deadlines[getter]

    def _expire(self) -> None:
        """Fail the waiters whose time is up; arm the timer for the next one due."""
        self._timer = None
        # A timer may fire a little early (the loop's clock has millisecond steps):
        # what is due within one counts as due, rather than re-arming at once.
        now = self._get_loop().time() + _CLOCK_STEP
        for getter, deadline in self._deadlines.items():
            if deadline > now:
                self._timer = self._get_loop().call_at(deadline, self._expire)
                return
            if not getter.done():
                getter.set_exception(TimeoutError("no pool connection became free in time"))


class _MeasuredAcquire(asyncpg.pool.PoolAcquireContext):
    """``async with pool.acquire()``, as asyncpg's, with the wait and the checkouts
    measured (in place of a context manager around it: one coroutine less each way)."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        if self.connection is not None or self.done:
            raise asyncpg.InterfaceError("a connection is already acquired")
        started = time.perf_counter()
        self.connection = await self.pool._acquire(self.timeout)
        metrics.acquired(started)
        return self.connection

    async def __aexit__(self, *exc_info: object) -> None:
        self.done = True
        connection, self.connection = self.connection, None
        metrics.released()
        await self.pool.release(connection)


# The asyncpg whose release internals ``BoundedPool._release_now`` follows (checked by
# tests/test_pool.py, so an upgrade is looked at before the shortcut runs on it).
RELEASE_SHORTCUT_FOR = "0.32."


class BoundedPool(asyncpg.Pool):
    """A pool whose acquire waits ``ACQUIRE_TIMEOUT`` at most, in turn (its own
    ``fetch``/``execute`` helpers acquire through it too), whose release of a
    connection with nothing to undo costs no task, and whose idle connections beyond
    ``min_size`` are closed by one periodic sweep."""

    _shortcut = asyncpg.__version__.startswith(RELEASE_SHORTCUT_FOR)
    idle_lifetime = IDLE_LIFETIME
    _sweeper: asyncio.TimerHandle | None = None

    async def _initialize(self) -> None:
        await super()._initialize()
        fair = _FairHolderQueue(self._maxsize, ACQUIRE_TIMEOUT)
        fair._queue.extend(self._queue._queue)  # no acquirer yet: the pool is not ready
        self._queue = fair
        self._idle_counts: dict[Any, int] = {}
        if self.idle_lifetime:
            self._sweeper = self._loop.call_later(self.idle_lifetime, self._sweep)

    def _sweep(self) -> None:
        """Close each connection beyond ``min_size`` that sat in the queue, serving no
        query, from the last sweep to this one: idle for one to two ``idle_lifetime``.

        asyncpg's ``max_inactive_connection_lifetime`` does this with a timer armed on
        every release and cancelled on every acquire: two timer operations a request.
        """
        self._sweeper = None
        if self._closing or self._closed:
            return
        self._sweeper = self._loop.call_later(self.idle_lifetime, self._sweep)
        idle = set(self._queue._queue)
        counts: dict[Any, int] = {}
        for holder in self._holders:
            connection = holder._con
            if holder not in idle or connection is None or connection.is_closed():
                continue
            served = connection._protocol.queries_count
            if self._idle_counts.get(connection) == served and self.get_size() > self._minsize:
                connection.terminate()  # the holder reconnects when next acquired
            else:
                counts[connection] = served
        self._idle_counts = counts

    def _stop_sweeping(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def close(self) -> None:
        self._stop_sweeping()
        await super().close()

    def terminate(self) -> None:
        self._stop_sweeping()
        super().terminate()

    def acquire(self, *, timeout: float | None = None) -> Any:
        """The queue bounds the wait (``ACQUIRE_TIMEOUT``) and a new connection's connect
        has its own timeout; a ``timeout`` given here bounds both together as well."""
        return _MeasuredAcquire(self, timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """A connection that breaks while it is reset for the next user has done its
        work (committed or rolled back): asyncpg has dropped it and the pool opens
        another, so the request's own outcome stands instead of becoming an error."""
        if self._shortcut and self._release_now(connection):
            return
        try:
            budget = ACQUIRE_TIMEOUT if timeout is None else timeout
            await super().release(connection, timeout=budget)
        except _BROKEN as error:
            log.warning("a database connection broke on release: %s", type(error).__name__)

    def _release_now(self, connection: Any) -> bool:
        """Return a connection that needs nothing undone to the pool at once; False (and
        nothing done) when asyncpg's own release must run.

        asyncpg runs every release as ``asyncio.shield(holder.release())``: a new task, and
        one more turn of the event loop before the request goes on. That was a tenth of
        the instructions of a GET. A connection outside any transaction, with no listener,
        no cancellation in flight, neither expired nor at its query limit, and our
        do-nothing reset (``keep_session``) needs no I/O at all: this is what the holder's
        release then does, in its order, without the task.
        """
        if type(connection) is not asyncpg.pool.PoolConnectionProxy or self._closing:
            return False
        holder, con = connection._holder, connection._con
        if (
            con is None
            or holder._pool is not self
            or self._reset is not keep_session
            or con.is_closed()
            or con._protocol._is_cancelling()
            or con._protocol.is_in_transaction()
            or con._top_xact is not None
            or con._listeners
            or con._log_listeners
            or holder._generation != self._generation
            or con._protocol.queries_count >= holder._max_queries
        ):
            return False
        con._on_release()
        holder._timeout = None
        holder._release()  # back in the pool's queue, the proxy detached
        if holder._max_inactive_time:  # asyncpg's idle timer, when it is asked for
            holder._setup_inactive_callback()
        return True


class _Connector:
    """``asyncpg.connect`` for a pool: with ``SERVER_SETTINGS`` as startup parameters,
    unless the server refuses them, as PgBouncer does ("unsupported startup parameter");
    from then on without them. The session then has the server's defaults for the role
    in the database, which an operator sets to the same values (``ALTER ROLE ... IN
    DATABASE ... SET``, docs/operations.md); the first such connection checks that they
    are, and logs a WARNING naming each one that is not.

    Not ``SET`` on each connection: through a pooler in transaction mode a session
    setting lands on whichever server connection serves that statement, and stays
    there for other clients. Not ``SET LOCAL`` in each transaction: a statement more
    on every request.
    """

    def __init__(self) -> None:
        self.startup_settings = True
        self._checked = False

    async def __call__(self, *args: Any, server_settings: dict[str, str], **kwargs: Any) -> Any:
        if self.startup_settings:
            try:
                return await asyncpg.connect(*args, server_settings=server_settings, **kwargs)
            except asyncpg.ProtocolViolationError as error:
                if "unsupported startup parameter" not in str(error):
                    raise
                self.startup_settings = False
        connection = await asyncpg.connect(*args, **kwargs)
        if not self._checked:
            self._checked = True
            try:
                await _check_session_settings(connection, server_settings)
            except BaseException:
                connection.terminate()
                raise
        return connection


async def _check_session_settings(connection: asyncpg.Connection, wanted: dict[str, str]) -> None:
    differing = await connection.fetch(
        load().session_settings_not_as_wanted, list(wanted), list(wanted.values())
    )
    if not differing:
        log.info(
            "the database refuses session settings at connect (a pooler such as PgBouncer); "
            "the server's defaults for the role carry them"
        )
        return
    for row in differing:
        log.warning(
            "the database refuses session settings at connect (a pooler such as PgBouncer), "
            "and its default %s is %s, not %s: ALTER ROLE %s IN DATABASE %s SET %s = '%s'",
            row["name"],
            row["setting"],
            row["wanted"],
            row["role"],
            row["database"],
            row["name"],
            row["wanted"],
        )


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    idle_lifetime: float = IDLE_LIFETIME,
    statement_cache: int | None = None,
) -> asyncpg.Pool:
    """A pool whose connections speak JSON; fails fast when the database is unreachable.
    ``statement_cache``: prepared statements kept per connection (``STATEMENT_CACHE``
    unless given; 0: none)."""
    pool = BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=0,  # the pool's sweep closes idle connections
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init=init_connection,
        reset=keep_session,
        command_timeout=COMMAND_TIMEOUT,
        timeout=CONNECT_TIMEOUT,
        server_settings=SERVER_SETTINGS,
        statement_cache_size=STATEMENT_CACHE if statement_cache is None else statement_cache,
        connect=_Connector(),
    )
    pool.idle_lifetime = idle_lifetime
    return await pool
