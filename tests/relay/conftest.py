"""Fixtures of the relay tests: an exchange and queue per test, a consumer, relays, a proxy.

Every test publishes to its own uuid-named exchange and queue (deleted at the end),
so tests never see each other's messages, nor anything on the real ``users``.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import aiormq
import asyncpg
import pytest
from attrs import evolve

from tests.relay.support import FAST, Consumer, Proxy, StartRelay
from usersvc.amqp import Relay, RelaySettings
from usersvc.db.queries import Queries
from usersvc.db.users import Users


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """A channel straight to RabbitMQ (not through any proxy), for the test's own use."""
    async with aiormq.connect(amqp_url) as connection:
        yield await connection.channel()


@pytest.fixture
async def names(broker: aiormq.abc.AbstractChannel) -> AsyncIterator[tuple[str, str]]:
    """This test's exchange and queue, deleted at its end."""
    suffix = uuid4().hex[:12]
    exchange, queue = f"users.test.{suffix}", f"users.test.{suffix}"
    try:
        yield exchange, queue
    finally:
        await broker.queue_delete(queue)
        await broker.exchange_delete(exchange)


@pytest.fixture
async def consumer(
    broker: aiormq.abc.AbstractChannel, names: tuple[str, str]
) -> AsyncIterator[Consumer]:
    """Consumes the test's queue; declared as the relay declares it, whoever comes first."""
    exchange, queue = names
    await broker.exchange_declare(exchange, exchange_type="topic", durable=True)
    await broker.queue_declare(queue, durable=True)
    await broker.queue_bind(queue, exchange, routing_key="#")
    found = Consumer()
    consuming = await broker.basic_consume(queue, found._on_message, no_ack=True)
    yield found
    await broker.basic_cancel(consuming.consumer_tag)


@pytest.fixture
def settings(amqp_url: str, names: tuple[str, str]) -> RelaySettings:
    exchange, queue = names
    return RelaySettings(amqp_url=amqp_url, exchange=exchange, queue=queue, **FAST)


@pytest.fixture
def users(pool: asyncpg.Pool, queries: Queries) -> Users:
    return Users(pool, queries)


@pytest.fixture
async def start_relay(
    pool: asyncpg.Pool, session_database_url: str, queries: Queries, settings: RelaySettings
) -> AsyncIterator[StartRelay]:
    """Starts relays (cancelled at the end); keyword arguments override the settings.
    Their sessions are on the database directly, their pool may go through a pooler."""
    tasks: list[asyncio.Task[None]] = []

    async def start(
        *,
        kind: type[Relay] = Relay,  # or a test's own subclass
        relay_pool: asyncpg.Pool | None = None,
        relay_database_url: str | None = None,
        **overrides: Any,
    ) -> tuple[Any, asyncio.Task[None]]:
        relay = kind(
            relay_pool or pool,
            relay_database_url or session_database_url,
            queries,
            evolve(settings, **overrides),
        )
        task = asyncio.create_task(relay.run(), name="relay")
        tasks.append(task)
        return relay, task

    try:
        yield start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[Proxy]:
    found = Proxy(amqp_url)
    await found.start()
    try:
        yield found
    finally:
        await found.stop()
