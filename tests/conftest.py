"""Shared fixtures: real PostgreSQL and RabbitMQ, databases made and dropped here.

Each test gets its own database, copied from a migrated template made once per
run, so tests never see each other's rows and never touch data they did not make.

With USERSVC_TEST_POOLER_URL set (tests/pgbouncer runs the API and relay suites so, in
a child pytest), the service's connections go through that PgBouncer in transaction
mode, as USERSVC_DATABASE_URL would send them in production: ``database_url`` leads
through it, with the statement cache off and the session settings as the role's
defaults in the test's database, while ``session_database_url`` (the relay's session,
as USERSVC_RELAY_DATABASE_URL) and the tests' administration go to PostgreSQL directly.
"""

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from uuid import uuid4

import asyncpg
import psycopg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from psycopg import sql

from usersvc.db import pool as pool_module
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import Queries, load
from usersvc.telemetry.tracing import configure_tracing

ADMIN_URL = os.environ.get(
    "USERSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("USERSVC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# postgresql://user@host:port of a PgBouncer in front of ADMIN_URL's server (no database).
POOLER_URL = os.environ.get("USERSVC_TEST_POOLER_URL", "").rstrip("/")
if POOLER_URL:
    # What USERSVC_DATABASE_STATEMENT_CACHE=0 makes the service do: PgBouncer 1.18
    # (Debian 12's) keeps no prepared statement across transactions.
    pool_module.STATEMENT_CACHE = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-long",
        action="store_true",
        help="also run the tests marked long (what .ci/run does)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --run-long the long tests are deselected (not skipped: not passed off as run)."""
    if config.getoption("--run-long"):
        return
    long = [item for item in items if item.get_closest_marker("long")]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


def _url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def _drop(database: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated once per run; every test's database is a copy of it."""
    name = f"usersvc_test_template_{uuid4().hex[:10]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        apply_migrations(_url_for(name))
        yield name
    finally:
        _drop(name)


@contextlib.contextmanager
def copy_of(template_database: str, prefix: str = "usersvc_test") -> Iterator[str]:
    """A new database copied from the migrated template (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid4().hex[:12]}"
    _admin(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_database)
        )
    )
    try:
        yield _url_for(name)
    finally:
        _drop(name)


def through_pooler(url: str) -> str:
    """The URL the service's pool is given for a test database: ``url`` itself, or,
    behind the pooler, the same database through it (with the service's session
    settings made the role's defaults there, as docs/operations.md tells operators)."""
    if not POOLER_URL:
        return url
    _, _, database = url.rpartition("/")
    set_role_defaults(url, pool_module.SERVER_SETTINGS)
    return f"{POOLER_URL}/{database}"


def set_role_defaults(url: str, settings: dict[str, str]) -> None:
    """``ALTER ROLE CURRENT_USER IN DATABASE ... SET`` each setting: for new sessions."""
    _, _, database = url.rpartition("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        for name, value in settings.items():
            connection.execute(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET {} = {}").format(
                    sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
                )
            )


@pytest.fixture
def session_database_url(template_database: str) -> Iterator[str]:
    """This test's own database, directly: for the relay's session and the test itself."""
    with copy_of(template_database) as url:
        yield url


@pytest.fixture
def database_url(session_database_url: str) -> str:
    """This test's own database as the service's pool reaches it (see the module)."""
    return through_pooler(session_database_url)


@pytest.fixture
def session_setting(
    monkeypatch: pytest.MonkeyPatch, session_database_url: str
) -> Callable[[str, str], Awaitable[None]]:
    """``await session_setting(name, value)``: one of the pool's session settings, for this
    test's pools made after it: as the service sends it at connect, and behind the pooler
    as the role's default in the test's database, its server connections made anew (the
    admin console's RECONNECT, as an operator does it)."""

    async def change(name: str, value: str) -> None:
        monkeypatch.setitem(pool_module.SERVER_SETTINGS, name, value)
        if not POOLER_URL:
            return
        set_role_defaults(session_database_url, {name: value})
        _, _, database = session_database_url.rpartition("/")
        console = await asyncpg.connect(f"{POOLER_URL}/pgbouncer", statement_cache_size=0)
        try:
            await console.execute(f'RECONNECT "{database}"')
            await console.execute(f'WAIT_CLOSE "{database}"')
        finally:
            await console.close()

    return change


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database with no tables at all, for what must migrate it itself."""
    name = f"usersvc_test_empty_{uuid4().hex[:10]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _url_for(name)
    finally:
        _drop(name)


@pytest.fixture(scope="session")
def queries() -> Queries:
    return load()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


class SpanCollector(SpanProcessor):
    """Keeps finished spans while a test records (sampling is off otherwise, as in
    production with no OTLP endpoint: spans with ids, nothing recorded)."""

    def __init__(self) -> None:
        self.recording = False
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class Switch(Sampler):
    def __init__(self, collector: SpanCollector) -> None:
        self._collector = collector

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        chosen = ALWAYS_ON if self._collector.recording else ALWAYS_OFF
        return chosen.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "on while a test records"


_collector = SpanCollector()


@pytest.fixture(scope="session", autouse=True)
def _tracing() -> None:
    """Instrumented as the service runs, before any app is made."""
    configure_tracing({}, processor=_collector, sampler=Switch(_collector))


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    """The spans this test's code finishes (a live list)."""
    _collector.spans = []
    _collector.recording = True
    try:
        yield _collector.spans
    finally:
        _collector.recording = False
        _collector.spans = []
