"""Helpers for the API tests: the endpoints, request bodies and the contract's envelopes."""

import itertools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

API = "/api/v1"

# Each command of §3: its method and path.
COMMANDS: dict[str, tuple[str, str]] = {
    "create_user": ("POST", "/users/create_user"),
    "recovery_user": ("PUT", "/users/recovery-user"),
    "delete_permanently": ("DELETE", "/users/delete-user-permanently"),
    "delete_temporarily": ("DELETE", "/users/delete-user-temporarily"),
    "change_fullname": ("PUT", "/users/change-fullname"),
    "change_contacts": ("PUT", "/users/change-contacts"),
    "link": ("POST", "/users/link-social-network"),
    "unlink": ("DELETE", "/users/unlink-social-network"),
    "change_reason": ("PUT", "/users/change-social-network-connection-reason"),
}

# The keys each command's body requires (§3).
BODY_KEYS: dict[str, tuple[str, ...]] = {
    "create_user": ("phone", "email", "firstname", "lastname", "middlename"),
    "recovery_user": ("user_id",),
    "delete_permanently": ("user_id",),
    "delete_temporarily": ("user_id",),
    "change_fullname": ("user_id", "firstname", "lastname", "middlename"),
    "change_contacts": ("user_id", "email", "phone"),
    "link": ("user_id", "social_network", "connection_link", "connected_for"),
    "unlink": ("user_id", "linked_account_id"),
    "change_reason": ("user_id", "linked_account_id", "reason"),
}


USER_FIELDS = {
    "user_id",
    "status",
    "created_at",
    "deleted_at",
    "firstname",
    "lastname",
    "middlename",
    "email",
    "phone",
    "linked_accounts",
    "version",  # beyond the contract: for If-Match
}
ACCOUNT_FIELDS = {
    "linked_account_id",
    "social_network",
    "connection_link",
    "connected_for",
    "connected_at",
}

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

MISSING_USER = "00000000-0000-4000-8000-000000000000"

_numbers = itertools.count(1)


def unique() -> int:
    return next(_numbers)


def user_body(**overrides: Any) -> dict[str, Any]:
    """A valid create_user body with contacts no other body from here has."""
    n = unique()
    body = {
        "phone": 79160000000 + n,
        "email": f"user{n}@example.com",
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": "Sergeevich",
    }
    body.update(overrides)
    return body


async def call(api: TestClient, command: str, body: Any) -> ClientResponse:
    method, path = COMMANDS[command]
    return await api.request(method, API + path, json=body)


async def call_raw(
    api: TestClient, command: str, data: bytes, content_type: str = "application/json"
) -> ClientResponse:
    method, path = COMMANDS[command]
    return await api.request(method, API + path, data=data, headers={"Content-Type": content_type})


async def get_user(api: TestClient, user_id: str) -> ClientResponse:
    return await api.get(f"{API}/users/{user_id}")


async def each[T](cases: Iterable[T], check: Callable[[T], Awaitable[object]]) -> None:
    """Run ``check`` on every case (on one database) and fail listing every case that failed."""
    failures = []
    for case in cases:
        try:
            await check(case)
        except AssertionError as error:
            failures.append(f"{repr(case)[:200]}: {str(error)[:2000]}")
    assert not failures, "\n".join(failures)


# --- the envelopes of §1 ---


async def _json(response: ClientResponse) -> Any:
    assert response.content_type == "application/json", await response.text()
    return await response.json()


async def expect_result(response: ClientResponse, status: int = 200) -> Any:
    """The success envelope with this status; its ``result``."""
    body = await _json(response)
    assert response.status == status, body
    assert isinstance(body, dict), body
    assert set(body) == {"status", "result"}, body
    assert body["status"] == status, body
    return body["result"]


async def expect_error(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """The error envelope with this status and ``data.code``; the whole body."""
    body = await _json(response)
    assert response.status == status, body
    assert_error_shape(body, status)
    assert body["error"]["data"]["code"] == code, body
    return body


def assert_error_shape(body: Any, status: int) -> None:
    assert isinstance(body, dict), body
    assert set(body) == {"status", "error"}, body
    assert body["status"] == status, body
    assert set(body["error"]) == {"title", "data"}, body
    assert body["error"]["title"] == "Error occurred", body
    data = body["error"]["data"]
    assert set(data) == {"message", "code"}, body
    assert isinstance(data["message"], str), body
    assert data["message"], body
    assert isinstance(data["code"], str), body
    assert re.fullmatch(r"[a-z][a-z0-9_]*", data["code"]), body


def assert_detail_shape(body: Any) -> list[dict[str, Any]]:
    assert isinstance(body, dict), body
    assert set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, list), body
    assert detail, body
    for entry in detail:
        assert isinstance(entry, dict), body
        assert {"loc", "msg", "type"} <= set(entry), body
        assert isinstance(entry["loc"], list), body
        assert entry["loc"], body
        assert entry["loc"][0] in {"body", "path", "query", "header"}, body
        assert isinstance(entry["msg"], str), body
        assert isinstance(entry["type"], str), body
    return detail


