"""The relay through broker outages, crashes and a second relay, with real services."""

import asyncio
import itertools
from collections import Counter, defaultdict
from uuid import UUID, uuid4

import asyncpg
import orjson
from aiormq.abc import AbstractChannel

from tests.relay.support import (
    Consumer,
    Proxy,
    StartRelay,
    create_user,
    eventually,
    eventually_equal,
    succeed,
)
from usersvc.amqp import Relay, RelayHealth, RelaySettings, outbox_backlog
from usersvc.db.pool import create_pool
from usersvc.db.queries import Queries
from usersvc.db.users import Command, Users
from usersvc.domain import commands


def next_command(user_id: UUID, step: int) -> Command:
    """A user's commands in a cycle that is valid from any point of it."""
    match step % 4:
        case 0:
            return commands.ChangeFullname(user_id, f"Name{step}", "Petrov", None)
        case 1:
            return commands.ChangeContacts(user_id, f"u{uuid4().hex[:12]}@example.com", None)
        case 2:
            return commands.DeleteUserTemporarily(user_id)
        case _:
            return commands.RecoverUser(user_id)


class Load:
    """Users whose commands run concurrently (each user's one after another),
    remembering each user's events in commit order."""

    def __init__(self, users: Users) -> None:
        self._users = users
        self.committed: dict[str, list[str]] = defaultdict(list)

    async def create(self, count: int) -> list[UUID]:
        events = await asyncio.gather(*(succeed(self._users, create_user()) for _ in range(count)))
        for event in events:
            self.committed[str(event.user_id)].append(str(event.event_id))
        return [e.user_id for e in events]

    async def run(self, user_id: UUID, steps: int) -> None:
        for step in range(steps):
            await self.command(user_id, step)

    async def command(self, user_id: UUID, step: int) -> None:
        event = await succeed(self._users, next_command(user_id, step))
        self.committed[str(user_id)].append(str(event.event_id))

    def all_ids(self) -> set[str]:
        return set(itertools.chain.from_iterable(self.committed.values()))


def first_arrivals(consumer: Consumer) -> dict[str, list[str]]:
    """Each user's events in the order they first arrived (consumers drop repeats)."""
    seen: set[str] = set()
    by_user: dict[str, list[str]] = defaultdict(list)
    for message in consumer.messages:
        body = orjson.loads(message.body)
        if body["event_id"] not in seen:
            seen.add(body["event_id"])
            by_user[body["user_id"]].append(body["event_id"])
    return dict(by_user)


def assert_delivered(consumer: Consumer, load: Load, duplicates_at_most: int = 0) -> None:
    ids = consumer.ids()
    assert set(ids) == load.all_ids()  # nothing lost, nothing invented
    assert len(ids) - len(set(ids)) <= duplicates_at_most
    assert first_arrivals(consumer) == dict(load.committed)  # per-user commit order


async def test_broker_outage_loses_nothing_and_keeps_each_users_order(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    proxy: Proxy,
    pool: asyncpg.Pool,
    queries: Queries,
    settings: RelaySettings,
) -> None:
    relay, _ = await start_relay(amqp_url=proxy.url)
    load = Load(users)
    user_ids = await load.create(50)
    down_commands = 0
    stop = asyncio.Event()

    async def work(user_id: UUID) -> None:
        nonlocal down_commands
        for step in itertools.count():
            if stop.is_set():
                return
            was_down = not proxy.up
            await load.command(user_id, step)
            down_commands += was_down and not proxy.up

    workers = [asyncio.create_task(work(user_id)) for user_id in user_ids]
    try:
        # Cut the link while batches are in flight.
        await consumer.wait_count(200)
        proxy.cut()
        await eventually(lambda: relay.health().broker == "disconnected", within=3.0)
        await eventually(lambda: down_commands >= 1000, within=30.0)
        health = relay.health()
        assert health.broker == "disconnected"
        assert health.last_error is not None
        assert await outbox_backlog(pool, queries) >= 1000  # commands kept succeeding
        proxy.restore()
        await asyncio.sleep(0.3)  # commands go on while the relay comes back
    finally:
        stop.set()
        await asyncio.gather(*workers)

    await consumer.wait_for(load.all_ids(), within=30.0)
    await eventually_equal(lambda: outbox_backlog(pool, queries), 0)
    # Repeats only where a confirm was lost: at most the batch in flight at the cut.
    assert_delivered(consumer, load, duplicates_at_most=settings.batch_size)
    assert relay.health() == RelayHealth(broker="connected", leader=True, last_error=None)


