"""The service as its image runs it, without a container: `usersvc migrate` as compose's
one-shot service runs it, then the Dockerfile's CMD (gunicorn) with compose's environment,
waited on with the Dockerfile's HEALTHCHECK command, then given traffic."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiormq
import pytest
from attrs import frozen
from psycopg import sql

from tests.conftest import AMQP_URL, _admin, _drop, _url_for
from tests.deploy.support import (
    REPO,
    compose,
    free_port,
    image_cmd,
    image_healthcheck,
    runtime_tree,
    samples,
)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@frozen
class Service:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            return response.read().decode()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def service_environment(database_url: str, exchange: str, port: int) -> dict[str, str]:
    """compose's environment for the service, pointed at this machine's PostgreSQL and
    RabbitMQ, and run from this checkout's virtual environment (the image's PATH has its
    venv first too). No Jaeger runs here, so no trace exporter either."""
    environment = {k: str(v) for k, v in compose()["services"]["usersvc"]["environment"].items()}
    environment |= {
        "USERSVC_DATABASE_URL": database_url,
        "USERSVC_AMQP_URL": AMQP_URL,
        "USERSVC_AMQP_EXCHANGE": exchange,
        "USERSVC_AMQP_QUEUE": exchange,
        "USERSVC_HOST": "127.0.0.1",
        "USERSVC_PORT": str(port),
    }
    for name in list(environment):
        if name.startswith("OTEL_EXPORTER_"):
            del environment[name]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("USERSVC_", "OTEL_"))}
    venv_bin = str(Path(sys.executable).parent)
    return base | environment | {"PATH": f"{venv_bin}{os.pathsep}{base.get('PATH', '')}"}


def healthy(environment: dict[str, str]) -> bool:
    """The image's HEALTHCHECK command, run as Docker would run it."""
    command = image_healthcheck()
    result = subprocess.run(command, env=environment, capture_output=True, timeout=10, check=False)
    return result.returncode == 0


def stop(process: subprocess.Popen[bytes]) -> int:
    """The image's STOPSIGNAL (SIGTERM); SIGKILL to the group only if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def traffic(service: Service) -> None:
    """Requests that reach every route kind and many outcomes: created, conflict, found,
    not found, changed, deleted and recovered, invalid body, unmatched path, health."""
    n = uuid4().int % 10**8
    body = {
        "phone": 79000000000 + n,
        "email": f"deploy{n}@example.com",
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": None,
    }
    status, created = service.request("POST", "/api/v1/users/create_user", body)
    assert status == 201, created
    user_id = created["result"]
    steps: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/v1/users/create_user", body, 409),
        ("GET", f"/api/v1/users/{user_id}", None, 200),
        ("GET", f"/api/v1/users/{uuid4()}", None, 404),
        (
            "PUT",
            "/api/v1/users/change-fullname",
            {"user_id": user_id, "firstname": "Petr", "lastname": "Ivanov", "middlename": None},
            200,
        ),
        ("PUT", "/api/v1/users/recovery-user", {"user_id": user_id}, 400),
        ("DELETE", "/api/v1/users/delete-user-temporarily", {"user_id": user_id}, 200),
        ("PUT", "/api/v1/users/recovery-user", {"user_id": user_id}, 200),
        ("POST", "/api/v1/users/create_user", {"phone": "not a number"}, 422),
        ("GET", "/no/such/path", None, 404),
        ("POST", "/api/v1/healthcheck", None, 200),
    ]
    for method, path, payload, expected in steps:
        status, answer = service.request(method, path, payload)
        assert status == expected, (method, path, status, answer)


def wait_for_relay(service: Service, timeout: float = 30.0) -> str:
    """/metrics once the relay has published the traffic's events (backlog back to 0)."""
    deadline = time.monotonic() + timeout
    while True:
        text = service.metrics()
        published = samples(text, "usersvc_relay_events_published_total")
        backlog = [value for _, value in samples(text, "usersvc_outbox_backlog")]
        if published and backlog and not any(backlog):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"the relay published nothing within {timeout}s:\n{service.log_tail()}")
        time.sleep(0.5)


async def _delete_broker_objects(name: str) -> None:
    async with aiormq.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


@contextlib.contextmanager
def started_service() -> Iterator[Service]:
    """A migrated database of its own, then the image's CMD on it, healthy by the image's
    HEALTHCHECK; everything it made is removed afterwards."""
    database = f"usersvc_test_deploy_{uuid4().hex[:10]}"
    exchange = f"users.test.deploy.{uuid4().hex[:12]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    port = free_port()
    environment = service_environment(_url_for(database), exchange, port)
    with tempfile.TemporaryDirectory(prefix="usersvc-deploy-") as scratch:
        # Where gunicorn's workers keep the metrics it sums (a fresh directory of its own).
        environment["PROMETHEUS_MULTIPROC_DIR"] = str(Path(scratch, "metrics"))
        Path(scratch, "metrics").mkdir()
        log = Path(scratch) / "service.log"
        # gunicorn runs in a copy of what the image's runtime stage holds, so a file the
        # service needs and the Dockerfile forgot to copy fails here.
        app = runtime_tree(Path(scratch, "app"))
        process = None
        try:
            migrate = compose()["services"]["migrate"]["command"]
            result = subprocess.run(
                migrate, env=environment, cwd=REPO, capture_output=True, timeout=60, check=False
            )
            assert result.returncode == 0, result.stderr.decode()
            with log.open("wb") as out:
                process = subprocess.Popen(
                    image_cmd(),
                    cwd=app,
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            running = Service(f"http://127.0.0.1:{port}", port, process, log)
            deadline = time.monotonic() + START_TIMEOUT
            while not healthy(environment):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the service did not become healthy:\n{running.log_tail()}")
                time.sleep(0.5)
            yield running
        finally:
            if process is not None:
                stop(process)
            asyncio.run(_delete_broker_objects(exchange))
            _drop(database)


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    """One running service (gunicorn, compose's worker count) after traffic, shared by the
    session's tests."""
    with started_service() as running:
        traffic(running)
        wait_for_relay(running)
        wait_for_access_line(running, "/metrics")
        yield running


def wait_for_access_line(service: Service, route: str, timeout: float = 10.0) -> None:
    """The service writes a turn's log lines when the turn ends, which may be just after
    the client has its answer: wait for the line of the last request before reading."""
    deadline = time.monotonic() + timeout
    while f'"route":"{route}"' not in service.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no access line for {route}:\n{service.log_tail()}"
        time.sleep(0.05)
