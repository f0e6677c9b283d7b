"""The relay's pure part: messages, what a batch settles, backoff."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
from hypothesis import given
from hypothesis import strategies as st

from usersvc.amqp.messages import OutboxRow, backoff_delay, settled, to_message

A, B, C = uuid4(), uuid4(), uuid4()


def row(position: int, user_id: UUID) -> OutboxRow:
    return OutboxRow(
        position=position,
        event_id=uuid4(),
        event_name="FullnameChanged",
        user_id=user_id,
        occurred_at=datetime(2026, 1, 7, 13, 32, 33, 394000, tzinfo=UTC),
        data={"firstname": "Ivan", "lastname": "Petrov", "middlename": None},
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        actor="billing",
    )


def test_message_carries_the_contract_properties_and_body() -> None:
    event = row(1, A)
    message = to_message(event)
    assert message.routing_key == "FullnameChanged"
    assert orjson.loads(message.body) == {
        "event_id": str(event.event_id),
        "event_name": "FullnameChanged",
        "occurred_at": "2026-01-07T13:32:33.394000Z",
        "user_id": str(A),
        "actor": "billing",
        "data": {"firstname": "Ivan", "lastname": "Petrov", "middlename": None},
    }
    p = message.properties
    assert (p.content_type, p.delivery_mode, p.message_type) == (
        "application/json",
        2,
        "FullnameChanged",
    )
    assert p.message_id == str(event.event_id)
    assert p.timestamp == event.occurred_at
    assert p.headers == {"traceparent": event.headers["traceparent"]}


def test_all_confirmed_settles_the_whole_batch() -> None:
    rows = [row(1, A), row(2, B), row(3, A)]
    assert settled(rows, [True, True, True]) == [1, 2, 3]


def test_a_users_later_rows_are_held_back_behind_its_unconfirmed_row() -> None:
    rows = [row(1, A), row(2, B), row(3, A), row(4, C), row(5, B)]
    # A's first row failed: A's later row is sent again after it; B and C are settled.
    assert settled(rows, [False, True, True, True, True]) == [2, 4, 5]


def test_nothing_confirmed_settles_nothing() -> None:
    assert settled([row(1, A), row(2, B)], [False, False]) == []


@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.booleans()), max_size=30))
def test_a_settled_row_never_follows_an_unsettled_row_of_its_user(
    batch: list[tuple[UUID, bool]],
) -> None:
    rows = [row(position, user_id) for position, (user_id, _) in enumerate(batch)]
    marked = set(settled(rows, [ok for _, ok in batch]))
    for user_id in (A, B, C):
        flags = [r.position in marked for r in rows if r.user_id == user_id]
        # Per user: a prefix settled, the rest waiting (so a retry keeps the order).
        assert flags == sorted(flags, reverse=True)
    # Only confirmed rows are settled.
    assert all(batch[p][1] for p in marked)


def test_backoff_doubles_up_to_the_cap_with_jitter_in_its_upper_half() -> None:
    assert [backoff_delay(n, 0.5, 30.0, 0.0) for n in range(9)] == [
        0.25,
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        15.0,
        15.0,
        15.0,
    ]
    assert backoff_delay(3, 0.5, 30.0, 0.999) < 4.0
    assert backoff_delay(10_000, 0.5, 30.0, 0.999) <= 30.0