async def expect_detail(response: ClientResponse) -> list[dict[str, Any]]:
    """A request validation error (422 ``detail``); its entries."""
    body = await _json(response)
    assert response.status == 422, body
    return assert_detail_shape(body)


async def expect_detail_at(
    response: ClientResponse, loc: list[str], type_: str | None = None
) -> dict[str, Any]:
    """A 422 ``detail`` with exactly one entry, at ``loc`` (and of ``type_``)."""
    detail = await expect_detail(response)
    assert len(detail) == 1, detail
    (entry,) = detail
    assert entry["loc"] == loc, detail
    if type_ is not None:
        assert entry["type"] == type_, detail
    return entry


async def expect_error_or_detail(response: ClientResponse, status: int, code: str) -> Any:
    """The error envelope with this status and code, or else a request validation 422
    ``detail`` (which §3 checks first, and §1 lets refuse some values)."""
    body = await _json(response)
    if response.status == 422 and isinstance(body, dict) and "detail" in body:
        assert_detail_shape(body)
        return body
    assert response.status == status, body
    assert_error_shape(body, status)
    assert body["error"]["data"]["code"] == code, body
    return body


async def expect_422(response: ClientResponse, codes: set[str] | None = None) -> Any:
    """A 422 of either shape: request validation or a domain envelope (§1 lets either layer
    refuse a bad value); a domain envelope's code must be one of ``codes`` when given."""
    body = await _json(response)
    assert response.status == 422, body
    if "detail" in body:
        assert_detail_shape(body)
    else:
        assert_error_shape(body, 422)
        if codes is not None:
            assert body["error"]["data"]["code"] in codes, body
    return body


def assert_envelope(status: int, body: Any) -> None:
    """Any answer of the contract: a success envelope, an error envelope or a 422 ``detail``."""
    assert isinstance(body, dict), body
    if "detail" in body:
        assert status == 422, body
        assert_detail_shape(body)
    elif 200 <= status < 300:
        assert set(body) == {"status", "result"}, body
        assert body["status"] == status, body
    else:
        assert_error_shape(body, status)


def assert_timestamp(value: Any) -> None:
    assert isinstance(value, str), value
    assert RFC3339_UTC.match(value), value


def assert_uuid(value: Any) -> None:
    assert isinstance(value, str), value
    assert str(UUID(value)) == value, value


# --- building state through the API ---


async def create_user(api: TestClient, **overrides: Any) -> str:
    user_id = await expect_result(await call(api, "create_user", user_body(**overrides)), 201)
    assert_uuid(user_id)
    return user_id


async def fetch_user(api: TestClient, user_id: str) -> dict[str, Any]:
    return await expect_result(await get_user(api, user_id))


async def delete_temporarily(api: TestClient, user_id: str) -> None:
    await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))


async def link(
    api: TestClient,
    user_id: str,
    network: str = "vk",
    connection_link: str | None = None,
    connected_for: str | None = "work",
) -> str:
    if connection_link is None:
        connection_link = f"https://vk.com/id{unique()}"
    body = {
        "user_id": user_id,
        "social_network": network,
        "connection_link": connection_link,
        "connected_for": connected_for,
    }
    account_id = await expect_result(await call(api, "link", body), 201)
    assert_uuid(account_id)
    return account_id


# --- the tables ---

type Snapshot = dict[str, list[dict[str, Any]]]

_TABLES = {
    "users": "user_id",
    "linked_accounts": "linked_account_id",
    "outbox": "position",
}


async def snapshot(pool: asyncpg.Pool) -> Snapshot:
    """Every row of the three tables, in a stable order."""
    return {
        table: [dict(row) for row in await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        for table, key in _TABLES.items()
    }


async def outbox(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event_id, event_name, user_id, occurred_at, data, published_at"
        " FROM outbox ORDER BY position"
    )
    return [dict(row) for row in rows]
