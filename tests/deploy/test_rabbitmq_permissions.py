"""The broker's least privilege (monitoring/rabbitmq/definitions.json): the service's user may
configure, write and read only its exchange and queue, and has no management tag. On a real
broker, a user made with exactly the tags and permissions the definitions give (as the
stack's entrypoint writes them) runs the service and its relay, which create a user and
publish its event; and that user cannot declare or publish to another exchange, nor read or
bind another queue. Each test has its own vhost and user, deleted after it."""

import asyncio
import json
import re
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiormq
import pytest
from aiormq.exceptions import ChannelAccessRefused

from tests.conftest import AMQP_URL
from tests.deploy.rabbitmq import (
    DEFINITIONS,
    SERVICE_USER,
    ctl,
    render,
    service_user,
    url_for,
)
from tests.deploy.support import compose
from tests.relay.support import FAST
from usersvc.amqp import RelaySettings
from usersvc.http.app import create_app

API = "/api/v1"
ENVIRONMENT = compose()["services"]["usersvc"]["environment"]
EXCHANGE = ENVIRONMENT["USERSVC_AMQP_EXCHANGE"]
QUEUE = ENVIRONMENT["USERSVC_AMQP_QUEUE"]
# Tags that open the management UI or API (any of them): the service needs none.
MANAGEMENT_TAGS = {"management", "policymaker", "monitoring", "administrator"}


def test_the_services_user_has_no_tag_and_its_exchange_and_queue_only() -> None:
    user, permission = service_user(DEFINITIONS)
    assert user["tags"] == []
    assert not MANAGEMENT_TAGS & set(user["tags"])
    assert permission["vhost"] == "/"
    assert "password_hash" not in user  # the password comes from .env, not this file
    for kind in ("configure", "write", "read"):
        allowed = re.compile(permission[kind])
        assert allowed.search(EXCHANGE), kind
        assert allowed.search(QUEUE), kind
        # Neither the broker's own exchanges (amq.default is the nameless one, through
        # which any queue can be written to) nor a name beside or around its own.
        for other in ("amq.default", "amq.topic", "amq.direct", "", "users.audit", "xusers"):
            assert not allowed.search(other), (kind, other)


def test_the_entrypoint_writes_the_definitions_with_the_passwords_of_the_environment(
    tmp_path: Path,
) -> None:
    written = tmp_path / "run" / "definitions.json"
    passwords = {"RABBITMQ_PASSWORD": "s3rv1ce-Pass", "RABBITMQ_ADMIN_PASSWORD": "adm1n.Pass~"}
    run = render(written, **passwords)
    assert run.returncode == 0, run.stderr
    assert written.stat().st_mode & 0o077 == 0  # the broker's user's alone
    definitions = json.loads(written.read_text())
    users = {u["name"]: u for u in definitions["users"]}
    assert users[SERVICE_USER]["password"] == passwords["RABBITMQ_PASSWORD"]
    assert users["admin"]["password"] == passwords["RABBITMQ_ADMIN_PASSWORD"]
    # Nothing else changed, and no placeholder is left.
    for user in definitions["users"]:
        user.pop("password")
    for user in DEFINITIONS["users"]:
        assert re.fullmatch(r"@[A-Z_]+@", user["password"])
    assert definitions == {
        **DEFINITIONS,
        "users": [{k: v for k, v in u.items() if k != "password"} for u in DEFINITIONS["users"]],
    }
    assert "@" not in written.read_text().replace("@RABBITMQ", "")


@pytest.mark.parametrize(
    ("password", "said"),
    [("", "is not set"), ("has space", "letters, digits"), ("a/b@c", "letters, digits")],
)
def test_the_entrypoint_refuses_a_missing_or_unsafe_password_and_starts_nothing(
    tmp_path: Path, password: str, said: str
) -> None:
    written = tmp_path / "definitions.json"
    run = render(written, RABBITMQ_PASSWORD=password, RABBITMQ_ADMIN_PASSWORD="fine")
    assert run.returncode == 2
    assert said in run.stderr
    assert password not in run.stderr or not password
    assert not written.exists()


