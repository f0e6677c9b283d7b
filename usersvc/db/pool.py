"""The asyncpg pool, with JSON done by orjson, and every wait on the database bounded."""

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


class BoundedPool(asyncpg.Pool):
    """A pool whose acquire waits ``ACQUIRE_TIMEOUT`` unless told otherwise; its own
    ``fetch``/``execute`` helpers acquire through it too."""

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=ACQUIRE_TIMEOUT if timeout is None else timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """A connection that breaks while it is reset for the next user has done its
        work (committed or rolled back): asyncpg has dropped it and the pool opens
        another, so the request's own outcome stands instead of becoming an error."""
        try:
            await super().release(connection, timeout=timeout)
        except _BROKEN as error:
            log.warning("a database connection broke on release: %s", type(error).__name__)


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
