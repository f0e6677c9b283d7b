"""GET /livez and /readyz (§6) against the real app and database: what each says, when
/readyz refuses, and that neither waits for a turn. (What they say while a process
stops or its database is down: tests/reliability/test_probes_and_shutdown.py.)"""

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.support import call, create_user, expect_error
from tests.api.test_bounded_waits import user_locked
from usersvc.http.app import create_app
from usersvc.http.shutdown import SHUTDOWN

OK = b'{"status":200,"result":{"status":"OK"}}'
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"
FULLNAME = {"firstname": "Petr", "lastname": "Ivanov", "middlename": None}


async def expect_ok(response) -> None:
    assert response.status == 200, await response.text()
    assert await response.read() == OK
    assert response.content_type == "application/json"


async def test_livez_and_readyz_answer_ok_on_a_migrated_database(api: TestClient):
    await expect_ok(await api.get("/livez"))
    await expect_ok(await api.get("/readyz"))


async def test_readyz_is_503_while_a_migration_is_missing_and_livez_stays_200(
    api: TestClient, database_url: str
):
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "DELETE FROM _yoyo_migration WHERE migration_id = "
            "(SELECT max(migration_id) FROM _yoyo_migration)"
        )
    finally:
        await connection.close()
    response = await api.get("/readyz")
    body = await expect_error(response, 503, "service_unavailable")
    assert "usersvc migrate" in body["error"]["data"]["message"]
    assert response.headers["Retry-After"]
    await expect_ok(await api.get("/livez"))


async def test_readyz_is_503_on_a_database_never_migrated(aiohttp_client, empty_database_url: str):
    api = await aiohttp_client(create_app(empty_database_url))
    await expect_error(await api.get("/readyz"), 503, "service_unavailable")
    await expect_ok(await api.get("/livez"))


async def test_readyz_is_503_when_the_database_cannot_be_reached(aiohttp_client):
    api = await aiohttp_client(
        create_app("postgresql://postgres@127.0.0.1:1/nope", pool_min_size=0)
    )
    await expect_error(await api.get("/readyz"), 503, "service_unavailable")
    await expect_ok(await api.get("/livez"))


async def test_once_shutting_down_readyz_is_503_and_every_answer_closes_its_connection(
    api: TestClient,
):
    api.app[SHUTDOWN].begin()
    response = await api.get("/readyz")
    body = await expect_error(response, 503, "service_unavailable")
    assert body["error"]["data"]["message"] == "The service is shutting down"
    assert response.headers["Connection"] == "close"
    live = await api.get("/livez")
    await expect_ok(live)
    assert live.headers["Connection"] == "close"
    user = await call(api, "create_user", {"phone": "not a number"})
    assert user.headers["Connection"] == "close"


async def test_a_probe_never_waits_for_a_turn(aiohttp_client, database_url: str):
    api = await aiohttp_client(create_app(database_url, max_concurrency=1, queue_wait=0.2))
    user_id = await create_user(api)
    async with user_locked(database_url, user_id):
        held = asyncio.create_task(
            call(api, "change_fullname", {"user_id": user_id, **FULLNAME})
        )  # takes the one turn, then waits for the row
        await asyncio.sleep(0.3)
        await expect_error(await api.get(f"/api/v1/users/{user_id}"), 503, "service_unavailable")
        await expect_ok(await api.get("/livez"))
        await expect_ok(await api.get("/readyz"))
    assert (await held).status == 200


async def test_a_probe_is_a_get_only(api: TestClient):
    for path in ("/livez", "/readyz"):
        response = await api.post(path)
        await expect_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"] == "GET"
