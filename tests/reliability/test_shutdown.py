"""SIGTERM to ``usersvc serve`` during a burst of creates: requests in flight complete,
new connections are refused, the process exits 0; after a restart nothing committed
is missing from RabbitMQ."""

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from tests.reliability.load import (
    Record,
    assert_no_personal_data,
    check_database,
    committed_events,
    keep_commit_log,
    new_user_body,
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
CLIENTS = 8


@pytest.fixture
def vhost(database_url: str) -> Iterator[Vhost]:
    with private_vhost() as vhost:
        yield vhost


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


async def outbox(database_url: str) -> tuple[list[dict[str, Any]], int]:
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


async def shutdown_under_load(database_url: str, vhost: Vhost, burst_seconds: float) -> str:
    amqp = vhost.url
    await declare_counting_queue(amqp, EXCHANGE, QUEUE)
    await keep_commit_log(database_url)
    env = environment(
        USERSVC_DATABASE_URL=database_url, USERSVC_AMQP_URL=amqp, USERSVC_AMQP_EXCHANGE=EXCHANGE
    )
    first = Serve(env)
    second = None
    try:
        await asyncio.to_thread(first.wait_healthy)
        record = Record()
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:

            async def send(method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
                async with session.request(method, first.base + path, json=body) as response:
                    return response.status, await response.json(), dict(response.headers)

            load = asyncio.create_task(run_load(send, CLIENTS, stop, record))
            await asyncio.sleep(max(0.0, burst_seconds - 1))

            # one request certainly in flight at SIGTERM: its user's row is locked (for
            # less than the lock timeout)
            async with session.post(
                first.base + "/api/v1/users/create_user", json=new_user_body()
            ) as response:
                held_user = (await response.json())["result"]
            record.succeeded += 1
            record.created.add(UUID(held_user))
            locker = await asyncpg.connect(database_url)
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", held_user)
            held = asyncio.create_task(
                send("DELETE", "/api/v1/users/delete-user-temporarily", {"user_id": held_user})
            )
            await asyncio.sleep(1.0)

            first.process.send_signal(15)
            await asyncio.sleep(0.5)
            refused = await asyncio.to_thread(refuses_connections, first.port)
            assert not held.done(), "the request in flight did not wait for its lock"
            await transaction.commit()
            await locker.close()
            status, answer, _ = await asyncio.wait_for(held, 30)
            stop.set()
            await load
            code = await asyncio.to_thread(first.process.wait, 60)

        assert refused, "a new connection was accepted after SIGTERM"
        assert status == 200, answer  # the request in flight completed
        record.succeeded += 1
        assert code == 0, first.output()[-3000:]
        assert not record.problems, record.problems[:10]
        assert record.answers[500] == 0
        connection = await asyncpg.connect(database_url)
        try:
            await init_connection(connection)
            await check_database(connection, record)
        finally:
            await connection.close()

        events, waiting_at_exit = await outbox(database_url)
        second = Serve(env)
        await asyncio.to_thread(second.wait_healthy)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await outbox(database_url))[1] and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        assert (await outbox(database_url))[1] == 0
        messages = await drain(amqp, QUEUE, {e["event_id"] for e in events}, within=60)
        duplicates = check_delivery(events, messages)
        assert await asyncio.to_thread(second.terminate) == 0, second.output()[-3000:]
        assert_no_personal_data(first.output() + second.output())
        summary = (
            f"{record.summary()}; SIGTERM: exit 0, in-flight completed, new connections"
            f" refused; {len(events)} events committed ({waiting_at_exit} unpublished at exit),"
            f" {len(messages)} delivered after the restart ({duplicates} duplicates), lost: 0"
        )
        print("\n" + summary)
        return summary
    finally:
        for process in (first, second):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.close()


async def test_sigterm_under_load_completes_in_flight_exits_0_and_loses_no_event(
    database_url: str, vhost: Vhost
):
    await shutdown_under_load(database_url, vhost, burst_seconds=2.0)


@pytest.mark.long
async def test_sigterm_after_a_long_burst_loses_no_event(database_url: str, vhost: Vhost):
    await shutdown_under_load(database_url, vhost, burst_seconds=15.0)
