"""Idempotent retries (beyond the contract): a command sent again with the same
Idempotency-Key and the same request gets the first response again, changes nothing
more and sends no second event; the key is per endpoint and lives 24 hours."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from prometheus_client import REGISTRY

from tests.api.support import (
    API,
    COMMANDS,
    MISSING_USER,
    create_user,
    delete_temporarily,
    expect_detail_at,
    expect_error,
    expect_result,
    fetch_user,
    link,
    outbox,
    user_body,
)
from tests.api.test_concurrency import wait_for_lock_waits
from usersvc.db import idempotency
from usersvc.db.idempotency import delete_expired_keys
from usersvc.db.queries import Queries
from usersvc.db.users import Users


async def send(
    api: TestClient, command: str, body: Any, key: str | None = None, **headers: str
) -> ClientResponse:
    method, path = COMMANDS[command]
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return await api.request(method, API + path, json=body, headers=sent)


async def answer(response: ClientResponse) -> tuple[int, bytes, str | None]:
    """What a replay repeats: status, body byte for byte, ETag."""
    return response.status, await response.read(), response.headers.get("ETag")


async def keys(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM idempotency_keys ORDER BY endpoint, key")
    return [dict(row) for row in rows]


type Setup = Callable[[TestClient], Awaitable[Any]]


async def _user(api: TestClient) -> str:
    return await create_user(api)


async def _deleted_user(api: TestClient) -> str:
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    return user_id


async def _linked(api: TestClient) -> tuple[str, str]:
    user_id = await create_user(api)
    return user_id, await link(api, user_id)


# Each command: what it needs in place, and its body on that.
EVERY_COMMAND: dict[str, tuple[Setup, Callable[[Any], dict[str, Any]]]] = {
    "create_user": (lambda api: asyncio.sleep(0), lambda _: user_body()),
    "recovery_user": (_deleted_user, lambda user_id: {"user_id": user_id}),
    "delete_permanently": (_user, lambda user_id: {"user_id": user_id}),
    "delete_temporarily": (_user, lambda user_id: {"user_id": user_id}),
    "change_fullname": (
        _user,
        lambda user_id: {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None},
    ),
    "change_contacts": (
        _user,
        lambda user_id: {"user_id": user_id, "email": "new@example.com", "phone": None},
    ),
    "link": (
        _user,
        lambda user_id: {
            "user_id": user_id,
            "social_network": "vk",
            "connection_link": "https://vk.com/idempotent",
            "connected_for": None,
        },
    ),
    "unlink": (_linked, lambda ids: {"user_id": ids[0], "linked_account_id": ids[1]}),
    "change_reason": (
        _linked,
        lambda ids: {"user_id": ids[0], "linked_account_id": ids[1], "reason": "login"},
    ),
}


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
async def test_a_repeat_with_the_same_key_and_body_gets_the_first_answer_and_one_event(
    api: TestClient, pool: asyncpg.Pool, tables, command: str
):
    setup, body_of = EVERY_COMMAND[command]
    body = body_of(await setup(api))
    events = len(await outbox(pool))
    first = await send(api, command, body, "key-1")
    assert first.status in (200, 201), await first.text()
    assert "Idempotent-Replayed" not in first.headers
    after = await tables()
    again = await send(api, command, body, "key-1")
    assert await answer(again) == await answer(first)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await tables() == after
    assert len(await outbox(pool)) == events + 1
    (stored,) = await keys(pool)
    assert stored["status"] == first.status


async def test_create_user_replayed_answers_the_same_new_id_whatever_the_keys_order(
    api: TestClient, pool: asyncpg.Pool
):
    body = user_body()
    replays = REGISTRY.get_sample_value("usersvc_idempotent_replays_total") or 0
    first = await send(api, "create_user", body, "create-1")
    user_id = await expect_result(first, 201)
    # The same JSON with its keys in another order and other spacing is the same request.
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
    again = await api.post(
        API + "/users/create_user",
        data=reordered,
        headers={"Idempotency-Key": "create-1", "Content-Type": "application/json"},
    )
    assert await expect_result(again, 201) == user_id
    assert again.headers["Idempotent-Replayed"] == "true"
    assert REGISTRY.get_sample_value("usersvc_idempotent_replays_total") == replays + 1
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated"]
    assert await pool.fetchval("SELECT count(*) FROM users") == 1


async def test_a_command_on_a_user_replayed_keeps_its_etag_and_the_version_moves_once(
    api: TestClient, pool: asyncpg.Pool
):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    first = await send(api, "change_fullname", rename, "rename", **{"If-Match": '"1"'})
    await expect_result(first)
    assert first.headers["ETag"] == '"2"'
    again = await send(api, "change_fullname", rename, "rename", **{"If-Match": '"1"'})
    # Not a 412 for the stale If-Match: the first answer, as it was.
    assert await answer(again) == (200, await first.read(), '"2"')
    assert (await fetch_user(api, user_id))["version"] == 2
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated", "FullnameChanged"]


async def test_a_domain_failure_is_stored_and_replayed_even_once_the_state_changed(
    api: TestClient, pool: asyncpg.Pool
):
    missing = await send(api, "delete_temporarily", {"user_id": MISSING_USER}, "gone")
    await expect_error(missing, 404, "user_not_found")
    replayed = await send(api, "delete_temporarily", {"user_id": MISSING_USER}, "gone")
    assert await answer(replayed) == await answer(missing)
    assert replayed.headers["Idempotent-Replayed"] == "true"

    user_id = await create_user(api)
    active = await send(api, "recovery_user", {"user_id": user_id}, "recover")
    await expect_error(active, 400, "user_already_active")
    await delete_temporarily(api, user_id)
    # The retry of that request is answered as the request was, not run on today's user.
    again = await send(api, "recovery_user", {"user_id": user_id}, "recover")
    assert await answer(again) == await answer(active)
    assert (await fetch_user(api, user_id))["status"] == "deleted"
    assert [row["event_name"] for row in await outbox(pool)] == [
        "UserCreated",
        "UserTemporarilyDeleted",
    ]


async def test_a_unique_conflict_is_stored_and_replayed(api: TestClient, pool: asyncpg.Pool):
    body = user_body()
    await create_user(api, **body)
    taken = await send(api, "create_user", body, "taken")
    await expect_error(taken, 409, "user_already_exists")
    again = await send(api, "create_user", body, "taken")
    assert await answer(again) == await answer(taken)
    assert len(await outbox(pool)) == 1


async def test_the_same_key_with_another_request_is_422_and_changes_nothing(
    api: TestClient, pool: asyncpg.Pool, tables
):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    await expect_result(await send(api, "change_fullname", rename, "k"))
    before = await tables()
    stored = await keys(pool)
    other = {**rename, "firstname": "Other"}
    await expect_error(
        await send(api, "change_fullname", other, "k"), 422, "idempotency_key_reused"
    )
    # If-Match is part of the request too.
    await expect_error(
        await send(api, "change_fullname", rename, "k", **{"If-Match": '"2"'}),
        422,
        "idempotency_key_reused",
    )
    assert await tables() == before
    assert await keys(pool) == stored
    # Still the first request's key: its repeat is still answered.
    assert (await send(api, "change_fullname", rename, "k")).headers["Idempotent-Replayed"]


async def test_a_key_is_per_endpoint(api: TestClient, pool: asyncpg.Pool):
    user_id = await expect_result(await send(api, "create_user", user_body(), "shared"), 201)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    renamed = await send(api, "change_fullname", rename, "shared")
    await expect_result(renamed)
    assert "Idempotent-Replayed" not in renamed.headers
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated", "FullnameChanged"]
    assert {row["endpoint"] for row in await keys(pool)} == {"create_user", "change_fullname"}


async def test_concurrent_repeats_wait_for_the_first_or_get_409_and_it_runs_once(
    api: TestClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
):
    """20 requests with one key. The first claims it and then waits for the user's row,
    which this test holds; ten repeats wait for the key longer than the bound (409), nine
    more are waiting when the row is let go (each gets the first's answer)."""
    monkeypatch.setattr(idempotency, "CLAIM_WAIT", "1s")
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}

    def repeat() -> asyncio.Task[ClientResponse]:
        return asyncio.create_task(send(api, "change_fullname", rename, "once"))

    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", user_id)
        first = repeat()
        await wait_for_lock_waits(pool, 1)
        late = await asyncio.gather(*(repeat() for _ in range(10)))
        waiting = [repeat() for _ in range(9)]
        await wait_for_lock_waits(pool, 10)
    answered = await first
    await expect_result(answered)
    assert "Idempotent-Replayed" not in answered.headers
    for response in late:
        await expect_error(response, 409, "request_in_progress")
    for response in await asyncio.gather(*waiting):
        assert await answer(response) == await answer(answered)
        assert response.headers["Idempotent-Replayed"] == "true"
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated", "FullnameChanged"]
    assert (await fetch_user(api, user_id))["version"] == 2


