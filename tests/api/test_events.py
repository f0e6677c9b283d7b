"""§4: every successful command adds exactly one outbox row, with the contract's event name
and exactly the contract's data; a permanent deletion erases personal data still waiting."""

from typing import Any
from uuid import UUID

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.support import (
    call,
    create_user,
    expect_result,
    fetch_user,
    link,
    outbox,
    user_body,
)
from tests.contract import EVENT_DATA_KEYS, PERSONAL_DATA


def data_of(row: dict[str, Any]) -> dict[str, Any]:
    """The event's data beside its version (a positive integer; its value is the concern
    of test_conditional_updates.py)."""
    data = dict(row["data"])
    version = data.pop("version")
    assert isinstance(version, int), row
    assert version >= 1, row
    return data


async def one_new_event(pool: asyncpg.Pool, before: int, user_id: str) -> dict[str, Any]:
    """The one row added since ``before`` rows, of this user, unpublished, with contract keys."""
    rows = await outbox(pool)
    assert len(rows) == before + 1, rows[before:]
    row = rows[-1]
    assert row["user_id"] == UUID(user_id)
    assert row["published_at"] is None
    assert isinstance(row["event_id"], UUID)
    assert set(row["data"]) == EVENT_DATA_KEYS[row["event_name"]], row
    return row


async def count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox")


async def test_create_user_emits_user_created_with_the_stored_values(api: TestClient, pool):
    body = user_body(
        firstname=" Ivan ",
        lastname="Petrov",
        middlename="",
        email="Ivan@Example.COM",
        phone=79161234567,
    )
    user_id = await expect_result(await call(api, "create_user", body), 201)
    row = await one_new_event(pool, 0, user_id)
    assert row["event_name"] == "UserCreated"
    assert data_of(row) == {
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": None,
        "email": "Ivan@example.com",
        "phone": 79161234567,
        "status": "active",
    }


async def test_delete_temporarily_emits_user_temporarily_deleted(api: TestClient, pool):
    user_id = await create_user(api)
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    row = await one_new_event(pool, 1, user_id)
    assert row["event_name"] == "UserTemporarilyDeleted"
    user = await fetch_user(api, user_id)
    assert data_of(row) == {"status": "deleted", "deleted_at": user["deleted_at"]}


async def test_recovery_emits_user_recovered(api: TestClient, pool):
    user_id = await create_user(api)
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    await expect_result(await call(api, "recovery_user", {"user_id": user_id}))
    row = await one_new_event(pool, 2, user_id)
    assert row["event_name"] == "UserRecovered"
    assert data_of(row) == {"status": "active"}


async def test_delete_permanently_emits_user_permanently_deleted_with_the_account_ids(
    api: TestClient, pool
):
    user_id = await create_user(api)
    first = await link(api, user_id, "vk")
    second = await link(api, user_id, "telegram", "t.me/someone")
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    row = await one_new_event(pool, 3, user_id)
    assert row["event_name"] == "UserPermanentlyDeleted"
    assert sorted(row["data"]["linked_account_ids"]) == sorted([first, second])


async def test_delete_permanently_of_a_user_without_accounts_emits_an_empty_list(
    api: TestClient, pool
):
    user_id = await create_user(api)
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    row = await one_new_event(pool, 1, user_id)
    assert data_of(row) == {"linked_account_ids": []}


async def test_change_fullname_emits_fullname_changed_with_the_stored_names(api: TestClient, pool):
    user_id = await create_user(api)
    body = {"user_id": user_id, "firstname": " Petr", "lastname": "Ivanov ", "middlename": " "}
    await expect_result(await call(api, "change_fullname", body))
    row = await one_new_event(pool, 1, user_id)
    assert row["event_name"] == "FullnameChanged"
    assert data_of(row) == {"firstname": "Petr", "lastname": "Ivanov", "middlename": None}


async def test_change_contacts_emits_contacts_changed_with_the_stored_contacts(
    api: TestClient, pool
):
    user_id = await create_user(api)
    body = {"user_id": user_id, "email": "New@EXAMPLE.org", "phone": None}
    await expect_result(await call(api, "change_contacts", body))
    row = await one_new_event(pool, 1, user_id)
    assert row["event_name"] == "ContactsChanged"
    assert data_of(row) == {"email": "New@example.org", "phone": None}