async def test_health_reports_the_broker_disconnected_during_an_outage(
    users: Users, start_relay: StartRelay, proxy: Proxy, consumer: Consumer
) -> None:
    load = Load(users)
    user_ids = await load.create(50)
    await asyncio.gather(*(load.run(user_id, 19) for user_id in user_ids))
    relay, _ = await start_relay(amqp_url=proxy.url, batch_size=1000)
    await consumer.wait_count(1)
    proxy.cut()  # mid-batch: publishes queued, confirms awaited
    # At once, not after the confirm timeout (10 s here).
    await eventually(lambda: relay.health().broker == "disconnected", within=3.0)
    assert not relay.health().leader
    await asyncio.sleep(0.5)  # several failed reconnections
    health = relay.health()
    assert health.broker == "disconnected"
    assert health.last_error is not None
    proxy.restore()
    await eventually(lambda: relay.health() == RelayHealth("connected", True, None))
    await consumer.wait_for(load.all_ids())


async def test_a_relay_that_loses_its_database_resumes_and_loses_nothing(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    session_database_url: str,
    pool: asyncpg.Pool,
    queries: Queries,
) -> None:
    # The relay's own connection (lock, LISTEN, batches) goes through a proxy to cut;
    # the commands' pool does not, so they go on meanwhile.
    db_proxy = Proxy(session_database_url)
    await db_proxy.start()
    try:
        relay, _ = await start_relay(relay_database_url=db_proxy.url)
        load = Load(users)
        user_ids = await load.create(20)
        await consumer.wait_for(load.all_ids())
        await eventually_equal(lambda: outbox_backlog(pool, queries), 0)
        db_proxy.cut()
        await eventually(lambda: not relay.health().leader, within=3.0)
        await asyncio.gather(*(load.run(user_id, 10) for user_id in user_ids))
        assert await outbox_backlog(pool, queries) == 200
        assert relay.health().last_error is not None
        db_proxy.restore()
        await consumer.wait_for(load.all_ids())
        await eventually_equal(lambda: outbox_backlog(pool, queries), 0)
        assert_delivered(consumer, load)
        assert relay.health() == RelayHealth("connected", True, None)
    finally:
        await db_proxy.stop()


async def test_a_relay_killed_mid_batch_is_taken_over_and_nothing_is_lost(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool, queries: Queries
) -> None:
    load = Load(users)
    user_ids = await load.create(100)
    await asyncio.gather(*(load.run(user_id, 19) for user_id in user_ids))
    assert len(load.all_ids()) == 2000

    first, first_task = await start_relay(batch_size=1000)
    # Killed halfway through its second batch: 500 confirmed (a wave is each user's next
    # row, 100 of them), none of them marked yet; held there until the second relay is
    # seen waiting.
    publish_wave, confirmed, kill = first._publish_wave, 0, asyncio.Event()

    async def killed_at_1500(*args: object) -> object:
        nonlocal confirmed
        outcomes = await publish_wave(*args)  # type: ignore[arg-type]
        confirmed += len(outcomes)
        if confirmed == 1500:
            await kill.wait()
            first_task.cancel()
        return outcomes

    first._publish_wave = killed_at_1500  # type: ignore[method-assign]
    await eventually(lambda: first.health().leader)
    second, _ = await start_relay(batch_size=1000)
    await eventually(lambda: second.health().broker == "connected")
    await eventually(lambda: confirmed >= 1500)
    assert first.health().leader
    assert not second.health().leader  # waits while the first leads
    kill.set()

    async with asyncio.timeout(10):  # cancel-safe: it stops promptly
        await asyncio.gather(first_task, return_exceptions=True)
    assert first_task.cancelled()
    assert first.health() == RelayHealth("disconnected", False, None)

    await eventually(lambda: second.health().leader)
    await consumer.wait_for(load.all_ids(), within=30.0)
    await eventually_equal(lambda: outbox_backlog(pool, queries), 0)
    # The killed relay's confirmed but unmarked rows are sent again: repeats, no loss.
    assert len(consumer.ids()) > len(set(consumer.ids()))
    assert_delivered(consumer, load, duplicates_at_most=1000)


