"""Fixtures for the API tests: the app on a fresh migrated database, and its tables."""

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from uuid import uuid4

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.api.support import Snapshot, snapshot
from tests.conftest import AMQP_URL
from tests.relay.support import FAST
from usersvc.amqp import Relay, RelaySettings
from usersvc.amqp.relay import outbox_backlog
from usersvc.http.app import create_app
from usersvc.http.handlers import POOL, QUERIES
from usersvc.telemetry.logs import configure_logging, reset_logging

# Set by tests/telemetry/test_no_personal_data.py, which runs this suite again in a
# child process: every log line and every request body sent goes to files there, and
# each test's events are published by the relay to the real broker (an exchange and
# queue the parent names, reads and deletes), its log lines captured with the rest.
CAPTURE = os.environ.get("USERSVC_TEST_CAPTURE_DIR")
CAPTURE_NAME = os.environ.get("USERSVC_TEST_CAPTURE_NAME", f"users.privacy.{uuid4().hex[:12]}")


@pytest.fixture
async def api(aiohttp_client, database_url: str) -> AsyncIterator[TestClient]:
    """The service over HTTP, on this test's own database."""
    client = await aiohttp_client(create_app(database_url))
    yield client
    if CAPTURE:
        await _publish_the_outbox(client.app, database_url)


async def _publish_the_outbox(app: web.Application, database_url: str) -> None:
    """The relay publishes what the test committed, then stops. After the test, not
    beside it: tests compare the outbox before and after a command. A test that broke
    its database leaves nothing to publish."""
    pool, queries = app[POOL], app[QUERIES]
    try:
        if not await outbox_backlog(pool, queries):
            return
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return
    settings = RelaySettings(AMQP_URL, CAPTURE_NAME, CAPTURE_NAME, **FAST)
    relay = Relay(pool, database_url, queries, settings)
    running = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(30):
            # The outbox as the relay empties it: no event tells when it is empty.
            while await outbox_backlog(pool, queries):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        relay.stop()
        await running


@pytest.fixture
def tables(pool: asyncpg.Pool) -> Callable[[], Awaitable[Snapshot]]:
    """``await tables()``: every row of users, linked_accounts and outbox, to compare."""

    async def take() -> Snapshot:
        return await snapshot(pool)

    return take


if CAPTURE:

    @pytest.fixture(scope="session", autouse=True)
    def _capture_logs() -> Iterator[None]:
        with (Path(CAPTURE) / "log.jsonl").open("w", encoding="utf-8") as stream:
            configure_logging("DEBUG", "json", stream)
            try:
                yield
            finally:
                reset_logging()

    @pytest.fixture
    def aiohttp_client(aiohttp_client):  # the plugin's, sending through a recorder
        sent = (Path(CAPTURE) / "sent.jsonl").open("a", encoding="utf-8")

        async def record(_session, _context, params) -> None:
            payload = params.chunk if hasattr(params, "chunk") else str(params.url).encode()
            sent.write(json.dumps(payload.decode("utf-8", "replace")) + "\n")

        recorder = aiohttp.TraceConfig()
        recorder.on_request_start.append(record)
        recorder.on_request_chunk_sent.append(record)

        async def make(app, **kwargs):
            return await aiohttp_client(app, trace_configs=[recorder], **kwargs)

        yield make
        sent.close()
