"""Uniqueness holds under races: one request wins, the others are the contract's 409."""

import asyncio
from collections import Counter
from typing import Any
from uuid import uuid4

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.api.support import (
    assert_envelope,
    call,
    create_user,
    expect_result,
    fetch_user,
    outbox,
    user_body,
)
from tests.contract import EVENT_DATA_KEYS


async def answers(responses: list[ClientResponse]) -> list[tuple[int, Any]]:
    found = []
    for response in responses:
        body = await response.json()
        assert_envelope(response.status, body)
        found.append((response.status, body))
    return found


def codes(found: list[tuple[int, Any]]) -> Counter:
    return Counter(
        (status, body["error"]["data"]["code"] if "error" in body else None)
        for status, body in found
    )


async def race(api: TestClient, command: str, bodies: list[dict]) -> Counter:
    responses = await asyncio.gather(*(call(api, command, body) for body in bodies))
    return codes(await answers(list(responses)))


async def test_20_concurrent_creates_with_one_email_give_one_201_and_nineteen_409(
    api: TestClient, pool
):
    bodies = [user_body(email="same@example.com") for _ in range(20)]
    assert await race(api, "create_user", bodies) == {
        (201, None): 1,
        (409, "user_already_exists"): 19,
    }
    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    assert len(await outbox(pool)) == 1


async def test_20_concurrent_creates_with_one_email_in_different_cases_give_one_201(
    api: TestClient, pool
):
    emails = ["Same@example.com", "SAME@EXAMPLE.COM", "same@Example.com", "sAmE@example.com"]
    bodies = [user_body(email=emails[i % len(emails)]) for i in range(20)]
    assert await race(api, "create_user", bodies) == {
        (201, None): 1,
        (409, "user_already_exists"): 19,
    }
    assert await pool.fetchval("SELECT count(*) FROM users") == 1


async def test_20_concurrent_creates_with_one_phone_give_one_201_and_nineteen_409(
    api: TestClient, pool
):
    bodies = [user_body(phone=79161234567) for _ in range(20)]
    assert await race(api, "create_user", bodies) == {
        (201, None): 1,
        (409, "user_already_exists"): 19,
    }
    assert await pool.fetchval("SELECT count(*) FROM users") == 1
    assert len(await outbox(pool)) == 1


def linking(user_id: str, network: str, connection_link: str) -> dict:
    return {
        "user_id": user_id,
        "social_network": network,
        "connection_link": connection_link,
        "connected_for": None,
    }


async def test_two_concurrent_links_of_one_network_for_one_user_give_one_201_and_one_409(
    api: TestClient,
):
    user_id = await create_user(api)
    bodies = [linking(user_id, "vk", f"vk.com/user{i}") for i in range(2)]
    assert await race(api, "link", bodies) == {
        (201, None): 1,
        (409, "linked_account_already_exists"): 1,
    }
    assert len((await fetch_user(api, user_id))["linked_accounts"]) == 1


async def test_ten_concurrent_links_of_one_network_for_one_user_give_one_201(api: TestClient, pool):
    user_id = await create_user(api)
    bodies = [linking(user_id, "telegram", f"t.me/user{i}") for i in range(10)]
    assert await race(api, "link", bodies) == {
        (201, None): 1,
        (409, "linked_account_already_exists"): 9,
    }
    assert len((await fetch_user(api, user_id))["linked_accounts"]) == 1
    events = [r for r in await outbox(pool) if r["event_name"] == "LinkedAccountCreated"]
    assert len(events) == 1


async def test_concurrent_links_of_one_link_by_different_users_give_one_201(api: TestClient, pool):
    users = [await create_user(api) for _ in range(10)]
    forms = ["https://vk.com/durov", "vk.com/durov", "http://www.vk.com/durov/", "VK.com/durov"]
    bodies = [linking(u, "vk", forms[i % len(forms)]) for i, u in enumerate(users)]
    assert await race(api, "link", bodies) == {
        (201, None): 1,
        (409, "linked_account_already_exists"): 9,
    }
    assert await pool.fetchval("SELECT count(*) FROM linked_accounts") == 1


async def test_concurrent_commands_on_one_user_each_emit_their_one_event(api: TestClient, pool):
    user_id = await create_user(api)
    networks = ["vk", "telegram", "discord", "tiktok", "instagram", "twitter"]
    hosts = ["vk.com", "t.me", "discord.gg", "tiktok.com", "instagram.com", "x.com"]
    bodies = [linking(user_id, n, f"{h}/me") for n, h in zip(networks, hosts, strict=True)]
    assert await race(api, "link", bodies) == {(201, None): 6}
    accounts = (await fetch_user(api, user_id))["linked_accounts"]
    assert len(accounts) == 6
    assert [a["connected_at"] for a in accounts] == sorted(a["connected_at"] for a in accounts)
    rows = await outbox(pool)
    assert [r["event_name"] for r in rows].count("LinkedAccountCreated") == 6
    for row in rows:
        assert set(row["data"]) == EVENT_DATA_KEYS[row["event_name"]]


