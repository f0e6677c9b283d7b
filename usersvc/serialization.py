"""JSON as the service writes it everywhere: in responses, in the outbox, on the broker."""

from uuid import UUID

import orjson


def _default(value: object) -> str:
    # asyncpg's own UUID type subclasses uuid.UUID, which orjson only knows exactly.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: object) -> bytes:
    """UUIDs and enums as strings, datetimes as RFC 3339 with "Z" for UTC."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)