async def test_twenty_at_once_with_one_key_create_one_user(api: TestClient, pool: asyncpg.Pool):
    body = user_body()
    responses = await asyncio.gather(*(send(api, "create_user", body, "twenty") for _ in range(20)))
    (first,) = [r for r in responses if "Idempotent-Replayed" not in r.headers and r.status == 201]
    for response in responses:
        if response.status == 409:
            await expect_error(response, 409, "request_in_progress")
        else:
            assert await answer(response) == await answer(first)
    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated"]


async def test_a_first_attempt_that_failed_leaves_the_key_free_for_its_retry(
    api: TestClient, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    write = Users._write
    failures = iter([ConnectionResetError("the database went away")])

    async def write_once_failing(self, *args):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await write(self, *args)

    monkeypatch.setattr(Users, "_write", write_once_failing)
    await expect_error(
        await send(api, "change_fullname", rename, "retry"), 503, "service_unavailable"
    )
    assert await keys(pool) == []  # rolled back with the change
    retried = await send(api, "change_fullname", rename, "retry")
    await expect_result(retried)
    assert "Idempotent-Replayed" not in retried.headers
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated", "FullnameChanged"]


async def test_an_expired_key_runs_anew_and_the_clean_up_forgets_it(
    api: TestClient, pool: asyncpg.Pool, queries: Queries
):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    await expect_result(await send(api, "change_fullname", rename, "old"))
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    again = await send(api, "change_fullname", rename, "old")
    await expect_result(again)
    assert "Idempotent-Replayed" not in again.headers
    assert again.headers["ETag"] == '"3"'  # ran again: a second change
    assert len(await outbox(pool)) == 3
    # Expired, a key takes any request.
    await pool.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    other = {**rename, "firstname": "Other"}
    await expect_result(await send(api, "change_fullname", other, "old"))

    await expect_result(await send(api, "change_fullname", rename, "expired"))
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'expired'"
    )
    await expect_result(await send(api, "change_fullname", rename, "live"))
    assert await delete_expired_keys(pool, queries) == 1
    assert [row["key"] for row in await keys(pool)] == ["live", "old"]
    assert await delete_expired_keys(pool, queries) == 0


