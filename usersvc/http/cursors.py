"""The listing's ``next_cursor``: the position of a page's last user, opaque to clients.

URL-safe base64 of ``<created_at in microseconds since the epoch>.<user_id hex>``:
short, exact (PostgreSQL keeps microseconds) and free of characters a query string
must escape. Opaque means clients only send it back; its form may change.
"""

import base64
import binascii
from datetime import UTC, datetime, timedelta
from uuid import UUID

type Position = tuple[datetime, UUID]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode(position: Position) -> str:
    created_at, user_id = position
    micros = (created_at - _EPOCH) // _MICROSECOND
    text = f"{micros}.{user_id.hex}"
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode(cursor: str) -> Position | None:
    """The position, or None for anything this service did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, user_id = raw.split(".")
        if not micros.lstrip("-").isdigit() or len(user_id) != 32:
            return None
        return _EPOCH + int(micros) * _MICROSECOND, UUID(hex=user_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        return None
