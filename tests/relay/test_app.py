"""The relay as the service runs it: beside the API, reported by the health check."""

import asyncio
import json
import re
import socket

from aiohttp.test_utils import TestClient
from attrs import evolve

from tests.relay.support import Consumer, Proxy
from usersvc.amqp import RelaySettings
from usersvc.http.app import create_app

API = "/api/v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _user(n: int) -> dict[str, object]:
    return {
        "phone": 79160000000 + n,
        "email": f"relay-app-{n}@example.com",
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": None,
    }


async def _health(client: TestClient) -> dict[str, object]:
    response = await client.post(f"{API}/healthcheck")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == 200
    return body["result"]


async def _until(predicate, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        # Polling what a client sees (the health check), not an internal event.
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_command_through_the_api_reaches_the_broker_with_its_requests_traceparent(
    aiohttp_client,
    database_url: str,
    session_database_url: str,
    settings: RelaySettings,
    consumer: Consumer,
) -> None:
    client = await aiohttp_client(
        create_app(database_url, relay=settings, relay_database_url=session_database_url)
    )
    response = await client.post(
        f"{API}/users/create_user", json=_user(1), headers={"traceparent": TRACEPARENT}
    )
    assert response.status == 201
    user_id = (await response.json())["result"]

    await consumer.wait_count(1)
    [message] = consumer.messages
    body = json.loads(message.body)
    assert body["event_name"] == "UserCreated"
    assert body["user_id"] == user_id
    assert message.header.properties.headers["traceparent"] == TRACEPARENT


async def test_the_health_check_reports_the_broker_the_lead_and_an_empty_backlog(
    aiohttp_client,
    database_url: str,
    session_database_url: str,
    settings: RelaySettings,
    consumer: Consumer,
) -> None:
    client = await aiohttp_client(
        create_app(database_url, relay=settings, relay_database_url=session_database_url)
    )
    await client.post(f"{API}/users/create_user", json=_user(2))
    await consumer.wait_count(1)

    async def settled() -> bool:
        result = await _health(client)
        return result["relay_leader"] is True and result["outbox_backlog"] == 0

    await _until(settled)
    result = await _health(client)
    assert result["status"] == "OK"
    assert result["broker"] == "connected"
    assert result["relay_last_error"] is None


async def test_while_the_broker_is_unreachable_commands_succeed_and_health_stays_ok(
    aiohttp_client,
    database_url: str,
    session_database_url: str,
    settings: RelaySettings,
    consumer: Consumer,
    proxy: Proxy,
) -> None:
    commands = 3
    client = await aiohttp_client(
        create_app(
            database_url,
            relay=evolve(settings, amqp_url=proxy.url),
            relay_database_url=session_database_url,
        )
    )
    proxy.cut()

    async def disconnected() -> bool:
        return (await _health(client))["broker"] == "disconnected"

    await _until(disconnected)
    for n in range(commands):
        response = await client.post(f"{API}/users/create_user", json=_user(10 + n))
        assert response.status == 201
    result = await _health(client)
    assert result["status"] == "OK"
    assert result["outbox_backlog"] == commands

    proxy.restore()
    await consumer.wait_count(commands)

    async def drained() -> bool:
        result = await _health(client)
        return result["broker"] == "connected" and result["outbox_backlog"] == 0

    await _until(drained)


async def test_the_health_check_names_a_relay_failure_by_its_type_only(
    aiohttp_client, database_url: str, settings: RelaySettings
) -> None:
    # Nothing listens there: the error's text names the host and port, which the
    # health check (answered to anyone who reaches it) does not repeat.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"amqp://someone:secret@127.0.0.1:{port}/"
    client = await aiohttp_client(create_app(database_url, relay=evolve(settings, amqp_url=url)))

    async def failed() -> bool:
        return (await _health(client))["relay_last_error"] is not None

    await _until(failed)
    result = await _health(client)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", result["relay_last_error"]), result
    assert result["relay_last_error"].endswith("Error"), result
    text = json.dumps(result)
    assert str(port) not in text
    assert "127.0.0.1" not in text
