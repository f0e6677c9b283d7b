"""How the relay groups committed events into batches, with real services."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from attrs import evolve

from tests.relay.support import Consumer, StartRelay, create_user, eventually, succeed
from usersvc.amqp import Relay, RelaySettings
from usersvc.amqp import relay as relay_module
from usersvc.amqp.messages import OutboxRow
from usersvc.db.queries import Queries
from usersvc.db.users import Users

StartRecorded = Callable[..., Any]


@pytest.fixture
async def recorded_relay(
    pool: asyncpg.Pool, session_database_url: str, queries: Queries, settings: RelaySettings
) -> AsyncIterator[tuple[list[list[str]], StartRecorded]]:
    """A relay that records each published batch's event ids; settings overridable."""
    batches: list[list[str]] = []
    tasks: list[asyncio.Task[None]] = []

    def on_published(rows: Sequence[OutboxRow]) -> None:
        batches.append([str(row.event_id) for row in rows])

    def start(**overrides: Any) -> Relay:
        relay = Relay(
            pool,
            session_database_url,
            queries,
            evolve(settings, **overrides),
            on_published=on_published,
        )
        tasks.append(asyncio.create_task(relay.run()))
        return relay

    try:
        yield batches, start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def commit_in_turn(users: Users, count: int) -> list[UUID]:
    """One stream of commands, one after another: some tens of commits a second."""
    events = []
    for _ in range(count):
        events.append((await succeed(users, create_user())).event_id)
        await asyncio.sleep(0.01)
    return events


async def idle_relay(start: StartRecorded, **settings: Any) -> Relay:
    """A relay started, leading, and past its first (empty) batch: it waits for a wake."""
    relay = start(**settings)
    await eventually(lambda: relay.health().leader)
    await asyncio.sleep(0.1)
    return relay


async def test_events_committed_within_the_batch_wait_go_in_one_batch(
    users: Users, consumer: Consumer, recorded_relay: tuple[list[list[str]], StartRecorded]
) -> None:
    batches, start = recorded_relay
    await idle_relay(start, batch_wait=0.5)
    first = await succeed(users, create_user())
    await asyncio.sleep(0.1)  # another transaction, well within the wait
    second = await succeed(users, create_user())
    await consumer.wait_for([first.event_id, second.event_id])
    await eventually(lambda: sum(map(len, batches)) == 2)  # marked after the confirms
    assert batches == [[str(first.event_id), str(second.event_id)]]


async def test_with_no_batch_wait_an_event_is_published_at_once(
    users: Users, consumer: Consumer, recorded_relay: tuple[list[list[str]], StartRecorded]
) -> None:
    batches, start = recorded_relay
    await idle_relay(start, batch_wait=0)
    first = await succeed(users, create_user())
    await consumer.wait_for([first.event_id], within=0.4)  # the other test waits 0.5 s
    await eventually(lambda: len(batches) == 1)
    second = await succeed(users, create_user())
    await consumer.wait_for([second.event_id], within=0.4)
    await eventually(lambda: len(batches) == 2)
    assert batches == [[str(first.event_id)], [str(second.event_id)]]


async def test_a_wave_whose_write_never_goes_out_is_given_up_at_the_confirm_timeout(
    users: Users,
    consumer: Consumer,
    recorded_relay: tuple[list[list[str]], StartRecorded],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The first wave's write waits for ever (a writer that died with the connection
    # would leave it so); the relay must give it up, reconnect and send the event.
    real = relay_module.publish_many
    stuck = asyncio.Event()
    calls = 0

    async def first_one_hangs(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            stuck.set()
            await asyncio.Event().wait()
        return await real(*args)

    monkeypatch.setattr(relay_module, "publish_many", first_one_hangs)
    batches, start = recorded_relay
    relay = start(confirm_timeout=0.5)
    event = await succeed(users, create_user())
    async with asyncio.timeout(5):
        await stuck.wait()
    await eventually(lambda: relay.health().last_error is not None)
    # Health names the failure's type; the log says what it was.
    assert relay.health().last_error == "BrokerConnectionLostError"
    assert "TimeoutError: no confirm within 0.5 s" in caplog.text
    await consumer.wait_for([event.event_id])
    await eventually(lambda: batches == [[str(event.event_id)]])


class HearingRelay(Relay):
    """A relay that counts the NOTIFYs its session hears."""

    heard = 0

    def _notified(self, *args: object) -> None:
        self.heard += 1
        super()._notified(*args)


async def test_while_commits_keep_coming_the_relay_looks_again_instead_of_hearing_each_notify(
    users: Users, consumer: Consumer, start_relay: StartRelay
) -> None:
    # A poll this slow would time the test out: the relay must find every event by
    # looking again after each batch, or by a NOTIFY once it is idle.
    relay, _ = await start_relay(kind=HearingRelay, poll_interval=60.0, batch_wait=0.02)
    await eventually(lambda: relay.health().leader)
    await asyncio.sleep(0.1)  # past its first, empty batch: listening

    # A second or so of commits from eight streams, some hundreds a second.
    streams = await asyncio.gather(*(commit_in_turn(users, 100) for _ in range(8)))
    events = [event_id for stream in streams for event_id in stream]
    await consumer.wait_for(events)
    # Heard: the commits of the first wait, and a few in flight at the UNLISTEN;
    # a relay that listened throughout hears each of the 800.
    assert relay.heard < len(events) / 4, relay.heard

    # Idle again, it listens: an event comes at once, not after the 60-second poll.
    await asyncio.sleep(0.3)
    heard = relay.heard
    late = await succeed(users, create_user())
    await consumer.wait_for([late.event_id], within=2.0)
    assert relay.heard > heard


class SneakingRelay(Relay):
    """A relay before whose LISTEN an event is committed: right after its first empty
    fetch that follows a batch with rows, while its session hears no NOTIFY."""

    users: Users
    busy = False
    sneaked: Any = None

    async def _publish_batch(self, *args: Any) -> Any:
        batch = await super()._publish_batch(*args)
        if batch.fetched:
            self.busy = True
        elif self.busy and self.sneaked is None:
            self.sneaked = await succeed(self.users, create_user())
        return batch


async def test_an_event_committed_as_the_relay_turns_idle_is_found_without_a_notify(
    users: Users, consumer: Consumer, start_relay: StartRelay
) -> None:
    SneakingRelay.users = users
    relay, _ = await start_relay(kind=SneakingRelay, poll_interval=60.0, batch_wait=0.02)
    await eventually(lambda: relay.health().leader)
    first = await succeed(users, create_user())
    await consumer.wait_for([first.event_id], within=2.0)
    await eventually(lambda: relay.sneaked is not None)
    # Not after the 60-second poll: the relay looks once more after its LISTEN.
    await consumer.wait_for([relay.sneaked.event_id], within=2.0)


async def test_while_commits_keep_coming_each_look_waits_the_drain_wait(
    users: Users, consumer: Consumer, recorded_relay: tuple[list[list[str]], StartRecorded]
) -> None:
    batches, start = recorded_relay
    await idle_relay(start, batch_wait=0.01, drain_wait=0.25)

    # About a second of commits from four streams.
    streams = await asyncio.gather(*(commit_in_turn(users, 80) for _ in range(4)))
    events = [event_id for stream in streams for event_id in stream]
    await consumer.wait_for(events)
    await eventually(lambda: sum(map(len, batches)) == len(events))
    # A look every quarter second, and the first after a 10 ms wait: a handful of
    # batches (looks every batch wait would make them by the dozen).
    assert len(batches) <= 10, [len(batch) for batch in batches]
