"""Every wait has an end: a spike, a held lock, a slow statement, an exhausted pool
each give a 503 envelope with Retry-After in bounded time, never a hang, and change
nothing."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from tests.api.support import (
    API,
    call,
    create_user,
    expect_error,
    expect_result,
    get_user,
    user_body,
)
from usersvc.db import pool as pool_module
from usersvc.http.app import create_app

FULLNAME = {"firstname": "Petr", "lastname": "Ivanov", "middlename": None}


@asynccontextmanager
async def user_locked(database_url: str, user_id: str) -> AsyncIterator[None]:
    """The user's row locked by another session until the block ends."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
            yield
    finally:
        await connection.close()


async def expect_unavailable(response) -> None:
    await expect_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) >= 1


async def test_beyond_the_concurrency_limit_a_request_waits_then_gets_a_503(
    aiohttp_client, database_url: str, tables
):
    api = await aiohttp_client(create_app(database_url, max_concurrency=2, queue_wait=0.5))
    user_id = await create_user(api)
    loop = asyncio.get_running_loop()
    async with user_locked(database_url, user_id):
        # two commands in flight, both waiting for the row
        held = [
            asyncio.create_task(call(api, "delete_temporarily", {"user_id": user_id})),
            asyncio.create_task(call(api, "change_fullname", {"user_id": user_id, **FULLNAME})),
        ]
        await asyncio.sleep(0.3)
        before = await tables()
        started = loop.time()
        await expect_unavailable(await call(api, "create_user", user_body()))
        assert 0.4 < loop.time() - started < 2
        await expect_unavailable(await get_user(api, user_id))
        # the health check is never held back
        await expect_result(await api.post(API + "/healthcheck"))
        assert await tables() == before
        # one that is still waiting when a slot frees up gets in: latency, not an error
        waiting = asyncio.create_task(get_user(api, user_id))
        await asyncio.sleep(0.1)
    for response in await asyncio.gather(*held):
        assert response.status in {200, 400}, await response.text()  # 400: deleted already
    await expect_result(await waiting)


async def test_a_lock_held_past_the_lock_timeout_is_a_503_and_changes_nothing(
    aiohttp_client, database_url: str, tables, session_setting
):
    await session_setting("lock_timeout", "500ms")
    api = await aiohttp_client(create_app(database_url))
    user_id = await create_user(api)
    before = await tables()
    loop = asyncio.get_running_loop()
    async with user_locked(database_url, user_id):
        started = loop.time()
        await expect_unavailable(await call(api, "delete_temporarily", {"user_id": user_id}))
        assert loop.time() - started < 3
    assert await tables() == before
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))


async def test_a_statement_past_the_statement_timeout_is_a_503_and_changes_nothing(
    aiohttp_client, database_url: str, tables, session_setting
):
    await session_setting("statement_timeout", "500ms")
    api = await aiohttp_client(create_app(database_url))
    # this test's database only: inserting a user takes 5 s
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
            CREATE TRIGGER slow BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION slow();
            """
        )
    finally:
        await connection.close()
    before = await tables()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await expect_unavailable(await call(api, "create_user", user_body()))
    assert loop.time() - started < 3
    assert await tables() == before


async def test_waiting_for_a_pool_connection_is_bounded_then_503(
    aiohttp_client, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pool_module, "ACQUIRE_TIMEOUT", 0.5)
    api = await aiohttp_client(create_app(database_url))
    user_id = await create_user(api)
    loop = asyncio.get_running_loop()
    async with user_locked(database_url, user_id):
        # ten commands hold the pool's ten connections, waiting for the row
        held = [
            asyncio.create_task(call(api, "delete_temporarily", {"user_id": user_id}))
            for _ in range(10)
        ]
        await asyncio.sleep(0.5)
        started = loop.time()
        await expect_unavailable(await get_user(api, user_id))
        assert 0.4 < loop.time() - started < 3
        await expect_unavailable(await api.post(API + "/healthcheck"))
    statuses = sorted([response.status for response in await asyncio.gather(*held)])
    assert statuses == [200] + [400] * 9  # user_already_deleted
    await expect_result(await get_user(api, user_id))
