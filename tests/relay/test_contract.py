"""The events on the wire as the contract (§4) describes them, with real RabbitMQ."""

import asyncio
from collections import Counter
from datetime import UTC
from typing import Any
from uuid import uuid4

import asyncpg
import orjson
from returns.result import Failure

from tests.contract import EVENT_DATA_KEYS, PERSONAL_DATA
from tests.relay.support import (
    ACTOR,
    Consumer,
    StartRelay,
    create_user,
    eventually,
    every_event,
    succeed,
    traceparent,
)
from usersvc.amqp import RelaySettings
from usersvc.db.pool import dumps
from usersvc.db.queries import Queries
from usersvc.db.users import Command, Users
from usersvc.domain import commands
from usersvc.domain.model import SocialNetwork


async def test_each_command_event_arrives_once_with_every_contract_field(
    users: Users, consumer: Consumer, start_relay: StartRelay, settings: RelaySettings
) -> None:
    # A poll this slow would time the test out: each event must come on NOTIFY.
    await start_relay(poll_interval=60.0)
    sent: list[tuple[object, str]] = []

    async def run(command: Command) -> Any:
        headers = {"traceparent": traceparent()}
        event = await succeed(users, command, headers)
        sent.append((event, headers["traceparent"]))
        # One at a time, so the creation is published before the deletion erases it.
        await consumer.wait_for([event.event_id], within=5.0)
        return event

    user_id = await every_event(run)
    await asyncio.sleep(0.3)  # time for any duplicate to show

    assert {type(e).__name__ for e, _ in sent} == set(EVENT_DATA_KEYS)
    assert Counter(consumer.ids()) == {str(e.event_id): 1 for e, _ in sent}
    for message, (event, trace) in zip(consumer.messages, sent, strict=True):
        properties = message.header.properties
        assert message.exchange == settings.exchange
        assert message.routing_key == event.event_name
        assert properties.content_type == "application/json"
        assert properties.delivery_mode == 2
        assert properties.message_id == str(event.event_id)
        assert properties.message_type == event.event_name
        assert properties.timestamp.replace(tzinfo=UTC) == event.occurred_at.replace(microsecond=0)
        assert properties.headers == {"traceparent": trace}
        body = orjson.loads(message.body)
        assert body == {
            "event_id": str(event.event_id),
            "event_name": event.event_name,
            "occurred_at": dumps(event.occurred_at).decode().strip('"'),
            "user_id": str(user_id),
            "actor": ACTOR,
            "data": orjson.loads(dumps(event.data())),
        }
        assert body["occurred_at"].endswith("Z")
        assert set(body["data"]) == EVENT_DATA_KEYS[event.event_name]


async def test_a_failed_command_sends_nothing(
    users: Users, consumer: Consumer, start_relay: StartRelay
) -> None:
    await start_relay()
    created = await succeed(users, create_user())
    taken = create_user()
    await succeed(users, taken)

    failures = [
        commands.RecoverUser(uuid4()),  # no such user
        commands.RecoverUser(created.user_id),  # already active
        commands.ChangeFullname(created.user_id, "  ", "Petrov", None),  # invalid
        create_user(email=taken.email),  # conflict, found by the database
        create_user(email=None, phone=None),  # invalid before the database
    ]
    for command in failures:
        decision = await users.execute(command)
        assert isinstance(decision, Failure), command
    last = await succeed(users, commands.DeleteUserTemporarily(created.user_id))
    await consumer.wait_for([last.event_id])
    await asyncio.sleep(0.2)

    assert [orjson.loads(m.body)["event_name"] for m in consumer.messages] == [
        "UserCreated",
        "UserCreated",
        "UserTemporarilyDeleted",
    ]


async def test_no_personal_data_in_events_sent_after_a_permanent_deletion(
    users: Users, consumer: Consumer, start_relay: StartRelay
) -> None:
    # Every event of the user waits in the outbox until after the deletion.
    created = await succeed(users, create_user())
    user_id = created.user_id
    await succeed(users, commands.ChangeFullname(user_id, "Anna", "Smirnova", "Olegovna"))
    await succeed(users, commands.ChangeContacts(user_id, None, 79_161_234_567))
    link = f"https://instagram.com/a{uuid4().hex[:10]}"
    linked = await succeed(
        users, commands.LinkSocialNetwork(user_id, SocialNetwork.INSTAGRAM, link, "hobby")
    )
    await succeed(
        users, commands.ChangeConnectionReason(user_id, linked.linked_account_id, "old friends")
    )
    deleted = await succeed(users, commands.DeleteUserPermanently(user_id))
    # Another user's events keep their data: erasure is of the deleted user only.
    other = await succeed(users, create_user())

    await start_relay()
    await consumer.wait_for([deleted.event_id, other.event_id])

    bodies = [orjson.loads(m.body) for m in consumer.messages]
    mine = [b for b in bodies if b["user_id"] == str(user_id)]
    assert [b["event_name"] for b in mine] == [
        "UserCreated",
        "FullnameChanged",
        "ContactsChanged",
        "LinkedAccountCreated",
        "ConnectionReasonChanged",
        "UserPermanentlyDeleted",
    ]
    for body in mine:
        for name in PERSONAL_DATA & set(body["data"]):
            assert body["data"][name] is None, (body["event_name"], name)
    assert mine[-1]["data"] == {
        "version": 6,  # five changes, then the deletion
        "linked_account_ids": [str(linked.linked_account_id)],
    }
    # What is not personal stays.
    assert mine[0]["data"]["status"] == "active"
    assert mine[3]["data"]["social_network"] == "instagram"
    (theirs,) = [b for b in bodies if b["user_id"] == str(other.user_id)]
    assert theirs["data"]["firstname"] == "Ivan"


async def test_an_erasure_in_progress_holds_the_relay_back_and_its_events_go_erased(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    pool: asyncpg.Pool,
    queries: Queries,
) -> None:
    created = await succeed(users, create_user())
    rename = commands.ChangeFullname(created.user_id, "Anna", "Ivanova", None)
    changed = await succeed(users, rename)
    other = await succeed(users, create_user())
    async with pool.acquire() as connection, connection.transaction():
        # A permanent deletion's erasure, not yet committed, holds the user's rows.
        await connection.execute(
            queries.erase_personal_data, created.user_id, sorted(PERSONAL_DATA)
        )
        relay, _ = await start_relay()
        await eventually(lambda: relay.health().leader)
        await asyncio.sleep(0.5)  # ten tries at the least
        # The relay neither sends them as they were nor skips them for later rows.
        assert consumer.messages == []
        assert relay.health().last_error is None
    await consumer.wait_for([created.event_id, changed.event_id, other.event_id])

    bodies = [orjson.loads(m.body) for m in consumer.messages]
    # Order is the contract's per user; another user's event may come in between.
    first, second = (b for b in bodies if b["user_id"] == str(created.user_id))
    (third,) = (b for b in bodies if b["user_id"] == str(other.user_id))
    assert [first["event_id"], second["event_id"]] == [
        str(created.event_id),
        str(changed.event_id),
    ]
    assert third["event_id"] == str(other.event_id)
    assert all(first["data"][name] is None for name in PERSONAL_DATA & set(first["data"]))
    assert all(second["data"][name] is None for name in PERSONAL_DATA & set(second["data"]))
    assert third["data"]["firstname"] == "Ivan"
