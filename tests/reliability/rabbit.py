"""A RabbitMQ vhost and user of the test's own (rabbitmqctl), deleted after it, and a
queue the test declares to count what the relay published."""

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID, uuid4

import aiormq
import attrs

from tests.conftest import AMQP_URL


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@attrs.frozen
class Vhost:
    name: str  # also the user's
    url: str

    def revoke(self) -> None:
        """The user loses its rights and its connections are closed (as an operator might)."""
        rabbitmqctl("clear_permissions", "-p", self.name, self.name)
        for line in rabbitmqctl("list_connections", "user", "pid").splitlines():
            user, _, pid = line.partition("\t")
            if user == self.name and pid:
                # it may be gone already
                subprocess.run(
                    ["rabbitmqctl", "-q", "close_connection", pid, "test: broker fault"],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )

    def grant(self) -> None:
        rabbitmqctl("set_permissions", "-p", self.name, self.name, ".*", ".*", ".*")


@contextmanager
def private_vhost() -> Iterator[Vhost]:
    """A vhost and a user with rights on it only (never guest's or the default vhost)."""
    name = f"usersvc-test-{uuid4().hex[:10]}"
    password = uuid4().hex
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("add_user", name, password)
        try:
            broker = urlsplit(AMQP_URL)
            host = f"{broker.hostname}:{broker.port or 5672}"
            vhost = Vhost(name, f"amqp://{name}:{password}@{host}/{quote(name, safe='')}")
            vhost.grant()
            yield vhost
        finally:
            rabbitmqctl("delete_user", name)
    finally:
        rabbitmqctl("delete_vhost", name)


async def declare_counting_queue(amqp_url: str, exchange: str, queue: str) -> None:
    """A durable queue bound to every event of the exchange (declared as the relay does)."""
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(queue, durable=True)
        await channel.queue_bind(queue, exchange, routing_key="#")
    finally:
        await connection.close()


async def drain(
    amqp_url: str, queue: str, expected: set[UUID], within: float
) -> list[dict[str, Any]]:
    """Every message in the queue, in order, until all of ``expected`` were seen and the
    queue is empty (or ``within`` seconds passed): ``{"message_id", "user_id"}`` each."""
    import orjson

    connection = await aiormq.connect(amqp_url)
    seen: list[dict[str, Any]] = []
    ids: set[UUID] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        channel = await connection.channel()
        while loop.time() < deadline:
            message = await channel.basic_get(queue, no_ack=True)
            if message is None or message.body is None or not message.body:
                if expected <= ids:
                    break
                await asyncio.sleep(0.2)
                continue
            message_id = UUID(message.header.properties.message_id)
            ids.add(message_id)
            seen.append(
                {"message_id": message_id, "user_id": UUID(orjson.loads(message.body)["user_id"])}
            )
    finally:
        await connection.close()
    return seen


def check_delivery(events: list[dict[str, Any]], messages: list[dict[str, Any]]) -> int:
    """Every committed event reached the queue (by message_id), each user's in commit
    order (duplicates allowed); the number of duplicates."""
    committed = [e["event_id"] for e in events]
    delivered = {m["message_id"] for m in messages}
    lost = [event_id for event_id in committed if event_id not in delivered]
    assert not lost, f"{len(lost)} committed events never reached RabbitMQ"
    first_seen: dict[UUID, list[UUID]] = {}
    seen: set[UUID] = set()
    for message in messages:
        if message["message_id"] not in seen:
            seen.add(message["message_id"])
            first_seen.setdefault(message["user_id"], []).append(message["message_id"])
    by_user: dict[UUID, list[UUID]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], []).append(event["event_id"])
    for user_id, order in by_user.items():
        assert first_seen.get(user_id) == order, f"user {user_id}: events out of commit order"
    return len(messages) - len(seen)
