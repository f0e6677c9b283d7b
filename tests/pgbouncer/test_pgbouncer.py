"""usersvc behind PgBouncer in transaction mode (Debian's package, started here): the pool
connects although PgBouncer refuses session settings at connect, the settings reach the
server as the role's defaults, the relay's session goes around PgBouncer, and the API and
relay suites pass through it."""

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from uuid import uuid4

import aiormq
import asyncpg
import pytest

from tests.conftest import AMQP_URL, set_role_defaults
from tests.pgbouncer.support import PgBouncer
from tests.telemetry.processes import (
    REPO,
    environment,
    free_port,
    json_lines,
    request,
    stop,
    usersvc,
)
from tests.telemetry.processes import wait_ready as wait_serving
from usersvc.amqp import Relay, RelaySettings
from usersvc.db.pool import SERVER_SETTINGS, create_pool
from usersvc.db.queries import load

# The API and relay suites again, through PgBouncer, in a child pytest: a few minutes.
SUITES = ["tests/api", "tests/relay"]
CHILD_TIMEOUT = 40 * 60


async def _session_settings(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as connection:
        return {name: await connection.fetchval(f"SHOW {name}") for name in SERVER_SETTINGS}


async def test_through_pgbouncer_the_pool_connects_and_its_sessions_have_the_roles_settings(
    pooled_url: str, session_database_url: str, caplog: pytest.LogCaptureFixture
):
    set_role_defaults(session_database_url, SERVER_SETTINGS)
    caplog.set_level(logging.INFO, logger="usersvc.db.pool")
    pool = await create_pool(pooled_url, statement_cache=0)
    try:
        settings = await _session_settings(pool)
        assert await pool.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await pool.close()
    # the server shows each the way it prints it: 15s, 12s, 1min
    assert settings == {
        "statement_timeout": "15s",
        "lock_timeout": "12s",
        "idle_in_transaction_session_timeout": "1min",
    }
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("the server's defaults for the role carry them" in r.message for r in caplog.records)


async def test_through_pgbouncer_a_session_setting_the_role_lacks_is_named_with_its_fix(
    pooled_url: str, caplog: pytest.LogCaptureFixture
):
    pool = await create_pool(pooled_url, statement_cache=0)
    try:
        assert await pool.fetchval("SELECT 1") == 1  # it serves all the same
    finally:
        await pool.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(SERVER_SETTINGS)
    database = pooled_url.rpartition("/")[2]
    for name, value in SERVER_SETTINGS.items():
        fix = f"ALTER ROLE postgres IN DATABASE {database} SET {name} = '{value}'"
        assert any(fix in warning for warning in warnings), (fix, warnings)


async def test_through_pgbouncer_the_roles_statement_timeout_cancels_a_statement_on_the_server(
    pooled_url: str, session_database_url: str
):
    set_role_defaults(session_database_url, {**SERVER_SETTINGS, "statement_timeout": "200ms"})
    pool = await create_pool(pooled_url, statement_cache=0)
    try:
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.execute("SELECT pg_sleep(3)")
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_relay_whose_session_would_go_through_pgbouncer_never_leads_and_says_why(
    pooled_url: str, session_database_url: str, caplog: pytest.LogCaptureFixture
):
    pool = await create_pool(pooled_url, statement_cache=0)
    exchange = f"users.test.{uuid4().hex[:12]}"
    relay = Relay(pool, pooled_url, load(), RelaySettings(AMQP_URL, exchange, exchange))
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(10):
            while relay.health().last_error is None:  # noqa: ASYNC110 - polling its health
                await asyncio.sleep(0.05)
        health = relay.health()
        assert not health.leader
        assert health.last_error == "PoolerRefusedError"  # the health check: the type only
        said = " ".join(r.getMessage() for r in caplog.records if r.name == "usersvc.amqp.relay")
        assert "USERSVC_RELAY_DATABASE_URL" in said  # the log: what to fix
        assert "unsupported startup parameter" in said
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await pool.close()


async def _next_event(queue: str, within: float = 20.0) -> dict:
    async with aiormq.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        async with asyncio.timeout(within):
            while True:
                message = await channel.basic_get(queue, no_ack=True)
                if message.body:
                    return json.loads(message.body)
                await asyncio.sleep(0.1)


async def _drop_exchange(exchange: str) -> None:
    async with aiormq.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await channel.queue_delete(exchange)
        await channel.exchange_delete(exchange)


async def test_usersvc_serves_through_pgbouncer_and_relays_on_its_own_direct_session(
    pgbouncer: PgBouncer, pooled_url: str, session_database_url: str
):
    """As an operator runs it: the settings in the environment, `usersvc serve` as a process."""
    set_role_defaults(session_database_url, SERVER_SETTINGS)
    port = free_port()
    exchange = f"users.test.{uuid4().hex[:12]}"
    env = environment(
        USERSVC_DATABASE_URL=pooled_url,
        USERSVC_DATABASE_STATEMENT_CACHE="0",
        USERSVC_RELAY_DATABASE_URL=session_database_url,
        USERSVC_AMQP_URL=AMQP_URL,
        USERSVC_AMQP_EXCHANGE=exchange,
        USERSVC_AMQP_QUEUE=exchange,
        USERSVC_PORT=str(port),
        USERSVC_HOST="127.0.0.1",
        USERSVC_AUTH="none",  # chosen, so nothing warns of it
    )
    process = usersvc("serve", env=env)
    try:
        wait_serving(process, port)
        base = f"http://127.0.0.1:{port}/api/v1"
        body = {"email": "bob@example.com", "phone": 79001234567}
        body |= {"firstname": "Bob", "lastname": "Ivanov", "middlename": None}
        for _ in range(3):  # more than once: no prepared statement is kept between them
            status, answer = request(f"{base}/users/create_user", body)
            assert status in {201, 409}, answer
        status, answer = request(f"{base}/users?email=bob@example.com")
        assert status == 200, answer
        [user] = json.loads(answer)["result"]["users"]
        event = await _next_event(exchange)
        assert event["event_name"] == "UserCreated"
        assert event["user_id"] == user["user_id"]
        output = stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        await _drop_exchange(exchange)
    lines = json_lines(output)
    # the pool took the role's settings; neither it nor the relay (direct) warned
    assert any("the server's defaults for the role carry them" in line["message"] for line in lines)
    database = [line for line in lines if line["logger"].startswith(("usersvc.db", "usersvc.amqp"))]
    assert [line for line in database if line["level"] not in {"debug", "info"}] == []
    assert "unsupported startup parameter" not in output


@pytest.mark.long
def test_the_api_and_relay_suites_pass_through_pgbouncer_in_transaction_mode(
    pgbouncer: PgBouncer,
):
    """The suites in a child pytest, the service's connections through PgBouncer
    (tests/conftest.py: USERSVC_TEST_POOLER_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["USERSVC_TEST_POOLER_URL"] = pgbouncer.url
    command = [sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    tail = "\n".join(result.stdout.splitlines()[-60:])
    assert result.returncode == 0, f"{tail}\n{result.stderr[-3000:]}"
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed, tail
    assert int(passed[1]) > 300, tail
    assert not re.search(r"\d+ (skipped|xfailed)", tail), tail
