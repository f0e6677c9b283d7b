"""The asyncpg pool, with JSON done by orjson."""

from uuid import UUID

import asyncpg
import orjson


def _default(value: object) -> str:
    # asyncpg's own UUID type subclasses uuid.UUID, which orjson only knows exactly.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: object) -> bytes:
    """JSON as the service writes it everywhere: UUIDs, enums, RFC 3339 UTC with "Z"."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)


def _dumps(value: object) -> str:
    return dumps(value).decode()


async def _init(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak JSON; fails fast when the database is unreachable."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init, command_timeout=30
    )
