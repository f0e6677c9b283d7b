"""The pool's release: a connection with nothing to undo goes back at once, without
asyncpg's task; any other goes through asyncpg's own release, which undoes it."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from usersvc.db import pool as pool_module
from usersvc.db.pool import BoundedPool, create_pool


@pytest.fixture
async def small_pool(database_url: str) -> AsyncIterator[BoundedPool]:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def asyncpg_release_refused(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """asyncpg's own (holder) release, recorded: the shortcut must not need it."""
    called: list[str] = []
    original = asyncpg.pool.PoolConnectionHolder.release

    async def recorded(holder: object, timeout: float | None) -> None:  # noqa: ASYNC109 - its signature
        called.append("asyncpg")
        await original(holder, timeout)

    monkeypatch.setattr(asyncpg.pool.PoolConnectionHolder, "release", recorded)
    return called


def test_the_shortcut_is_on_for_the_asyncpg_it_was_written_for() -> None:
    """An asyncpg upgrade turns it off until its internals are checked again (then
    update RELEASE_SHORTCUT_FOR)."""
    assert asyncpg.__version__.startswith(pool_module.RELEASE_SHORTCUT_FOR)
    assert BoundedPool._shortcut


async def test_a_used_connection_goes_back_without_asyncpgs_release_and_serves_again(
    small_pool: BoundedPool, asyncpg_release_refused: list[str]
) -> None:
    for n in range(3):
        async with small_pool.acquire() as connection:
            assert await connection.fetchval("SELECT $1::int", n) == n
        assert small_pool.get_idle_size() == 1
    async with small_pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT 1")  # committed before the release
    assert asyncpg_release_refused == []
    assert await small_pool.fetchval("SELECT 1") == 1


async def test_a_released_proxy_is_detached(small_pool: BoundedPool) -> None:
    async with small_pool.acquire() as connection:
        pass
    with pytest.raises(asyncpg.InterfaceError):
        await connection.fetchval("SELECT 1")


async def test_a_connection_left_in_a_transaction_is_rolled_back_by_asyncpgs_release(
    small_pool: BoundedPool, asyncpg_release_refused: list[str]
) -> None:
    connection = await small_pool.acquire()
    await connection.execute("BEGIN; CREATE TEMP TABLE scratch (n int)")
    await small_pool.release(connection)
    assert asyncpg_release_refused == ["asyncpg"]
    async with small_pool.acquire() as again:
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT to_regclass('pg_temp.scratch')") is None


async def test_a_connection_with_a_listener_is_released_by_asyncpg(
    small_pool: BoundedPool, asyncpg_release_refused: list[str]
) -> None:
    """asyncpg warns of it and drops the callback (pooled connections never listen)."""
    with pytest.warns(asyncpg.InterfaceWarning, match="notification listener"):
        async with small_pool.acquire() as connection:
            await connection.add_listener("somewhere", lambda *_: None)
    assert asyncpg_release_refused == ["asyncpg"]
    assert await small_pool.fetchval("SELECT 1") == 1


async def test_an_expired_connection_is_closed_and_replaced(
    small_pool: BoundedPool, asyncpg_release_refused: list[str]
) -> None:
    async with small_pool.acquire() as connection:
        before = await connection.fetchval("SELECT pg_backend_pid()")
        await small_pool.expire_connections()
    assert asyncpg_release_refused == ["asyncpg"]
    async with small_pool.acquire() as again:
        assert await again.fetchval("SELECT pg_backend_pid()") != before


