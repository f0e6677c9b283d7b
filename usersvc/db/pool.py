"""The asyncpg pool, with JSON done by orjson."""

import asyncpg
import orjson

from usersvc.serialization import dumps


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


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak JSON; fails fast when the database is unreachable."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        command_timeout=30,
    )
