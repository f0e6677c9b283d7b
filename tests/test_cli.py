"""The ``usersvc`` command as an operator runs it: real processes, real ports."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from uuid import uuid4

import aiormq
import psycopg
import pytest

from tests.conftest import AMQP_URL
from tests.test_migrations import MIGRATIONS
from usersvc.config import Settings
from usersvc.http.app import openapi_document
from usersvc.http.callers import quotas_of

STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERSVC_")}
    return env | values


def _usersvc(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "usersvc", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _post(url: str, body: object | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    # urllib would say the body is a form
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def _wait_healthy(process: subprocess.Popen, port: int) -> dict:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"usersvc exited {process.returncode}:\n{process.stdout.read()}")
        try:
            status, body = _post(f"http://127.0.0.1:{port}/api/v1/healthcheck")
        except OSError:
            time.sleep(0.2)
            continue
        assert status == 200
        return body
    process.kill()
    pytest.fail(f"usersvc did not answer within {STARTUP_SECONDS} s:\n{process.stdout.read()}")


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"usersvc did not stop on SIGTERM:\n{output}")
    assert process.returncode == 0, output
    return output


def _migrate(env: dict[str, str]) -> str:
    """``usersvc migrate``; its log."""
    return subprocess.run(
        [sys.executable, "-m", "usersvc", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_migrate_creates_the_schema_and_a_second_run_applies_nothing(
    empty_database_url: str,
) -> None:
    env = _env(USERSVC_DATABASE_URL=empty_database_url)
    assert f"{MIGRATIONS} migration(s) applied" in _migrate(env)
    with psycopg.connect(empty_database_url) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    assert {"users", "linked_accounts", "outbox"} <= tables
    assert "0 migration(s) applied" in _migrate(env)


def test_serve_migrates_answers_on_its_port_and_stops_cleanly_on_sigterm(
    empty_database_url: str,
) -> None:
    port = _free_port()
    process = _usersvc(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-relay",
        env=_env(USERSVC_DATABASE_URL=empty_database_url),
    )
    body = _wait_healthy(process, port)
    assert body == {"status": 200, "result": {"status": "OK", "database": "up"}}
    status, created = _post(
        f"http://127.0.0.1:{port}/api/v1/users/create_user",
        {
            "phone": 79161234567,
            "email": "cli@example.com",
            "firstname": "Ivan",
            "lastname": "Petrov",
            "middlename": None,
        },
    )
    assert status == 201
    assert created["status"] == 201
    _stop(process)


def test_relay_alone_publishes_what_the_api_committed(empty_database_url: str) -> None:
    suffix = uuid4().hex[:10]
    exchange, queue = f"users.test.cli.{suffix}", f"users.test.cli.{suffix}"
    env = _env(
        USERSVC_DATABASE_URL=empty_database_url,
        USERSVC_AMQP_URL=AMQP_URL,
        USERSVC_AMQP_EXCHANGE=exchange,
        USERSVC_AMQP_QUEUE=queue,
    )
    port = _free_port()
    api = _usersvc("serve", "--host", "127.0.0.1", "--port", str(port), "--no-relay", env=env)
    relay = None
    try:
        _wait_healthy(api, port)
        status, created = _post(
            f"http://127.0.0.1:{port}/api/v1/users/create_user",
            {
                "phone": 79161234568,
                "email": "relay-cli@example.com",
                "firstname": "Ivan",
                "lastname": "Petrov",
                "middlename": None,
            },
        )
        assert status == 201
        # its metrics and probes on a port of its own, not the default 8001 others may hold
        relay_env = env | {"USERSVC_HOST": "127.0.0.1", "USERSVC_RELAY_PORT": str(_free_port())}
        relay = _usersvc("relay", env=relay_env)
        message = asyncio.run(_first_message(queue, exchange))
        assert json.loads(message)["user_id"] == created["result"]
        _stop(relay)
    finally:
        for process in (api, relay):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()


async def _first_message(queue: str, exchange: str, within: float = 30.0) -> bytes:
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        async with asyncio.timeout(within):
            while True:
                try:
                    message = await channel.basic_get(queue, no_ack=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    # The relay has not declared the queue yet.
                    channel = await connection.channel()
                    message = None
                if message is not None and message.body:
                    return message.body
                await asyncio.sleep(0.1)
    finally:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await connection.close()


def test_with_no_database_configured_serve_starts_an_embedded_postgresql(
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)  # the embedded server runs as its own system user when we are root
    outputs = []
    for _ in range(2):  # a first start, and one on the data the first left
        port = _free_port()
        process = _usersvc(
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-relay",
            # As on a server or in a container: no runtime directory of the session's.
            env={k: v for k, v in _env().items() if k != "XDG_RUNTIME_DIR"},
            cwd=tmp_path,
        )
        try:
            body = _wait_healthy(process, port)
            assert body["result"]["status"] == "OK"
        finally:
            outputs.append(_stop(process))
    for output in outputs:
        assert "embedded development PostgreSQL" in output
        # The warnings of a first start, and only those: the database is the embedded
        # one, and nobody chose who may call (§5: every caller may do everything).
        warnings = [line for line in output.splitlines() if '"level":"warning"' in line]
        assert len(warnings) == 2, warnings
        assert "embedded development PostgreSQL" in warnings[0]
        assert "USERSVC_AUTH is not set" in warnings[1]
        assert "RuntimeDirWarning" not in output
    assert (tmp_path / ".pgdata" / "PG_VERSION").exists()
    # Nothing the service sent made the embedded server log an error (yoyo's lock table
    # created again, its probe of transactional DDL).
    server_log = (tmp_path / ".pgdata" / "log").read_text()
    assert "ERROR" not in server_log, server_log


def test_usersvc_openapi_prints_the_served_document_without_a_database():
    # No database setting at all, and nothing listening where one would be.
    env = _env(USERSVC_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nope")
    done = subprocess.run(
        [sys.executable, "-m", "usersvc", "openapi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # as the settings would serve it: no tokens asked (USERSVC_AUTH unset), quotas counted
    assert json.loads(done.stdout) == openapi_document(None, quotas_of(Settings.from_env({})))
    assert done.stderr == ""