async def test_a_connection_at_its_query_limit_is_closed_and_replaced(
    database_url: str, asyncpg_release_refused: list[str]
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        for holder in pool._holders:
            holder._max_queries = 2
        async with pool.acquire() as connection:
            before = await connection.fetchval("SELECT pg_backend_pid()")
            await connection.fetchval("SELECT 1")
        assert asyncpg_release_refused == ["asyncpg"]
        assert await pool.fetchval("SELECT pg_backend_pid()") != before
    finally:
        await pool.close()


async def test_a_waiting_acquire_gets_the_released_connection(small_pool: BoundedPool) -> None:
    held = await small_pool.acquire()
    waiting = asyncio.create_task(small_pool.fetchval("SELECT 7"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await small_pool.release(held)
    assert await asyncio.wait_for(waiting, 5) == 7


async def test_a_released_connection_goes_to_the_longest_waiting_acquirer(
    small_pool: BoundedPool,
) -> None:
    """Not to a request that came later but ran first (asyncpg's queue let it take the
    connection, and the waiter went back to the end of the line: a long tail)."""
    held = await small_pool.acquire()
    order: list[str] = []

    async def take(name: str) -> None:
        async with small_pool.acquire() as connection:
            order.append(name)
            await connection.fetchval("SELECT 1")

    first = asyncio.create_task(take("waiting"))
    await asyncio.sleep(0.05)
    newcomer = asyncio.create_task(take("newcomer"))  # scheduled before the release
    await small_pool.release(held)
    await asyncio.wait_for(asyncio.gather(first, newcomer), 5)
    assert order == ["waiting", "newcomer"]


async def test_an_acquirer_that_gives_up_passes_the_connection_on(
    small_pool: BoundedPool,
) -> None:
    held = await small_pool.acquire()
    quitter = asyncio.create_task(small_pool.fetchval("SELECT 1"))
    patient = asyncio.create_task(small_pool.fetchval("SELECT 2"))
    await asyncio.sleep(0.05)
    await small_pool.release(held)  # handed to the quitter, who is cancelled before it runs
    quitter.cancel()
    assert await asyncio.wait_for(patient, 5) == 2
    assert quitter.cancelled()
    assert await small_pool.fetchval("SELECT 3") == 3
    assert small_pool.get_idle_size() == 1


async def test_each_waiter_gives_up_after_the_acquire_timeout_of_its_own(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One timer serves the whole line: each waiter fails when its own time is up."""
    monkeypatch.setattr(pool_module, "ACQUIRE_TIMEOUT", 0.3)
    pool = await create_pool(database_url, min_size=1, max_size=1)
    loop = asyncio.get_running_loop()
    try:
        held = await pool.acquire()

        async def wait_in_line() -> float:
            started = loop.time()
            with pytest.raises(TimeoutError):
                await pool.fetchval("SELECT 1")
            return loop.time() - started

        first = asyncio.create_task(wait_in_line())
        await asyncio.sleep(0.2)
        second = asyncio.create_task(wait_in_line())
        waited = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert all(0.28 < seconds < 0.6 for seconds in waited), waited
        # A waiter served in time is not failed when its deadline passes later.
        served = asyncio.create_task(pool.fetchval("SELECT 2"))
        await asyncio.sleep(0.1)
        await pool.release(held)
        assert await served == 2
        await asyncio.sleep(0.4)
        assert await pool.fetchval("SELECT 3") == 3
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def _backend_pids(pool: BoundedPool) -> set[int]:
    return {
        holder._con.get_server_pid()
        for holder in pool._holders
        if holder._con is not None and not holder._con.is_closed()
    }


async def test_idle_connections_beyond_the_minimum_are_closed_by_the_sweep(
    database_url: str,
) -> None:
    """Connections opened for a burst go once they served nothing for a whole sweep
    period; the minimum stays, and so does one that keeps serving."""
    pool = await create_pool(database_url, min_size=1, max_size=4, idle_lifetime=0.3)
    try:
        held = [await pool.acquire() for _ in range(4)]
        for connection in held:
            await pool.release(connection)
        assert pool.get_size() == 4
        # One keeps serving through the sweeps: it is never idle a whole period.
        serving: set[int] = set()
        for _ in range(10):
            async with pool.acquire() as connection:
                serving.add(connection.get_server_pid())
                await connection.fetchval("SELECT 1")
            await asyncio.sleep(0.1)
        assert len(serving) == 1
        assert serving <= await _backend_pids(pool)
        await asyncio.sleep(0.7)  # two more sweeps with nothing served
        assert pool.get_size() == 1
        assert await pool.fetchval("SELECT 1") == 1  # and it still serves
    finally:
        await pool.close()
    assert pool._sweeper is None


async def test_a_connection_in_use_is_never_swept(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=0, max_size=2, idle_lifetime=0.1)
    try:
        async with pool.acquire() as connection:
            await asyncio.sleep(0.35)  # three sweeps while it is held
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_no_idle_timer_is_armed_per_release(database_url: str) -> None:
    """The sweep replaces asyncpg's per-release timer: a release arms none."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire():
            pass
        assert all(holder._inactive_callback is None for holder in pool._holders)
    finally:
        await pool.close()
