"""Three ``usersvc serve`` replicas on one database under load: kill -9 the relay's
leader, then the next one. Another takes over within seconds, every committed event
reaches RabbitMQ (counted by message_id in a queue of the test's own), each user's
events in commit order; duplicates are allowed (at least once), losses are not."""

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.reliability.load import (
    Record,
    assert_no_personal_data,
    check_database,
    committed_events,
    keep_commit_log,
    run_load,
)
from tests.reliability.processes import Serve, environment
from tests.reliability.rabbit import (
    Vhost,
    check_delivery,
    declare_counting_queue,
    drain,
    private_vhost,
)
from usersvc.db.pool import init_connection

EXCHANGE = "users"
QUEUE = "counted"
TAKEOVER_SECONDS = 15.0
CLIENTS = 6


@pytest.fixture
def vhost(database_url: str) -> Iterator[Vhost]:
    with private_vhost() as vhost:
        yield vhost


def sender(session: aiohttp.ClientSession, replicas: list[Serve]):
    async def send(method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        alive = [r for r in replicas if r.process.poll() is None]
        replica = random.choice(alive)
        async with session.request(method, replica.base + path, json=body) as response:
            return response.status, await response.json(), dict(response.headers)

    return send


async def leaders(replicas: list[Serve]) -> list[Serve]:
    healths = await asyncio.gather(*(asyncio.to_thread(r.health) for r in replicas))
    return [r for r, h in zip(replicas, healths, strict=True) if h and h.get("relay_leader")]


async def wait_for_leader(replicas: list[Serve]) -> tuple[Serve, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < TAKEOVER_SECONDS:
        alive = [r for r in replicas if r.process.poll() is None]
        found = await leaders(alive)
        if found:
            assert len(found) == 1, "two relays lead at once"
            return found[0], loop.time() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"no relay took the lead within {TAKEOVER_SECONDS} s")


async def broker_lost(replica: Serve) -> None:
    """Wait until the replica's health check says its relay lost the broker."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        health = await asyncio.to_thread(replica.health)
        if health is not None and health["broker"] == "disconnected":
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the relay never noticed the broker outage: no fault was injected")


async def events_of(database_url: str) -> tuple[list[dict[str, Any]], int]:
    """The events committed, in commit order, and how many still wait in the outbox."""
    connection = await asyncpg.connect(database_url)
    try:
        await init_connection(connection)
        events = await committed_events(connection)
        waiting = await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        return events, waiting
    finally:
        await connection.close()


async def run_replicas(
    database_url: str, vhost: Vhost, phase_seconds: float, kills: int, broker_outage: float
) -> str:
    """Kill the leader ``kills`` times, ``phase_seconds`` apart; after the first kill the
    broker also refuses the service for ``broker_outage`` seconds (its rights revoked,
    its connections closed)."""
    amqp = vhost.url
    await declare_counting_queue(amqp, EXCHANGE, QUEUE)
    await keep_commit_log(database_url)
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_AMQP_URL=amqp,
        USERSVC_AMQP_EXCHANGE=EXCHANGE,
        USERSVC_LOG_LEVEL="INFO",
    )
    replicas = [Serve(env) for _ in range(kills + 1)]
    try:
        for replica in replicas:
            await asyncio.to_thread(replica.wait_healthy)
        leader, _ = await wait_for_leader(replicas)
        stop = asyncio.Event()
        record = Record()
        async with aiohttp.ClientSession() as session:
            load = asyncio.create_task(run_load(sender(session, replicas), CLIENTS, stop, record))
            takeovers = []
            for kill in range(kills):
                await asyncio.sleep(phase_seconds)
                leader.kill()
                leader, seconds = await wait_for_leader(replicas)
                takeovers.append(seconds)
                if kill == 0 and broker_outage:
                    await asyncio.to_thread(vhost.revoke)
                    await broker_lost(leader)
                    await asyncio.sleep(broker_outage)
                    await asyncio.to_thread(vhost.grant)
            await asyncio.sleep(phase_seconds)
            stop.set()
            await load
        assert not record.problems, record.problems[:10]
        assert record.answers[500] == 0

        # the last replica publishes the rest
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await events_of(database_url))[1] and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        events, waiting = await events_of(database_url)
        assert waiting == 0, f"{waiting} events still unpublished"
        connection = await asyncpg.connect(database_url)
        try:
            await init_connection(connection)
            await check_database(connection, record)
        finally:
            await connection.close()
        messages = await drain(amqp, QUEUE, {e["event_id"] for e in events}, within=60)
        duplicates = check_delivery(events, messages)

        # no personal data in any replica's log
        assert_no_personal_data("".join(r.output() for r in replicas))
        for replica in replicas:
            if replica.process.poll() is None:
                assert replica.terminate() == 0, replica.output()[-3000:]
        summary = (
            f"{record.summary()}; {len(events)} events committed, {len(messages)} delivered"
            f" ({duplicates} duplicates), lost: 0; leader killed {kills} times, takeovers in"
            f" {', '.join(f'{s:.1f}' for s in takeovers)} s; broker refused for {broker_outage} s"
        )
        print("\n" + summary)
        return summary
    finally:
        for replica in replicas:
            replica.close()


async def test_killing_the_relay_leader_twice_and_a_broker_outage_lose_no_event(
    database_url: str, vhost: Vhost
):
    await run_replicas(database_url, vhost, phase_seconds=2.0, kills=2, broker_outage=4.0)


@pytest.mark.long
async def test_killing_the_relay_leader_again_and_again_under_long_load_loses_no_event(
    database_url: str, vhost: Vhost
):
    await run_replicas(database_url, vhost, phase_seconds=6.0, kills=4, broker_outage=8.0)
