"""The relay's pure part: outbox row → AMQP message, which rows a batch settled, backoff.

No I/O here; :mod:`usersvc.amqp.relay` reads the rows, talks to the broker and
deletes what this module says is settled.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

from attrs import frozen
from pamqp.commands import Basic

from usersvc.serialization import dumps

PERSISTENT = 2  # AMQP delivery_mode: written to disk by the broker


@frozen
class OutboxRow:
    """One outbox row as the relay reads it (``position`` is its commit-order key)."""

    position: int
    event_id: UUID
    event_name: str
    user_id: UUID
    occurred_at: datetime
    data: Mapping[str, object]
    headers: Mapping[str, object]
    actor: str | None = None  # who asked for the change (§5)


@frozen
class Message:
    """What to hand to ``basic_publish``: the routing key is the event name (§4)."""

    routing_key: str
    body: bytes
    properties: Basic.Properties


def body(row: OutboxRow) -> bytes:
    """The contract's body: the event's header fields, who asked, and its ``data``."""
    return dumps(
        {
            "event_id": row.event_id,
            "event_name": row.event_name,
            "occurred_at": row.occurred_at,
            "user_id": row.user_id,
            "actor": row.actor,
            "data": row.data,
        }
    )


def to_message(row: OutboxRow) -> Message:
    return Message(
        routing_key=row.event_name,
        body=body(row),
        properties=Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=str(row.event_id),
            message_type=row.event_name,
            timestamp=row.occurred_at,  # AMQP timestamps have whole seconds; the body has all
            headers=dict(row.headers),  # e.g. the traceparent of the request
        ),
    )


def settled(rows: Sequence[OutboxRow], confirmed: Sequence[bool]) -> list[int]:
    """Positions to delete as sent after a batch: the confirmed rows, except those of a
    user with an earlier unconfirmed row in the batch.

    Those are sent again after the earlier one, so a user's last copies reach the broker
    in commit order; other users' confirmed rows are kept (fewer duplicates).
    """
    held_back: set[UUID] = set()
    positions: list[int] = []
    for row, ok in zip(rows, confirmed, strict=True):
        if ok and row.user_id not in held_back:
            positions.append(row.position)
        else:
            held_back.add(row.user_id)
    return positions


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Capped exponential backoff with jitter: the ``attempt``-th delay (from 0) is drawn
    from [cap/2, cap], cap = min(maximum, initial · 2^attempt); ``jitter`` is in [0, 1).

    Half the cap is kept so a retry never comes at once; the random half spreads the
    replicas that lost the broker together.
    """
    cap = min(maximum, initial * 2 ** min(attempt, 62))
    return cap / 2 + cap / 2 * jitter