async def test_concurrent_contact_swaps_between_two_users_are_409_never_5xx(api: TestClient):
    """Each of two users asks for the other's contacts at once. Taken in either order, both
    contacts are held by the other user, so both answers are 409 (and, each checking before
    it writes, the two never wait for each other's index entries, where PostgreSQL would
    see a deadlock). A round is a race, so many pairs are tried (the first 5xx stops the
    loop)."""
    pairs = 300
    bodies = [user_body() for _ in range(2 * pairs)]

    async def create(body: dict) -> str:
        return await expect_result(await call(api, "create_user", body), 201)

    ids = await asyncio.gather(*(create(body) for body in bodies))
    seen: Counter = Counter()
    for i in range(0, 2 * pairs, 2):
        a, b = bodies[i], bodies[i + 1]
        swap = [
            {"user_id": ids[i], "email": b["email"], "phone": b["phone"]},
            {"user_id": ids[i + 1], "email": a["email"], "phone": a["phone"]},
        ]
        round_ = await race(api, "change_contacts", swap)
        seen.update(round_)
        if any(status >= 500 for status, _ in round_):
            break
    assert set(seen) == {(409, "user_already_exists")}, seen


async def wait_for_lock_waits(pool, count: int) -> None:
    """Until ``count`` sessions on this database wait for a lock (the app's requests)."""
    for _ in range(500):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never waited for a lock")


@pytest.mark.parametrize("outside", ["commit", "rollback"])
async def test_a_change_of_contacts_racing_a_writer_outside_the_service_is_409_or_200_never_5xx(
    api: TestClient, pool, outside: str
):
    """The service's own commands lock the contacts they give, so they never meet each
    other's rows as errors; a writer outside the service takes no such lock. Its
    uncommitted row holds the email user A asks for: A's check cannot see it, A's write
    waits for it. B then asks for the phone A is taking, and waits for A's lock on it.
    The writer commits: A's write meets the unique index (the final word: a 409), and B
    gets the phone A never took. It rolls back: A has it all, and B's is a 409."""
    a = await create_user(api, email="a@example.com", phone=79161111111)
    b = await create_user(api, email="b@example.com", phone=79162222222)
    async with pool.acquire() as writer:
        third = writer.transaction()
        await third.start()
        await writer.execute(
            "INSERT INTO users (user_id, firstname, lastname, email, status, created_at)"
            " VALUES ($1, 'C', 'C', 'free-a@example.com', 'active', now())",
            uuid4(),
        )
        to_a = {"user_id": a, "email": "free-a@example.com", "phone": 79163333333}
        first = asyncio.create_task(call(api, "change_contacts", to_a))
        await wait_for_lock_waits(pool, 1)
        to_b = {"user_id": b, "email": "free-b@example.com", "phone": 79163333333}
        second = asyncio.create_task(call(api, "change_contacts", to_b))
        await wait_for_lock_waits(pool, 2)
        await (third.commit() if outside == "commit" else third.rollback())
    found = await answers([await first, await second])
    conflict = (409, "user_already_exists")
    expected = [conflict, (200, None)] if outside == "commit" else [(200, None), conflict]
    assert [next(iter(codes([answer]))) for answer in found] == expected, found
    phones = {"commit": (79161111111, 79163333333), "rollback": (79163333333, 79162222222)}
    assert (await fetch_user(api, a))["phone"] == phones[outside][0]
    assert (await fetch_user(api, b))["phone"] == phones[outside][1]
    assert [r["event_name"] for r in await outbox(pool)].count("ContactsChanged") == 1


async def test_concurrent_temporary_deletions_of_one_user_give_one_200(api: TestClient, pool):
    user_id = await create_user(api)
    bodies = [{"user_id": user_id}] * 10
    assert await race(api, "delete_temporarily", bodies) == {
        (200, None): 1,
        (400, "user_already_deleted"): 9,
    }
    names = [r["event_name"] for r in await outbox(pool)]
    assert names == ["UserCreated", "UserTemporarilyDeleted"]


async def test_concurrent_permanent_deletions_of_one_user_give_one_200(api: TestClient, pool):
    user_id = await create_user(api)
    bodies = [{"user_id": user_id}] * 10
    assert await race(api, "delete_permanently", bodies) == {
        (200, None): 1,
        (404, "user_not_found"): 9,
    }
    names = [r["event_name"] for r in await outbox(pool)]
    assert names == ["UserCreated", "UserPermanentlyDeleted"]