@pytest.fixture(scope="module")
def service_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A vhost, and a user of its own with the tags and permissions the definitions give
    the service's user, its password as the entrypoint writes it; (vhost, the user's URL).
    One for the module: each `rabbitmqctl` takes seconds."""
    password = secrets.token_hex(16)
    written = tmp_path_factory.mktemp("rabbitmq") / "definitions.json"
    run = render(written, RABBITMQ_PASSWORD=password, RABBITMQ_ADMIN_PASSWORD="unused")
    assert run.returncode == 0, run.stderr
    user, permission = service_user(json.loads(written.read_text()))
    vhost = f"usersvc_test_{uuid4().hex[:10]}"
    name = f"usersvc_test_{uuid4().hex[:10]}"  # users are the broker's, not the vhost's
    ctl("add_vhost", vhost)
    try:
        admin = urllib.parse.urlsplit(AMQP_URL).username or "guest"
        ctl("set_permissions", "-p", vhost, admin, ".*", ".*", ".*")
        ctl("add_user", name, user["password"])
        try:
            ctl("set_user_tags", name, *user["tags"])
            ctl(
                "set_permissions",
                "-p",
                vhost,
                name,
                permission["configure"],
                permission["write"],
                permission["read"],
            )
            yield vhost, url_for(vhost, name, user["password"])
        finally:
            ctl("delete_user", name)
    finally:
        ctl("delete_vhost", vhost)


@pytest.fixture
async def admin_channel(service_broker: tuple[str, str]) -> AsyncIterator[Any]:
    """A channel of the broker's administrator (the tests' own user) in the vhost."""
    vhost, _ = service_broker
    async with aiormq.connect(url_for(vhost)) as connection:
        yield await connection.channel()


async def test_the_service_runs_and_publishes_with_exactly_the_definitions_permissions(
    aiohttp_client, database_url: str, service_broker: tuple[str, str], admin_channel: Any
) -> None:
    _, url = service_broker
    settings = RelaySettings(amqp_url=url, exchange=EXCHANGE, queue=QUEUE, **FAST)
    client = await aiohttp_client(create_app(database_url, relay=settings))
    user = {
        "phone": 79_000_000_000 + uuid4().int % 10**9,
        "email": f"least.{uuid4().hex[:8]}@example.com",
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": None,
    }
    response = await client.post(f"{API}/users/create_user", json=user)
    assert response.status == 201
    user_id = (await response.json())["result"]

    for _ in range(200):  # the relay declares, binds, publishes and is confirmed
        health = (await (await client.post(f"{API}/healthcheck")).json())["result"]
        if health["outbox_backlog"] == 0:
            break
        await asyncio.sleep(0.05)
    assert health["broker"] == "connected", health
    assert health["relay_last_error"] is None, health
    assert health["outbox_backlog"] == 0, health
    message = await admin_channel.basic_get(QUEUE, no_ack=True)
    event = json.loads(message.body)
    assert (event["event_name"], event["user_id"]) == ("UserCreated", user_id)


async def test_the_services_user_can_touch_no_other_exchange_or_queue(
    service_broker: tuple[str, str], admin_channel: Any
) -> None:
    _, url = service_broker
    other = f"other.{uuid4().hex[:8]}"
    await admin_channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    await admin_channel.queue_declare(other)
    await admin_channel.basic_publish(b"someone else's", routing_key=other)

    async with aiormq.connect(url) as connection:

        async def refused(action) -> None:
            channel = await connection.channel(publisher_confirms=True)
            with pytest.raises(ChannelAccessRefused):
                await action(channel)

        # Configure: no other exchange or queue.
        await refused(lambda c: c.exchange_declare(other, exchange_type="topic"))
        await refused(lambda c: c.queue_declare(other))
        # Write: not the broker's exchanges (the nameless default reaches every queue).
        await refused(lambda c: c.basic_publish(b"x", exchange="amq.topic", routing_key="a"))
        await refused(lambda c: c.basic_publish(b"x", exchange="", routing_key=other))
        # Write on another queue (a binding of it), read from it.
        await refused(lambda c: c.queue_bind(other, EXCHANGE, routing_key="#"))
        await refused(lambda c: c.basic_get(other))
        await refused(lambda c: c.basic_consume(other, lambda _: None))
        # Its own exchange it may declare and publish to, on a channel still open.
        channel = await connection.channel(publisher_confirms=True)
        await channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        await channel.basic_publish(b"{}", exchange=EXCHANGE, routing_key="UserCreated")

    kept = await admin_channel.queue_declare(other, passive=True)
    assert kept.message_count == 1  # still there, unread
