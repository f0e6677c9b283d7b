"""Fixtures for the API tests: the app on a fresh migrated database, and its tables."""

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import Snapshot, snapshot
from usersvc.http.app import create_app


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
