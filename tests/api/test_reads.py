"""The reads clients ask for (contract §7): many users by id in one request, the user
behind a linked account, and a GET that skips the body when the client's copy is current."""

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    MISSING_USER,
    call,
    create_user,
    expect_detail,
    expect_error,
    expect_result,
    fetch_user,
    get_user,
    link,
)


async def batch(api: TestClient, ids: list[str]) -> list[dict[str, Any]]:
    page = await expect_result(await api.get(f"{API}/users", params=[("id", i) for i in ids]))
    assert page["next_cursor"] is None
    return page["users"]


# --- batch get


async def test_a_batch_answers_the_users_in_the_order_asked(api):
    made = [await create_user(api) for _ in range(5)]
    asked = [made[3], made[0], made[4], made[1]]
    found = await batch(api, asked)
    assert [u["user_id"] for u in found] == asked
    assert found == [await fetch_user(api, user_id) for user_id in asked]


async def test_a_batch_answers_an_id_asked_twice_once_where_first_asked(api):
    a, b = await create_user(api), await create_user(api)
    found = await batch(api, [b, a, b, a, b])
    assert [u["user_id"] for u in found] == [b, a]


async def test_a_batch_leaves_out_ids_no_user_has(api):
    a, b = await create_user(api), await create_user(api)
    gone = await create_user(api)
    await expect_result(await call(api, "delete_permanently", {"user_id": gone}))
    found = await batch(api, [MISSING_USER, a, gone, str(uuid.uuid4()), b])
    assert [u["user_id"] for u in found] == [a, b]
    assert await batch(api, [MISSING_USER]) == []


async def test_a_batch_of_100_ids_is_answered(api):
    made = [await create_user(api) for _ in range(3)]
    asked = made + [str(uuid.uuid4()) for _ in range(97)]
    found = await batch(api, asked)
    assert [u["user_id"] for u in found] == made


async def test_a_batch_of_101_ids_is_422_detail_at_the_id_key(api):
    asked = [("id", str(uuid.uuid4())) for _ in range(101)]
    (issue,) = await expect_detail(await api.get(f"{API}/users", params=asked))
    assert issue["loc"] == ["query", "id"]
    assert issue["type"] == "too_long"


async def test_a_batch_with_a_malformed_id_is_422_detail_at_the_id_key(api):
    user_id = await create_user(api)
    for bad in ("not-a-uuid", "", user_id[:-1], user_id + "0"):
        response = await api.get(f"{API}/users", params=[("id", user_id), ("id", bad)])
        (issue,) = await expect_detail(response)
        assert (issue["loc"], issue["type"]) == (["query", "id"], "uuid_parsing"), bad


# --- look-up by linked account


async def find_by_link(api: TestClient, network: str, connection_link: str) -> list[str]:
    query = {"social_network": network, "connection_link": connection_link}
    page = await expect_result(await api.get(f"{API}/users", params=query))
    assert page["next_cursor"] is None
    return [u["user_id"] for u in page["users"]]


async def test_a_look_up_by_linked_account_finds_exactly_the_user_who_linked_it(api):
    holder, other = await create_user(api), await create_user(api)
    await link(api, holder, "vk", "https://vk.com/id1")
    await link(api, other, "vk", "https://vk.com/id12")
    await link(api, other, "telegram", "https://t.me/id1")
    (found,) = (
        await expect_result(
            await api.get(
                f"{API}/users", params={"social_network": "vk", "connection_link": "vk.com/id1"}
            )
        )
    )["users"]
    assert found == await fetch_user(api, holder)


async def test_a_look_up_by_linked_account_compares_links_as_the_same_account(api):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/id1")
    for variant in (
        "http://www.vk.com/id1/",
        "https://vk.com/id1/",
        "vk.com/id1",
        "HTTPS://WWW.VK.COM/id1?ref=feed#top",
    ):
        assert await find_by_link(api, "vk", variant) == [holder], variant


async def test_a_look_up_by_linked_account_finds_no_one_for_another_link_or_network(api):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/id1")
    assert await find_by_link(api, "vk", "https://vk.com/ID1") == []  # the path's case counts
    assert await find_by_link(api, "vk", "https://vk.com/id1/friends") == []
    assert await find_by_link(api, "telegram", "https://vk.com/id1") == []  # not telegram's
    assert await find_by_link(api, "vk", "ftp://vk.com/id1") == []  # not a link of any account
    assert await find_by_link(api, "vk", "https://vk.com/\x00") == []
    assert await find_by_link(api, "vk", "https://vk.com/" + "a" * 3000) == []


async def test_a_look_up_by_linked_account_needs_both_keys_and_a_known_network(api):
    (issue,) = await expect_detail(await api.get(f"{API}/users?social_network=vk"))
    assert (issue["loc"], issue["type"]) == (["query", "connection_link"], "missing")
    (issue,) = await expect_detail(await api.get(f"{API}/users?connection_link=vk.com/id1"))
    assert (issue["loc"], issue["type"]) == (["query", "social_network"], "missing")
    response = await api.get(f"{API}/users?social_network=myspace&connection_link=x")
    (issue,) = await expect_detail(response)
    assert (issue["loc"], issue["type"]) == (["query", "social_network"], "enum")


async def test_one_family_of_query_keys_per_request(api):
    some_id = str(uuid.uuid4())
    mixed = (
        f"id={some_id}&email=a%40example.org",
        f"id={some_id}&limit=5",
        f"id={some_id}&social_network=vk&connection_link=vk.com/x",
        "phone=79161234567&social_network=vk&connection_link=vk.com/x",
        "social_network=vk&connection_link=vk.com/x&cursor=abc",
        "email=a%40example.org&status=active",
    )
    for query in mixed:
        (issue,) = await expect_detail(await api.get(f"{API}/users?{query}"))
        assert (issue["loc"], issue["type"]) == (["query"], "value_error"), query


# --- conditional GET


async def test_a_get_naming_the_current_version_is_304_with_its_etag_and_no_body(api):
    user_id = await create_user(api)
    await expect_result(
        await call(
            api,
            "change_fullname",
            {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None},
        )
    )
    for seen in ('"2"', '"1", "2"', '"7",  "2" ', "*", 'W/"2"'):
        response = await api.get(f"{API}/users/{user_id}", headers={"If-None-Match": seen})
        assert response.status == 304, seen
        assert response.headers["ETag"] == '"2"'
        assert await response.read() == b""


async def test_a_get_naming_a_stale_version_is_200_with_the_user(api):
    user_id = await create_user(api)
    current = await fetch_user(api, user_id)
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    for seen in ('"1"', '"1", "3"', "1", '"x"', ""):
        response = await api.get(f"{API}/users/{user_id}", headers={"If-None-Match": seen})
        now = await expect_result(response)
        assert response.headers["ETag"] == '"2"', seen
        assert (now["version"], now["status"]) == (2, "deleted")
    assert current["version"] == 1


async def test_a_conditional_get_of_a_missing_user_is_404(api):
    response = await api.get(f"{API}/users/{MISSING_USER}", headers={"If-None-Match": "*"})
    await expect_error(response, 404, "user_not_found")
    plain = await get_user(api, MISSING_USER)
    await expect_error(plain, 404, "user_not_found")