async def test_link_emits_linked_account_created_with_the_stored_account(api: TestClient, pool):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "vk", " vk.com/durov ", "work")
    row = await one_new_event(pool, 1, user_id)
    assert row["event_name"] == "LinkedAccountCreated"
    (account,) = (await fetch_user(api, user_id))["linked_accounts"]
    assert data_of(row) == {
        "linked_account_id": account_id,
        "social_network": "vk",
        "connection_link": "https://vk.com/durov",
        "connected_for": "work",
        "connected_at": account["connected_at"],
    }


async def test_unlink_emits_linked_account_deleted(api: TestClient, pool):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "telegram", "t.me/ivan")
    await expect_result(
        await call(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
    )
    row = await one_new_event(pool, 2, user_id)
    assert row["event_name"] == "LinkedAccountDeleted"
    assert data_of(row) == {"linked_account_id": account_id, "social_network": "telegram"}


async def test_change_reason_emits_connection_reason_changed(api: TestClient, pool):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    body = {"user_id": user_id, "linked_account_id": account_id, "reason": "friends"}
    await expect_result(await call(api, "change_reason", body))
    row = await one_new_event(pool, 2, user_id)
    assert row["event_name"] == "ConnectionReasonChanged"
    assert data_of(row) == {"linked_account_id": account_id, "connected_for": "friends"}
    body = {**body, "reason": None}
    await expect_result(await call(api, "change_reason", body))
    row = await one_new_event(pool, 3, user_id)
    assert data_of(row) == {"linked_account_id": account_id, "connected_for": None}


async def test_reads_emit_nothing(api: TestClient, pool):
    user_id = await create_user(api)
    await fetch_user(api, user_id)
    await expect_result(await api.post("/api/v1/healthcheck"))
    assert await count(pool) == 1


async def test_each_event_has_its_own_id_and_a_users_events_keep_their_order(api: TestClient, pool):
    user_id = await create_user(api)
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    await expect_result(await call(api, "recovery_user", {"user_id": user_id}))
    account_id = await link(api, user_id)
    await expect_result(
        await call(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
    )
    rows = await outbox(pool)
    assert [r["event_name"] for r in rows] == [
        "UserCreated",
        "UserTemporarilyDeleted",
        "UserRecovered",
        "LinkedAccountCreated",
        "LinkedAccountDeleted",
    ]
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)


async def test_permanent_deletion_erases_personal_data_of_waiting_events(api: TestClient, pool):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    other = await create_user(api, email="other@example.com")
    body = {"user_id": user_id, "firstname": "P", "lastname": "I", "middlename": "M"}
    await expect_result(await call(api, "change_fullname", body))
    body = {"user_id": user_id, "email": "new@example.com", "phone": 79169876543}
    await expect_result(await call(api, "change_contacts", body))
    account_id = await link(api, user_id, "vk", "vk.com/ivan", "work")
    body = {"user_id": user_id, "linked_account_id": account_id, "reason": "friends"}
    await expect_result(await call(api, "change_reason", body))
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    await link(api, other, "vk", "vk.com/other", "fun")
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))

    rows = await outbox(pool)
    mine = [r for r in rows if r["user_id"] == UUID(user_id)]
    assert [r["event_name"] for r in mine] == [
        "UserCreated",
        "FullnameChanged",
        "ContactsChanged",
        "LinkedAccountCreated",
        "ConnectionReasonChanged",
        "UserTemporarilyDeleted",
        "UserPermanentlyDeleted",
    ]
    for row in mine:
        assert set(row["data"]) == EVENT_DATA_KEYS[row["event_name"]], row
        for key in PERSONAL_DATA & set(row["data"]):
            assert row["data"][key] is None, row
        assert row["published_at"] is None
    created, _, _, linked, reason, deleted, gone = (r["data"] for r in mine)
    assert created["status"] == "active"
    assert linked["linked_account_id"] == account_id
    assert linked["social_network"] == "vk"
    assert linked["connected_at"] is not None
    assert reason["linked_account_id"] == account_id
    assert deleted["status"] == "deleted"
    assert gone == {"version": 7, "linked_account_ids": [account_id]}

    theirs = [r for r in rows if r["user_id"] == UUID(other)]
    assert theirs[0]["data"]["email"] == "other@example.com"
    assert theirs[1]["data"]["connection_link"] == "https://vk.com/other"
    assert theirs[1]["data"]["connected_for"] == "fun"
