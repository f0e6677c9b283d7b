"""§3 "A command that fails changes nothing and emits no event", for every listed error:
users, linked_accounts and outbox are the same before and after."""

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from attrs import frozen

from tests.api.support import (
    MISSING_USER,
    call,
    create_user,
    delete_temporarily,
    each,
    expect_error,
    link,
)


@frozen
class World:
    """An active user with a vk account, a deleted user with a telegram account, and one
    more active user; contacts and links that are taken."""

    active: str
    active_account: str
    deleted: str
    deleted_account: str
    other: str


async def make_world(api: TestClient) -> World:
    active = await create_user(api, email="active@example.com", phone=79161111111)
    active_account = await link(api, active, "vk", "https://vk.com/active")
    deleted = await create_user(api, email="deleted@example.com", phone=79162222222)
    deleted_account = await link(api, deleted, "telegram", "t.me/deleted")
    await delete_temporarily(api, deleted)
    other = await create_user(api, email="other@example.com", phone=79163333333)
    return World(active, active_account, deleted, deleted_account, other)


def new_user(**overrides: Any) -> dict[str, Any]:
    body = {
        "phone": 79169999999,
        "email": "fresh@example.com",
        "firstname": "A",
        "lastname": "B",
        "middlename": None,
    }
    return {**body, **overrides}


def linking(user_id: str, network="discord", connection_link="discord.gg/x") -> dict:
    return {
        "user_id": user_id,
        "social_network": network,
        "connection_link": connection_link,
        "connected_for": None,
    }


type Body = Callable[[World], dict[str, Any]]

TAKEN = (409, "user_already_exists")
BAD_CONTACTS = (422, "invalid_contacts")

