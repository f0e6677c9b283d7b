"""The database fails under a stream of requests: its connections are killed
(pg_terminate_backend), it restarts cleanly, it crashes. Requests in flight get 503
envelopes with Retry-After, never a 500 or a hang; the pool recovers by itself within
seconds; no change is half-applied; the health check is 503 while the database is
down and 200 after. On a PostgreSQL of the test's own."""

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.reliability.load import Record, check_database, keep_commit_log, run_load
from tests.reliability.private_postgres import PrivatePostgres
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import init_connection
from usersvc.http.app import create_app

DATABASE = "usersvc_faults"
CLIENTS = 8
RECOVERY_SECONDS = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def database(server: PrivatePostgres) -> str:
    admin = await asyncpg.connect(server.url)
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()
    url = server.url_for(DATABASE)
    await asyncio.to_thread(apply_migrations, url)
    await keep_commit_log(url)
    return url


@pytest.fixture
async def service(aiohttp_client, database: str) -> TestClient:
    return await aiohttp_client(create_app(database))


def sender(api: TestClient):
    async def send(method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        async with api.request(method, path, json=body) as response:
            return response.status, await response.json(), dict(response.headers)

    return send


async def health(api: TestClient) -> int:
    try:
        async with api.post("/api/v1/healthcheck") as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def wait_healthy(api: TestClient) -> float:
    """Seconds until the health check answers 200 (fails after RECOVERY_SECONDS)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await health(api) != 200:
        assert loop.time() - started < RECOVERY_SECONDS, "the service did not recover"
        await asyncio.sleep(0.1)
    return loop.time() - started


async def terminate_backends(server: PrivatePostgres) -> int:
    admin = await asyncpg.connect(server.url)
    try:
        return await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            DATABASE,
        )
    finally:
        await admin.close()


async def checked(database: str, record: Record) -> list[dict[str, Any]]:
    assert not record.problems, record.problems[:10]
    assert record.answers[500] == 0
    connection = await asyncpg.connect(database)
    try:
        await init_connection(connection)
        return await check_database(connection, record)
    finally:
        await connection.close()


async def kill_connections_under_load(
    server: PrivatePostgres, service: TestClient, database: str, rounds: int
) -> Record:
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(sender(service), CLIENTS, stop))
    killed = 0
    for _ in range(rounds):
        await asyncio.sleep(0.7)
        killed += await terminate_backends(server)
    await wait_healthy(service)
    await asyncio.sleep(0.5)  # served again, under load
    stop.set()
    record = await load
    assert killed >= rounds, "no connection was there to kill"
    await checked(database, record)
    assert record.succeeded > 0
    print(f"\nkilled {killed} connections in {rounds} rounds; {record.summary()}")
    return record


async def test_connections_killed_during_a_request_stream_are_503s_and_the_pool_recovers(
    server: PrivatePostgres, service: TestClient, database: str
):
    record = await kill_connections_under_load(server, service, database, rounds=6)
    assert record.answers[503] > 0, "no request met a killed connection: the test proves nothing"


@pytest.mark.long
async def test_connections_killed_for_a_long_while_lose_nothing(
    server: PrivatePostgres, service: TestClient, database: str
):
    await kill_connections_under_load(server, service, database, rounds=40)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_database_restart_under_load_is_503s_then_the_pool_recovers_by_itself(
    server: PrivatePostgres, service: TestClient, database: str, mode: str
):
    """``fast``: a clean shutdown and start; ``immediate``: a crash and recovery."""
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(sender(service), CLIENTS, stop))
    await asyncio.sleep(1.0)
    await asyncio.to_thread(server.stop, mode)
    try:
        # while it is down: the health check and every request say 503
        down = [await health(service) for _ in range(5)]
        assert down == [503] * 5
        await asyncio.sleep(1.0)
    finally:
        await asyncio.to_thread(server.start)
    recovered = await wait_healthy(service)
    await asyncio.sleep(1.0)  # served again, under load
    stop.set()
    record = await load
    await checked(database, record)
    assert record.answers[503] > 0
    assert record.succeeded > 0
    print(f"\nrestart ({mode}): healthy {recovered:.2f} s after the start; {record.summary()}")