async def test_two_relays_on_one_database_never_publish_at_once_nor_reorder_a_user(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    database_url: str,
) -> None:
    # Two app instances: each its own pool and relay, one database.
    other_pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        relays = [
            (await start_relay(batch_size=50))[0],
            (await start_relay(relay_pool=other_pool, batch_size=50))[0],
        ]
        publishing: Counter[int] = Counter()
        overlaps = 0

        def spy(index: int, relay: Relay) -> None:
            publish = relay._publish_wave

            async def counted(*args: object) -> object:
                nonlocal overlaps
                publishing[index] += 1
                overlaps += publishing[1 - index] > 0
                try:
                    return await publish(*args)  # type: ignore[arg-type]
                finally:
                    publishing[index] -= 1

            relay._publish_wave = counted  # type: ignore[method-assign]

        for index, relay in enumerate(relays):
            spy(index, relay)
        leaders_seen: list[int] = []

        async def sample() -> None:
            while True:
                leaders_seen.append(sum(r.health().leader for r in relays))
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        load = Load(users)
        user_ids = await load.create(30)
        await asyncio.gather(*(load.run(user_id, 20) for user_id in user_ids))
        await consumer.wait_for(load.all_ids())
        sampler.cancel()

        assert max(leaders_seen) == 1
        assert overlaps == 0
        assert_delivered(consumer, load, duplicates_at_most=0)
    finally:
        await other_pool.close()


async def test_an_unroutable_message_is_not_marked_and_is_sent_again(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    broker: AbstractChannel,
    names: tuple[str, str],
    pool: asyncpg.Pool,
    queries: Queries,
) -> None:
    exchange, queue = names
    relay, _ = await start_relay()
    await eventually(lambda: relay.health().leader)
    await broker.queue_unbind(queue, exchange, routing_key="#")
    load = Load(users)
    await load.create(3)

    # Returned as unroutable (mandatory): kept in the outbox, retried with backoff.
    await eventually(lambda: relay.health().last_error is not None)
    # Named by its type only (the text, "NO_ROUTE" and the exchange, stays in the log).
    assert relay.health().last_error == "PublishError"
    assert await outbox_backlog(pool, queries) == 3
    assert consumer.messages == []

    await broker.queue_bind(queue, exchange, routing_key="#")
    await consumer.wait_for(load.all_ids())
    await eventually_equal(lambda: outbox_backlog(pool, queries), 0)
    await eventually(lambda: relay.health().last_error is None)


async def test_backlog_counts_the_events_not_yet_published(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool, queries: Queries
) -> None:
    assert await outbox_backlog(pool, queries) == 0
    load = Load(users)
    (user_id,) = await load.create(1)
    await load.run(user_id, 4)
    assert await outbox_backlog(pool, queries) == 5
    await start_relay()
    await consumer.wait_for(load.all_ids())
    await eventually_equal(lambda: outbox_backlog(pool, queries), 0)


