"""Look-ups by contact and the keyset-paginated listing (beyond the contract):
GET /api/v1/users?email= | ?phone= | ?status=&limit=&cursor=."""

import asyncio
import random
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    USER_FIELDS,
    call,
    create_user,
    delete_temporarily,
    expect_detail,
    expect_result,
    fetch_user,
    user_body,
)


async def find(api: TestClient, **query: Any) -> dict[str, Any]:
    return await expect_result(await api.get(f"{API}/users", params=query))


async def test_a_look_up_by_email_ignores_case_and_answers_the_whole_user(api):
    user_id = await create_user(api, email="Anna.Look@Example.org")
    page = await find(api, email="anna.LOOK@example.ORG")
    assert page == {"users": [await fetch_user(api, user_id)], "next_cursor": None}
    assert set(page["users"][0]) == USER_FIELDS


async def test_a_look_up_by_phone_finds_the_user_also_while_temporarily_deleted(api):
    body = user_body()
    user_id = await create_user(api, **body)
    await delete_temporarily(api, user_id)
    (found,) = (await find(api, phone=str(body["phone"])))["users"]
    assert (found["user_id"], found["status"]) == (user_id, "deleted")


async def test_a_look_up_of_an_unknown_contact_is_an_empty_list(api):
    await create_user(api)
    assert await find(api, email="nobody@example.org") == {"users": [], "next_cursor": None}
    assert await find(api, phone="79169999998") == {"users": [], "next_cursor": None}


async def test_bad_query_values_are_422_detail_at_their_query_key(api):
    cases = {
        "phone=%2B7916": ["query", "phone"],
        "phone=12.5": ["query", "phone"],
        "limit=0": ["query", "limit"],
        "limit=101": ["query", "limit"],
        "limit=ten": ["query", "limit"],
        "status=gone": ["query", "status"],
        "cursor=not-ours": ["query", "cursor"],
        "email=a%40example.org&phone=79161234567": ["query"],
        "email=a%40example.org&limit=5": ["query"],
    }
    for query, loc in cases.items():
        (issue,) = await expect_detail(await api.get(f"{API}/users?{query}"))
        assert issue["loc"] == loc, query


async def test_the_listing_pages_oldest_first_and_the_last_page_has_no_cursor(api):
    made = [await create_user(api) for _ in range(5)]
    first = await find(api, limit="2")
    assert [u["user_id"] for u in first["users"]] == made[:2]
    second = await find(api, limit="2", cursor=first["next_cursor"])
    assert [u["user_id"] for u in second["users"]] == made[2:4]
    last = await find(api, limit="2", cursor=second["next_cursor"])
    assert ([u["user_id"] for u in last["users"]], last["next_cursor"]) == (made[4:], None)
    assert len((await find(api))["users"]) == 5  # the default limit, 20, holds them all


async def test_the_listing_by_status_shows_only_users_of_that_status(api):
    active, deleted = await create_user(api), await create_user(api)
    await delete_temporarily(api, deleted)
    assert [u["user_id"] for u in (await find(api, status="active"))["users"]] == [active]
    assert [u["user_id"] for u in (await find(api, status="deleted"))["users"]] == [deleted]


async def test_a_walk_over_1000_users_sees_each_one_present_throughout_exactly_once(api):
    """Users are added and deleted for good while the walk goes on: those present from
    start to end appear exactly once, and no user appears twice."""
    gate = asyncio.Semaphore(32)

    async def made() -> str:
        async with gate:
            return await create_user(api)

    present = await asyncio.gather(*(made() for _ in range(1000)))
    walking = True

    async def churn() -> int:
        changes = 0
        while walking:
            newcomer = await create_user(api)
            await asyncio.sleep(0)
            if random.random() < 0.5:
                response = await call(api, "delete_permanently", {"user_id": newcomer})
                await expect_result(response)
            changes += 1
        return changes

    churners = [asyncio.create_task(churn()) for _ in range(3)]
    seen: list[str] = []
    positions: list[tuple[datetime, str]] = []
    cursor = None
    while True:
        query = {"limit": "37"} | ({} if cursor is None else {"cursor": cursor})
        page = await find(api, **query)
        seen += [u["user_id"] for u in page["users"]]
        positions += [
            (datetime.fromisoformat(u["created_at"]), u["user_id"]) for u in page["users"]
        ]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    walking = False
    changes = sum(await asyncio.gather(*churners))

    assert changes > 0  # the walk did run alongside additions and deletions
    assert len(seen) == len(set(seen)), "a user appeared twice"
    assert set(present) <= set(seen), "a user present throughout was skipped"
    assert positions == sorted(positions)


async def test_a_look_up_of_a_contact_no_user_can_have_finds_no_one(api):
    await create_user(api)
    for query in (
        {"phone": "9" * 30},
        {"email": "a\x00b@example.org"},
        {"email": "x" * 300 + "@example.org"},
    ):
        assert await find(api, **query) == {"users": [], "next_cursor": None}
    response = await api.get(f"{API}/users?email=%ED%A0%80%40example.org")  # a lone surrogate
    assert response.status in (200, 422)
