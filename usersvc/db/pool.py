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


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak JSON; fails fast when the database is unreachable."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=30
    )