async def test_a_sent_events_row_leaves_the_outbox_and_one_not_yet_sent_stays(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool
) -> None:
    load = Load(users)
    await load.create(5)
    relay, _ = await start_relay()
    await consumer.wait_for(load.all_ids())
    await eventually_equal(lambda: pool.fetchval("SELECT count(*) FROM outbox"), 0)
    relay.stop()
    await eventually(lambda: not relay.health().leader)
    await load.create(1)  # committed with no relay to send it
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_rows_an_earlier_relay_marked_published_are_deleted_at_the_clean_up(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool
) -> None:
    load = Load(users)
    await load.create(3)
    # As a relay before this version left a sent row: kept, with published_at set.
    await pool.execute("UPDATE outbox SET published_at = now() - interval '1 hour'")
    await load.create(1)
    await start_relay(cleanup_interval=0.2)
    await eventually_equal(lambda: pool.fetchval("SELECT count(*) FROM outbox"), 0)
    await consumer.wait_count(1)  # the one not marked, and only it
    await asyncio.sleep(0.3)
    assert len(consumer.messages) == 1


async def test_the_relay_vacuums_the_outbox_once_enough_rows_were_deleted(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool
) -> None:
    # A fetch walks past the index entries of every row marked since the last vacuum;
    # the relay does not wait for an autovacuum that may never come (it may be off).
    async def vacuums() -> int:
        async with pool.acquire() as connection:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            return await connection.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
            )

    before = await vacuums()
    load = Load(users)
    await start_relay(vacuum_after=5, vacuum_interval=0)
    await load.create(12)
    await consumer.wait_for(load.all_ids())

    async def vacuumed() -> bool:
        return await vacuums() > before

    await eventually_equal(vacuumed, True)


async def test_below_its_threshold_the_relay_leaves_the_outbox_to_autovacuum(
    users: Users, consumer: Consumer, start_relay: StartRelay, pool: asyncpg.Pool
) -> None:
    before = await pool.fetchval(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
    )
    load = Load(users)
    await start_relay(vacuum_after=50, vacuum_interval=0)
    await load.create(12)
    await consumer.wait_for(load.all_ids())
    await asyncio.sleep(0.3)
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        after = await connection.fetchval(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
        )
    assert after == before


async def test_a_users_later_event_is_not_sent_while_an_earlier_one_is_refused(
    users: Users,
    consumer: Consumer,
    start_relay: StartRelay,
    broker: AbstractChannel,
    names: tuple[str, str],
) -> None:
    exchange, _ = names
    # A full queue that refuses new messages makes the broker nack every UserCreated
    # (RabbitMQ's reject-publish overflow), while the user's later events route fine.
    refusing = f"{exchange}.refusing"
    await broker.queue_declare(
        refusing, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await broker.queue_bind(refusing, exchange, routing_key="UserCreated")
    try:
        load = Load(users)
        (user_id,) = await load.create(1)
        await load.run(user_id, 2)  # committed before the relay starts: one batch
        relay, _ = await start_relay()
        await eventually(lambda: relay.health().last_error is not None)
        await asyncio.sleep(0.3)  # a few retries
        # The nacked UserCreated may still reach the queues that took it (the broker
        # nacks when any queue refuses), but the user's later events must not.
        [created] = load.committed[str(user_id)][:1]
        assert {m.header.properties.message_id for m in consumer.messages} <= {created}
    finally:
        await broker.queue_delete(refusing)

    await consumer.wait_for(load.all_ids())
    assert first_arrivals(consumer) == load.committed


async def test_the_leader_forgets_idempotency_keys_older_than_24_hours(
    start_relay: StartRelay, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "INSERT INTO idempotency_keys (endpoint, key, request_hash, status, body, created_at)"
        " VALUES ('create_user', 'old', $1, 201, '{}', now() - interval '25 hours'),"
        "        ('create_user', 'new', $1, 201, '{}', now() - interval '23 hours')",
        bytes(32),
    )
    await start_relay(cleanup_interval=0.2)
    await eventually_equal(lambda: pool.fetchval("SELECT count(*) FROM idempotency_keys"), 1)
    assert await pool.fetchval("SELECT key FROM idempotency_keys") == "new"
