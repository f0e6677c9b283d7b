"""A database connection that breaks at any point of a request (acquire, a statement,
commit, rollback, release) gives a 503 envelope with Retry-After, never a 500 or a
hang, and never a half-applied change; the pool then recovers by itself.

A proxy between the service and PostgreSQL breaks the connection exactly when a
given message passes.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    call,
    create_user,
    expect_error,
    expect_result,
    get_user,
    user_body,
)
from tests.reliability.proxy import TERMINATED, Proxy
from usersvc.http.app import create_app


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[Proxy]:
    target = urlsplit(database_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    yield proxy
    await proxy.close()


@pytest.fixture
async def proxied(aiohttp_client, database_url: str, proxy: Proxy) -> TestClient:
    """The service, talking to its database through the proxy; a fresh pool, so each
    connection's first use of a query sends its SQL text."""
    port = await proxy.start()
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    return await aiohttp_client(create_app(url, pool_min_size=1))


async def expect_unavailable(response: ClientResponse) -> None:
    await expect_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) >= 1


type Request = Callable[[TestClient, dict[str, Any]], Awaitable[ClientResponse]]


def command(name: str, body: Callable[[dict[str, Any]], dict[str, Any]]) -> Request:
    async def send(api: TestClient, known: dict[str, Any]) -> ClientResponse:
        return await call(api, name, body(known))

    return send


async def _get(api: TestClient, known: dict[str, Any]) -> ClientResponse:
    return await get_user(api, known["user_id"])


async def _health(api: TestClient, known: dict[str, Any]) -> ClientResponse:
    return await api.post(API + "/healthcheck")


_create = command("create_user", lambda known: known["new_user"])
# another user takes a taken email: a unique violation inside a transaction
_conflict = command(
    "change_contacts",
    lambda known: {"user_id": known["other_id"], "email": known["email"], "phone": None},
)
_delete = command("delete_temporarily", lambda known: {"user_id": known["user_id"]})

# A DataRow of one column of one byte, true: create_user's answer when it inserted.
CREATED_ROW = b"D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01\x01"
# A DataRow of two one-byte columns: change_contacts' (email taken, phone taken).
TAKEN_ROW = b"D\x00\x00\x00\x10\x00\x02\x00\x00\x00\x01"

# where the connection breaks: (name, request, direction, the bytes that trigger it,
# whether those bytes still pass)
BREAKS: list[tuple[str, Request, str, bytes, bool]] = [
    ("statement: locking the user", _delete, "to_server", b"FOR UPDATE OF u", False),
    ("statement: writing the change", _delete, "to_server", b"UPDATE users SET status", False),
    ("statement: a create (autocommit)", _create, "to_server", b"INSERT INTO outbox", False),
    # create_user answers one row (true: inserted), in a portal that stays suspended
    ("statement: a create's answer lost", _create, "to_client", CREATED_ROW, False),
    ("statement: a read", _get, "to_server", b"FROM user_with_linked_accounts u", False),
    ("statement: the health check", _health, "to_server", b"SELECT 1", False),
    ("idle in transaction: after locking", _delete, "to_client", b"SELECT 1\x00", True),
    ("idle in transaction: after the change", _delete, "to_client", b"INSERT 0 1\x00", True),
    ("begin", _delete, "to_server", b"BEGIN", False),
    ("commit: never arrives", _delete, "to_server", b"COMMIT", False),
    ("commit: done, its answer lost", _delete, "to_client", b"COMMIT\x00", False),
    # a taken contact is found by change_contacts' own statement (no server error), whose
    # row says which; the transaction then commits, having written nothing
    ("a conflict: the check's answer lost", _conflict, "to_client", TAKEN_ROW, False),
    ("a conflict: its commit never arrives", _conflict, "to_server", b"COMMIT", False),
]


@pytest.fixture
async def known(api: TestClient) -> dict[str, Any]:
    """Rows made beside the proxy, so the proxied pool has prepared nothing yet."""
    body = user_body()
    user_id = await create_user(api, **body)
    other_id = await create_user(api)
    return {
        "user_id": user_id,
        "other_id": other_id,
        "email": body["email"],
        "new_user": user_body(),
    }


