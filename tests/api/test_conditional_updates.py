"""Conditional updates (beyond the contract): every user has a version that each change
increments, GET shows it as ETag, and a command whose If-Match names another version is
412 precondition_failed and changes nothing."""

import asyncio

from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    COMMANDS,
    MISSING_USER,
    create_user,
    expect_error,
    expect_result,
    get_user,
    link,
    outbox,
)


async def send(api: TestClient, command: str, body: dict, if_match: str | None = None):
    method, path = COMMANDS[command]
    headers = {} if if_match is None else {"If-Match": if_match}
    return await api.request(method, API + path, json=body, headers=headers)


async def version_of(api: TestClient, user_id: str) -> tuple[int, str]:
    response = await get_user(api, user_id)
    user = await expect_result(response)
    return user["version"], response.headers["ETag"]


async def test_a_new_user_has_version_1_and_get_shows_it_as_a_strong_etag(api):
    user_id = await create_user(api)
    assert await version_of(api, user_id) == (1, '"1"')


async def test_each_change_increments_the_version_by_one_and_its_event_carries_it(api, pool):
    user_id = await create_user(api)
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    response = await send(api, "change_fullname", rename)
    await expect_result(response)
    assert response.headers["ETag"] == '"2"'
    account_id = await link(api, user_id)
    reason = {"user_id": user_id, "linked_account_id": account_id, "reason": "x"}
    await expect_result(await send(api, "change_reason", reason))
    await expect_result(
        await send(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
    )
    await expect_result(await send(api, "delete_temporarily", {"user_id": user_id}))
    await expect_result(await send(api, "recovery_user", {"user_id": user_id}))
    assert (await version_of(api, user_id))[0] == 7
    await expect_result(await send(api, "delete_permanently", {"user_id": user_id}))
    versions = [row["data"]["version"] for row in await outbox(pool)]
    assert versions == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_two_clients_that_read_the_same_version_cannot_both_change_the_user(api, pool):
    """The lost update: both read version 1 and send If-Match; exactly one wins."""
    user_id = await create_user(api)
    _, tag = await version_of(api, user_id)
    bodies = [
        {"user_id": user_id, "firstname": name, "lastname": "B", "middlename": None}
        for name in ("First", "Second")
    ]
    responses = await asyncio.gather(
        *(send(api, "change_fullname", body, if_match=tag) for body in bodies)
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 412], statuses
    (winner,) = [b for b, r in zip(bodies, responses, strict=True) if r.status == 200]
    (loser,) = [r for r in responses if r.status == 412]
    await expect_error(loser, 412, "precondition_failed")
    user = await expect_result(await get_user(api, user_id))
    assert (user["firstname"], user["version"]) == (winner["firstname"], 2)
    assert [row["event_name"] for row in await outbox(pool)] == ["UserCreated", "FullnameChanged"]


async def test_a_stale_weak_or_malformed_if_match_is_412_and_changes_nothing(api, tables):
    user_id = await create_user(api)
    body = {"user_id": user_id, "email": None, "phone": 79169999999}
    before = await tables()
    for tag in ('"2"', 'W/"1"', "1", '"one"', '"0", "2"', ""):
        await expect_error(
            await send(api, "change_contacts", body, if_match=tag), 412, "precondition_failed"
        )
    assert await tables() == before


async def test_an_if_match_naming_the_version_or_a_star_lets_the_command_run(api):
    user_id = await create_user(api)
    body = {"user_id": user_id}
    await expect_result(await send(api, "delete_temporarily", body, if_match='"7", "1"'))
    await expect_result(await send(api, "recovery_user", body, if_match="*"))
    assert (await version_of(api, user_id))[0] == 3


async def test_a_missing_user_is_404_whatever_the_if_match(api):
    await expect_error(
        await send(api, "recovery_user", {"user_id": MISSING_USER}, if_match='"1"'),
        404,
        "user_not_found",
    )


async def test_the_user_s_status_is_checked_after_if_match(api):
    user_id = await create_user(api)
    await expect_result(await send(api, "delete_temporarily", {"user_id": user_id}))
    rename = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    await expect_error(
        await send(api, "change_fullname", rename, if_match='"1"'), 412, "precondition_failed"
    )
    await expect_error(
        await send(api, "change_fullname", rename, if_match='"2"'), 400, "user_deleted"
    )