FAILURES: list[tuple[str, str, Body, int, str]] = [
    (
        "create_user",
        "no contacts",
        lambda w: new_user(email=None, phone=None),
        422,
        "invalid_contacts",
    ),
    ("create_user", "bad email", lambda w: new_user(email="x@"), 422, "invalid_contacts"),
    ("create_user", "bad phone", lambda w: new_user(phone=1), 422, "invalid_contacts"),
    (
        "create_user",
        "taken email",
        lambda w: new_user(email="ACTIVE@example.com"),
        409,
        "user_already_exists",
    ),
    (
        "create_user",
        "taken phone",
        lambda w: new_user(phone=79161111111),
        409,
        "user_already_exists",
    ),
    (
        "create_user",
        "deleted's email",
        lambda w: new_user(email="deleted@example.com"),
        409,
        "user_already_exists",
    ),
    (
        "create_user",
        "deleted's phone",
        lambda w: new_user(phone=79162222222),
        409,
        "user_already_exists",
    ),
    ("recovery_user", "missing", lambda w: {"user_id": MISSING_USER}, 404, "user_not_found"),
    ("recovery_user", "active", lambda w: {"user_id": w.active}, 400, "user_already_active"),
    ("delete_permanently", "missing", lambda w: {"user_id": MISSING_USER}, 404, "user_not_found"),
    ("delete_temporarily", "missing", lambda w: {"user_id": MISSING_USER}, 404, "user_not_found"),
    (
        "delete_temporarily",
        "deleted",
        lambda w: {"user_id": w.deleted},
        400,
        "user_already_deleted",
    ),
    (
        "change_fullname",
        "missing",
        lambda w: {"user_id": MISSING_USER, "firstname": "A", "lastname": "B", "middlename": None},
        404,
        "user_not_found",
    ),
    (
        "change_fullname",
        "deleted",
        lambda w: {"user_id": w.deleted, "firstname": "A", "lastname": "B", "middlename": None},
        400,
        "user_deleted",
    ),
    (
        "change_contacts",
        "missing",
        lambda w: {"user_id": MISSING_USER, "email": "z@example.com", "phone": None},
        404,
        "user_not_found",
    ),
    (
        "change_contacts",
        "deleted",
        lambda w: {"user_id": w.deleted, "email": "z@example.com", "phone": None},
        400,
        "user_deleted",
    ),
    (
        "change_contacts",
        "no contacts",
        lambda w: {"user_id": w.active, "email": None, "phone": None},
        422,
        "invalid_contacts",
    ),
    (
        "change_contacts",
        "bad email",
        lambda w: {"user_id": w.active, "email": "nope", "phone": None},
        422,
        "invalid_contacts",
    ),
    (
        "change_contacts",
        "taken email",
        lambda w: {"user_id": w.active, "email": "Other@example.com", "phone": None},
        409,
        "user_already_exists",
    ),
    (
        "change_contacts",
        "taken phone",
        lambda w: {"user_id": w.active, "email": None, "phone": 79163333333},
        409,
        "user_already_exists",
    ),
    (
        "change_contacts",
        "deleted's email, own phone",
        lambda w: {"user_id": w.active, "email": "deleted@example.com", "phone": 79161111111},
        409,
        "user_already_exists",
    ),
    ("link", "missing", lambda w: linking(MISSING_USER), 404, "user_not_found"),
    ("link", "deleted", lambda w: linking(w.deleted), 400, "user_deleted"),
    (
        "link",
        "not of network",
        lambda w: linking(w.other, "discord", "https://discord.com.evil.io/x"),
        422,
        "link_not_of_social_network",
    ),
    (
        "link",
        "second of network",
        lambda w: linking(w.active, "vk", "vk.com/another"),
        409,
        "linked_account_already_exists",
    ),
    (
        "link",
        "link of another user",
        lambda w: linking(w.other, "vk", "http://www.VK.com/active/"),
        409,
        "linked_account_already_exists",
    ),
    (
        "link",
        "link of a deleted user",
        lambda w: linking(w.other, "telegram", "https://t.me/deleted"),
        409,
        "linked_account_already_exists",
    ),
    (
        "unlink",
        "missing user",
        lambda w: {"user_id": MISSING_USER, "linked_account_id": w.active_account},
        404,
        "user_not_found",
    ),
    (
        "unlink",
        "deleted user",
        lambda w: {"user_id": w.deleted, "linked_account_id": w.deleted_account},
        400,
        "user_deleted",
    ),
    (
        "unlink",
        "missing account",
        lambda w: {"user_id": w.active, "linked_account_id": MISSING_USER},
        404,
        "linked_account_not_found",
    ),
    (
        "unlink",
        "another user's account",
        lambda w: {"user_id": w.other, "linked_account_id": w.active_account},
        404,
        "linked_account_not_found",
    ),
    (
        "change_reason",
        "missing user",
        lambda w: {"user_id": MISSING_USER, "linked_account_id": w.active_account, "reason": "x"},
        404,
        "user_not_found",
    ),
    (
        "change_reason",
        "deleted user",
        lambda w: {"user_id": w.deleted, "linked_account_id": w.deleted_account, "reason": "x"},
        400,
        "user_deleted",
    ),
    (
        "change_reason",
        "missing account",
        lambda w: {"user_id": w.active, "linked_account_id": MISSING_USER, "reason": "x"},
        404,
        "linked_account_not_found",
    ),
    (
        "change_reason",
        "another user's account",
        lambda w: {"user_id": w.other, "linked_account_id": w.active_account, "reason": "x"},
        404,
        "linked_account_not_found",
    ),
]


@pytest.mark.parametrize("command", sorted({c for c, *_ in FAILURES}))
async def test_every_listed_failure_of_a_command_changes_no_table(
    api: TestClient, tables, command: str
):
    world = await make_world(api)
    before = await tables()

    async def check(case: tuple[str, str, Body, int, str]) -> None:
        _, why, body, status, code = case
        await expect_error(await call(api, command, body(world)), status, code)
        assert await tables() == before, why

    await each([case for case in FAILURES if case[0] == command], check)


async def test_request_validation_failures_change_no_table(api: TestClient, tables):
    world = await make_world(api)
    before = await tables()
    bad = [
        ("create_user", {"phone": "79161234567"}),
        ("recovery_user", {"user_id": "x"}),
        ("delete_permanently", {"user_id": 1}),
        ("delete_temporarily", []),
        ("change_fullname", {"user_id": world.active, "firstname": None}),
        ("change_contacts", {"user_id": world.active, "email": None, "phone": 7.9e10}),
        ("link", {**linking(world.other), "social_network": "myspace"}),
        ("unlink", {"user_id": world.active, "linked_account_id": "x"}),
        ("change_reason", {"user_id": world.active, "linked_account_id": world.active_account}),
    ]
    for command, body in bad:
        response = await call(api, command, body)
        assert response.status == 422, (command, await response.text())
    assert await tables() == before
