"""Fixtures for the API tests: the app on a fresh migrated database, and its tables."""

import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import Snapshot, snapshot
from usersvc.http.app import create_app
from usersvc.telemetry.logs import configure_logging, reset_logging


@pytest.fixture
async def api(aiohttp_client, database_url: str) -> TestClient:
    """The service over HTTP, on this test's own database."""
    return await aiohttp_client(create_app(database_url))


@pytest.fixture
def tables(pool: asyncpg.Pool) -> Callable[[], Awaitable[Snapshot]]:
    """``await tables()``: every row of users, linked_accounts and outbox, to compare."""

    async def take() -> Snapshot:
        return await snapshot(pool)

    return take


# Set by tests/telemetry/test_no_personal_data.py, which runs this suite again in a
# child process: every log line and every request body sent goes to files there.
CAPTURE = os.environ.get("USERSVC_TEST_CAPTURE_DIR")

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