async def _consistent(api: TestClient, tables) -> dict[str, Any]:
    """Every user has exactly the events of what happened to it: a user row exists
    iff its user_created event does, a deleted one iff its deletion event does."""
    snap = await tables()
    created = {e["user_id"] for e in snap["outbox"] if e["event_name"] == "UserCreated"}
    deleted = {e["user_id"] for e in snap["outbox"] if e["event_name"] == "UserTemporarilyDeleted"}
    users = {u["user_id"]: u for u in snap["users"]}
    assert set(users) == created, snap
    assert {uid for uid, u in users.items() if u["status"] == "deleted"} == deleted, snap
    return snap


@pytest.mark.parametrize("how", ["closed", "terminated"])
@pytest.mark.parametrize(
    ("request_", "direction", "pattern", "forward"),
    [case[1:] for case in BREAKS],
    ids=[case[0] for case in BREAKS],
)
async def test_a_connection_broken_mid_request_is_a_503_and_nothing_half_done(
    api: TestClient,
    proxied: TestClient,
    proxy: Proxy,
    known: dict[str, Any],
    tables,
    request_: Request,
    direction: str,
    pattern: bytes,
    forward: bool,
    how: str,
):
    """``closed``: the connection just drops; ``terminated``: the server first says it
    ends the session (pg_terminate_backend, a shutdown) and closes a moment later."""
    before = await _consistent(api, tables)
    last_words = TERMINATED if how == "terminated" else None
    proxy.cut_when(direction, pattern, forward=forward, last_words=last_words)
    response = await asyncio.wait_for(request_(proxied, known), 15)
    assert proxy.cut_done.is_set(), "the connection was not broken where meant"
    await expect_unavailable(response)
    after = await _consistent(api, tables)
    if direction == "to_server":  # never reached the server: nothing happened
        assert after == before
    # else the server did what it answered (a commit, an autocommit statement), and the
    # client, without the answer, was told to retry: consistent either way
    # the pool recovers by itself: the next requests are served
    await expect_result(await proxied.post(API + "/healthcheck"))
    await expect_result(await get_user(proxied, known["user_id"]))
    retried = await request_(proxied, known)
    assert retried.status < 500, await retried.text()


async def test_every_connection_lost_and_the_database_refusing_new_ones_is_503_then_recovers(
    api: TestClient, proxied: TestClient, proxy: Proxy, known: dict[str, Any], tables
):
    """Acquire: the pool's idle connections are gone and no new one can be made."""
    await expect_result(await get_user(proxied, known["user_id"]))
    before = await tables()
    proxy.refuse = True
    proxy.cut_all()
    await asyncio.sleep(0.1)
    for request_ in (_get, _create, _delete):
        await expect_unavailable(await asyncio.wait_for(request_(proxied, known), 15))
    await expect_unavailable(await proxied.post(API + "/healthcheck"))
    assert await tables() == before
    proxy.refuse = False
    await expect_result(await proxied.post(API + "/healthcheck"))
    await expect_result(await _delete(proxied, known))


async def test_a_connection_broken_while_released_after_commit_still_answers_the_truth(
    api: TestClient, proxied: TestClient, proxy: Proxy, known: dict[str, Any], tables
):
    """Release: the commit's answer arrives and the connection breaks right after, as
    the pool takes it back; the client is told it is done (a 503 would make it retry
    what already happened)."""
    proxy.cut_when("to_client", b"COMMIT\x00", forward=True)
    await expect_result(await _delete(proxied, known))
    assert proxy.cut_done.is_set()
    snap = await _consistent(api, tables)
    assert {u["user_id"]: u["status"] for u in snap["users"]}[UUID(known["user_id"])] == "deleted"
    await expect_result(await proxied.post(API + "/healthcheck"))
    user = await expect_result(await get_user(proxied, known["user_id"]))
    assert user["status"] == "deleted"
