"""Classic SQL injection payloads in every text field are stored and read back as the
data they are, and the tables stay as they were (every query binds its values)."""

from typing import Any

import pytest
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

PAYLOADS = [
    "Robert'); DROP TABLE users;--",
    "' OR '1'='1",
    "' OR 1=1 --",
    "admin'--",
    "1; SELECT pg_sleep(10)--",
    "'; TRUNCATE users, outbox CASCADE; --",
    "$1",
    "$$; DROP TABLE outbox; $$",
    "'||(SELECT version())||'",
    "%' AND 1=0 UNION SELECT user_id, email FROM users --",
    '" OR ""="',
    "\\'; DELETE FROM users; --",
    "E'\\x27'",
    "*/ SELECT 1 /*",
]
EMAILS = [
    "o'brien--@example.com",
    "'or'1'='1@example.com",
    "x'||'y@example.com",
    "a$1$$b@example.com",
    "'--@example.com",
]


async def _intact(pool, users: int) -> None:
    assert await pool.fetchval("SELECT count(*) FROM users") == users
    for table in ("users", "linked_accounts", "outbox"):
        assert await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table)


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_a_payload_in_any_name_or_reason_round_trips_as_data(
    api: TestClient, pool, payload: str
):
    user_id = await create_user(api, firstname=payload, lastname=payload, middlename=payload)
    user = await fetch_user(api, user_id)
    assert (user["firstname"], user["lastname"], user["middlename"]) == (payload,) * 3

    body = {"user_id": user_id, "firstname": payload, "lastname": "X", "middlename": payload}
    await expect_result(await call(api, "change_fullname", body))
    account_id = await link(api, user_id, "vk", f"https://vk.com/id{abs(hash(payload))}", payload)
    user = await fetch_user(api, user_id)
    assert user["firstname"] == payload
    assert user["linked_accounts"][0]["connected_for"] == payload

    reason = {"user_id": user_id, "linked_account_id": account_id, "reason": payload[::-1]}
    await expect_result(await call(api, "change_reason", reason))
    user = await fetch_user(api, user_id)
    assert user["linked_accounts"][0]["connected_for"] == payload[::-1]

    events = await outbox(pool)
    assert events[0]["data"]["firstname"] == payload
    assert len(events) == 4
    await _intact(pool, 1)


@pytest.mark.parametrize("email", EMAILS)
async def test_a_payload_in_an_email_round_trips_as_data(api: TestClient, pool, email: str):
    user_id = await create_user(api, email=email)
    assert (await fetch_user(api, user_id))["email"] == email
    other = await create_user(api)
    # the same address again, any case: the unique index sees it, as data
    taken = await call(api, "create_user", user_body(email=email.upper()))
    assert taken.status == 409, await taken.text()
    change = {"user_id": other, "email": email, "phone": None}
    assert (await call(api, "change_contacts", change)).status == 409
    await _intact(pool, 2)


async def test_a_payload_in_a_link_path_or_an_id_is_data_or_a_422(api: TestClient, pool):
    user_id = await create_user(api)
    for payload in PAYLOADS:
        body: dict[str, Any] = {
            "user_id": user_id,
            "social_network": "telegram",
            "connection_link": f"https://t.me/{payload}",
            "connected_for": None,
        }
        response = await call(api, "link", body)
        assert response.status in {201, 422}, await response.text()
        if response.status == 201:
            account_id = (await response.json())["result"]
            accounts = (await fetch_user(api, user_id))["linked_accounts"]
            assert accounts[-1]["linked_account_id"] == account_id
            await expect_result(
                await call(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
            )
        # in an id: never reaches SQL as anything but a refused UUID
        response = await call(api, "delete_temporarily", {"user_id": payload})
        assert response.status == 422
        response = await api.get(f"/api/v1/users/{payload.replace('/', '%2F')}")
        assert response.status in {404, 422}
    await _intact(pool, 1)