# (A key with a control character is refused by aiohttp's client: sent raw below.)
MALFORMED = ["", " ", "a" * 256, "with space", "ключ", "caf\u00e9"]


async def test_a_malformed_key_is_422_at_the_header_and_changes_nothing(
    api: TestClient, pool: asyncpg.Pool, tables
):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    before = await tables()
    for key in MALFORMED:
        response = await send(api, "change_fullname", rename, key)
        await expect_detail_at(response, ["header", "Idempotency-Key"], "value_error")
        response = await send(api, "create_user", user_body(), key)
        await expect_detail_at(response, ["header", "Idempotency-Key"], "value_error")
    twice = CIMultiDict([("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
    method, path = COMMANDS["change_fullname"]
    response = await api.request(method, API + path, json=rename, headers=twice)
    await expect_detail_at(response, ["header", "Idempotency-Key"])
    assert await tables() == before
    assert await keys(pool) == []
    # Every problem at once: the header's and the body's.
    response = await send(api, "change_fullname", {"user_id": user_id}, "")
    detail = (await response.json())["detail"]
    assert ["header", "Idempotency-Key"] in [entry["loc"] for entry in detail]
    assert ["body", "firstname"] in [entry["loc"] for entry in detail]
    # The longest and the widest keys there are are taken.
    for key in ["a" * 255, "".join(map(chr, range(0x21, 0x7F)))]:
        await expect_result(await send(api, "change_fullname", rename, key))


async def test_a_body_that_fails_validation_stores_nothing(api: TestClient, pool: asyncpg.Pool):
    response = await send(api, "create_user", {"email": 1}, "invalid-body")
    assert response.status == 422
    assert await keys(pool) == []
    created = await send(api, "create_user", user_body(), "invalid-body")
    await expect_result(created, 201)  # the key was not taken by the refused request


@pytest.mark.parametrize("key", [b"tab\there", b"end\x7f", b"\xff\xfe"])
async def test_a_key_with_a_control_or_non_ascii_byte_is_422(
    api: TestClient, pool: asyncpg.Pool, key: bytes
):
    body = json.dumps(user_body()).encode()
    reader, writer = await asyncio.open_connection(api.host, api.port)
    writer.write(
        b"POST " + API.encode() + b"/users/create_user HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Idempotency-Key: " + key + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if key == b"end\x7f":  # DEL in a header: aiohttp's HTTP parser refuses the request
        assert head.startswith(b"HTTP/1.0 400"), raw
    else:
        assert head.startswith(b"HTTP/1.1 422"), raw
        (entry,) = json.loads(payload)["detail"]
        assert entry["loc"] == ["header", "Idempotency-Key"]
    assert await pool.fetchval("SELECT count(*) FROM users") == 0
    assert await keys(pool) == []
