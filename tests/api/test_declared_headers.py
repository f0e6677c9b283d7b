"""Every header the service sends is declared in its OpenAPI document, for the operation
and the status that sent it; and every answer the document declares is driven here.

Each operation is driven to each of its answers: its successes (a command's also
replayed for its Idempotency-Key), each domain failure it may answer (also replayed),
412, 409 `request_in_progress`, 408, 413, 415, 422 of either shape; 500 with every
statement broken; 503 on a database that does not answer. HTTP's own headers
(Content-Type, Content-Length, Date, Server, Connection) are not the document's.
"""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from tests.api.support import API, MISSING_USER, create_user, delete_temporarily, link, user_body
from tests.api.test_concurrency import wait_for_lock_waits
from usersvc.db import idempotency
from usersvc.db.queries import Queries, load
from usersvc.domain import failures as F
from usersvc.http import validation
from usersvc.http.app import COMMANDS, Command, create_app
from usersvc.http.failures import FAILURES
from usersvc.http.handlers import QUERIES

HTTP_OWN = {"content-type", "content-length", "date", "server", "connection"}
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"
BY_ID = {command.operation_id: command for command in COMMANDS}


class Seen:
    """The headers each (operation, status) was seen to send."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.declared: dict[tuple[str, int], set[str]] = {
            (operation["operationId"], int(status)): {h.lower() for h in response["headers"]}
            for item in document["paths"].values()
            for operation in item.values()
            for status, response in operation["responses"].items()
        }
        self.sent: dict[tuple[str, int], set[str]] = {}

    def saw(self, operation: str, status: int, headers: CIMultiDict[str] | dict[str, str]):
        names = {name.lower() for name in headers} - HTTP_OWN
        self.sent.setdefault((operation, status), set()).update(names)

    async def record(self, operation: str, response: ClientResponse, status: int) -> None:
        await response.read()
        assert response.status == status, (operation, await response.text())
        self.saw(operation, status, response.headers)


async def send(api: TestClient, operation: str, body: Any, **headers: str) -> ClientResponse:
    command = BY_ID[operation]
    return await api.request(command.method, API + command.path, json=body, headers=headers)


class State:
    """What a command case needs: an active user with a linked account, a deleted user,
    and the contacts of another user."""

    async def make(self, api: TestClient) -> "State":
        self.user_id = await create_user(api)
        self.account_id = await link(api, self.user_id, "vk")
        self.deleted_id = await create_user(api)
        await delete_temporarily(api, self.deleted_id)
        self.taken = user_body()
        await create_user(api, **self.taken)
        return self

    def made_up(self) -> "State":
        """Ids no database was asked for (for an app whose database fails anyway)."""
        self.user_id = self.deleted_id = str(uuid.uuid4())
        self.account_id = str(uuid.uuid4())
        self.taken = user_body()
        return self

    def success(self, command: Command) -> dict[str, Any]:
        user = {"user_id": self.user_id}
        match command.operation_id:
            case "create_user":
                return user_body()
            case "recover_user":
                return {"user_id": self.deleted_id}
            case "delete_user_permanently" | "delete_user_temporarily":
                return user
            case "change_fullname":
                return user | {"firstname": "Anna", "lastname": "B", "middlename": None}
            case "change_contacts":
                return user | {"email": f"new{uuid.uuid4().hex[:8]}@example.org", "phone": None}
            case "link_social_network":
                return user | {
                    "social_network": "telegram",
                    "connection_link": f"t.me/u{uuid.uuid4().hex[:8]}",
                    "connected_for": None,
                }
            case "unlink_social_network":
                return user | {"linked_account_id": self.account_id}
            case "change_social_network_connection_reason":
                return user | {"linked_account_id": self.account_id, "reason": "login"}
        raise AssertionError(command.operation_id)

    def failing(self, command: Command, failure: type) -> tuple[dict[str, Any], dict[str, str]]:
        """A request of ``command`` that fails with ``failure``: its body and headers."""
        body = self.success(command)
        if failure is F.UserNotFound:
            return body | {"user_id": MISSING_USER}, {}
        if failure is F.PreconditionFailed:
            return body, {"If-Match": '"999"'}
        if failure is F.UserAlreadyActive:
            return {"user_id": self.user_id}, {}
        if failure in (F.UserAlreadyDeleted, F.UserDeleted):
            return body | {"user_id": self.deleted_id}, {}
        if failure is F.InvalidFullname:
            return body | {"firstname": " "}, {}
        if failure is F.InvalidContacts:
            return body | {"email": "not an email"}, {}
        if failure is F.UserAlreadyExists:
            return body | {"email": self.taken["email"]}, {}
        if failure is F.LinkNotOfSocialNetwork:
            return body | {"connection_link": "https://example.org/u"}, {}
        if failure is F.InvalidConnectionReason:
            key = "reason" if "reason" in body else "connected_for"
            return body | {key: "x" * 501}, {}
        if failure is F.LinkedAccountAlreadyExists:
            return body | {"social_network": "vk", "connection_link": "vk.com/other"}, {}
        if failure is F.LinkedAccountNotFound:
            return body | {"linked_account_id": str(uuid.uuid4())}, {}
        raise AssertionError(failure)


async def drive_a_command(
    api: TestClient, pool: asyncpg.Pool, seen: Seen, command: Command
) -> None:
    name = command.operation_id
    success = 201 if name in ("create_user", "link_social_network") else 200

    async def once_and_again(body: Any, headers: dict[str, str], status: int) -> None:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        await seen.record(name, await send(api, name, body, **headers, **key), status)
        again = await send(api, name, body, **headers, **key)
        assert again.headers["Idempotent-Replayed"] == "true"
        await seen.record(name, again, status)

    state = await State().make(api)
    await seen.record(name, await send(api, name, state.success(command)), success)
    await once_and_again((await State().make(api)).success(command), {}, success)
    for failure in command.failures:
        state = await State().make(api)
        body, headers = state.failing(command, failure)
        await once_and_again(body, headers, FAILURES[failure].status)

    state = await State().make(api)
    body = state.success(command)
    key = {"Idempotency-Key": "reused"}
    await seen.record(name, await send(api, name, body, **key), success)
    other = body | {"email": "other@example.org"} if name == "create_user" else user_body()
    await seen.record(name, await send(api, name, other, **key), 422)  # idempotency_key_reused
    await seen.record(name, await send(api, name, {}), 422)  # detail
    raw = await api.request(
        command.method, API + command.path, data=b"x", headers={"Content-Type": "text/plain"}
    )
    await seen.record(name, raw, 415)
    huge = await api.request(
        command.method,
        API + command.path,
        data=b" " * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json"},
    )
    await seen.record(name, huge, 413)
    await slow_body(api, seen, command)
    await in_progress(api, pool, seen, command, state.success(command))


async def in_progress(
    api: TestClient, pool: asyncpg.Pool, seen: Seen, command: Command, body: dict[str, Any]
) -> None:
    """409 request_in_progress: another transaction holds the key, uncommitted."""
    name = command.operation_id
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(
            "INSERT INTO idempotency_keys (endpoint, key, request_hash) VALUES ($1, $2, $3)",
            name,
            "held",
            b"\x00" * 32,  # a sha256
        )
        waiting = asyncio.create_task(send(api, name, body, **{"Idempotency-Key": "held"}))
        await wait_for_lock_waits(pool, 1)
        await seen.record(name, await waiting, 409)


async def slow_body(api: TestClient, seen: Seen, command: Command) -> None:
    """408: a body that stops coming (over a socket of its own: the answer comes while
    the body is still owed)."""
    host, port = api.server.host, api.server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"{command.method} {API}{command.path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    finally:
        writer.close()
    status_line, *lines = head.strip().split("\r\n")
    assert int(status_line.split()[1]) == 408, head
    seen.saw(command.operation_id, 408, dict(line.split(": ", 1) for line in lines))


async def drive_the_reads(api: TestClient, seen: Seen) -> None:
    user_id = await create_user(api)
    await seen.record("get_user", await api.get(f"{API}/users/{user_id}"), 200)
    same = await api.get(f"{API}/users/{user_id}", headers={"If-None-Match": '"1"'})
    await seen.record("get_user", same, 304)
    await seen.record("get_user", await api.get(f"{API}/users/{MISSING_USER}"), 404)
    await seen.record("get_user", await api.get(f"{API}/users/create_user"), 405)
    await seen.record("get_user", await api.get(f"{API}/users/not-a-uuid"), 422)
    for query in (
        {"id": user_id},
        {"email": "a@example.org"},
        {"social_network": "vk", "connection_link": "vk.com/a"},
        {},
    ):
        await seen.record("find_users", await api.get(f"{API}/users", params=query), 200)
    await seen.record("find_users", await api.get(f"{API}/users?limit=0"), 422)
    await seen.record("healthcheck", await api.post(f"{API}/healthcheck"), 200)
    await seen.record("livez", await api.get("/livez"), 200)
    await seen.record("readyz", await api.get("/readyz"), 200)


async def drive_every_operation(api: TestClient, seen: Seen, status: int) -> None:
    """Each operation once with a request it takes: for a failing database."""
    state = State().made_up()
    for command in COMMANDS:
        response = await send(api, command.operation_id, state.success(command))
        await seen.record(command.operation_id, response, status)
    await seen.record("get_user", await api.get(f"{API}/users/{state.user_id}"), status)
    await seen.record("find_users", await api.get(f"{API}/users"), status)
    await seen.record("healthcheck", await api.post(f"{API}/healthcheck"), status)
    if status == 503:  # the probe reports a database away; a broken statement too, as 503
        await seen.record("readyz", await api.get("/readyz"), status)


def failing_queries() -> Queries:
    """Every statement one PostgreSQL cannot parse: an error no rule foresees."""
    return Queries({name: f"BROKEN {text}" for name, text in load().items()})


async def test_every_header_sent_is_declared_for_its_operation_and_status_and_every_answer_driven(
    aiohttp_client, database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(idempotency, "CLAIM_WAIT", "100ms")
    monkeypatch.setattr(validation, "BODY_READ_TIMEOUT", 0.2)
    api = await aiohttp_client(create_app(database_url))
    document = await (await api.get("/api/docs/openapi.json")).json()
    seen = Seen(document)

    for command in COMMANDS:
        await drive_a_command(api, pool, seen, command)
    await drive_the_reads(api, seen)
    broken = create_app(database_url)
    broken[QUERIES] = failing_queries()
    await drive_every_operation(await aiohttp_client(broken), seen, 500)
    away = create_app(UNREACHABLE, pool_min_size=0)
    await drive_every_operation(await aiohttp_client(away), seen, 503)

    undeclared = {
        answer: sorted(names - seen.declared.get(answer, set()))
        for answer, names in seen.sent.items()
        if names - seen.declared.get(answer, set())
    }
    assert not undeclared, undeclared
    assert set(seen.sent) == set(seen.declared), {
        "declared, never driven": sorted(set(seen.declared) - set(seen.sent)),
        "driven, not declared": sorted(set(seen.sent) - set(seen.declared)),
    }
    for answer, names in seen.sent.items():
        assert "x-request-id" in names, answer
