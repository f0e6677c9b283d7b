"""The asyncpg pool, with JSON done by orjson, and every wait on the database bounded."""

import contextlib
import logging
from typing import Any

import asyncpg
import orjson

from usersvc.serialization import dumps

log = logging.getLogger(__name__)

# Every wait on the database has an end, after which the request answers 503:
ACQUIRE_TIMEOUT = 5.0  # for a pool connection (a new one's connect included)
CONNECT_TIMEOUT = 5.0
# Server side, so a query is cancelled where it runs (the client-side command timeout
# is the last resort for a server that no longer answers). A lock is waited for longer
# than the relay holds a batch's outbox rows (its confirm timeout, 10 s).
SERVER_SETTINGS = {
    "statement_timeout": "15s",
    "lock_timeout": "12s",
    "idle_in_transaction_session_timeout": "60s",
}
COMMAND_TIMEOUT = 20.0


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


class _FairHolderQueue(asyncpg.pool._PoolConnectionHolderQueue):
    """asyncpg's queue of idle connections, but a released connection goes straight to
    the longest-waiting acquirer, and a newcomer queues behind those already waiting.

    asyncpg's (an ``asyncio.LifoQueue``) puts the connection back and wakes a waiter;
    until that waiter runs, any new request takes the connection first, and the
    waiter goes back to the end of the line. Under load some requests lost that race
    again and again: a p99 of 20 times the mean.
    """

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
        getter = self._get_loop().create_future()
        self._getters.append(getter)
        try:
            return await getter
        except BaseException:
            if getter.done() and not getter.cancelled():
                self.put_nowait(getter.result())  # handed over just as we gave up: pass it on
            else:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
            raise


# The asyncpg whose release internals ``BoundedPool._release_now`` follows (checked by
# tests/test_pool.py, so an upgrade is looked at before the shortcut runs on it).
RELEASE_SHORTCUT_FOR = "0.32."


class BoundedPool(asyncpg.Pool):
    """A pool whose acquire waits ``ACQUIRE_TIMEOUT`` unless told otherwise (its own
    ``fetch``/``execute`` helpers acquire through it too), and whose release of a
    connection with nothing to undo costs no task."""

    _shortcut = asyncpg.__version__.startswith(RELEASE_SHORTCUT_FOR)

    async def _initialize(self) -> None:
        await super()._initialize()
        fair = _FairHolderQueue(maxsize=self._maxsize)
        fair._queue.extend(self._queue._queue)  # no acquirer yet: the pool is not ready
        self._queue = fair

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=ACQUIRE_TIMEOUT if timeout is None else timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """A connection that breaks while it is reset for the next user has done its
        work (committed or rolled back): asyncpg has dropped it and the pool opens
        another, so the request's own outcome stands instead of becoming an error."""
        if self._shortcut and self._release_now(connection):
            return
        try:
            await super().release(connection, timeout=timeout)
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
        holder._setup_inactive_callback()
        return True


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak JSON; fails fast when the database is unreachable."""
    pool = BoundedPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init=init_connection,
        reset=keep_session,
        command_timeout=COMMAND_TIMEOUT,
        timeout=CONNECT_TIMEOUT,
        server_settings=SERVER_SETTINGS,
    )
    return await pool
