"""gunicorn with two workers, and ``usersvc serve``: metrics summed, SIGTERM graceful."""

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import psycopg

from tests.telemetry.processes import (
    environment,
    free_port,
    gunicorn,
    json_lines,
    request,
    stop,
    usersvc,
    wait_ready,
)
from tests.telemetry.support import parse, value

USER_ROUTE = "/api/v1/users/{user_id}"
BATCH = 64  # requests sent together, each on its own connection
MOST = 2_000  # requests sent at most, waiting for the second worker to take some


class Lines:
    """The server's log, read as it comes (a thread), one JSON object per line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[dict] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self.lines.extend(json_lines(line))

    def pids(self, route: str) -> set[int]:
        return {line["pid"] for line in list(self.lines) if line.get("route") == route}

    def count(self, route: str) -> int:
        return sum(1 for line in list(self.lines) if line.get("route") == route)

    def stop(self) -> None:
        """SIGTERM; waits for exit 0 and the last line."""
        self._process.send_signal(signal.SIGTERM)
        assert self._process.wait(40) == 0
        self._thread.join(10)


def _eventually(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_with_two_gunicorn_workers_every_scrape_shows_the_sum_of_both(
    database_url: str, names: tuple[str, str], tmp_path: Path
) -> None:
    exchange, queue = names
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_HOST="127.0.0.1",
        USERSVC_PORT=str(port),
        USERSVC_AMQP_EXCHANGE=exchange,
        USERSVC_AMQP_QUEUE=queue,
        WEB_CONCURRENCY="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    server = gunicorn(env)
    log = Lines(server)
    try:
        wait_ready(server, port)
        base = f"http://127.0.0.1:{port}"
        sent = 0
        with ThreadPoolExecutor(BATCH) as pool:
            # Concurrent batches until both workers have answered some: which worker
            # accepts a connection is the kernel's choice.
            while sent < MOST and len(log.pids(USER_ROUTE)) < 2:
                urls = [f"{base}/api/v1/users/{uuid4()}" for _ in range(BATCH)]
                assert {status for status, _ in pool.map(request, urls)} == {404}
                sent += BATCH
                _eventually(lambda: len(log.pids(USER_ROUTE)) == 2, within=0.5)
        assert len(log.pids(USER_ROUTE)) == 2, "one worker took every request"

        scrapes = 0
        while scrapes < 200 and len(log.pids("/metrics")) < 2:
            status, text = request(f"{base}/metrics")
            scrapes += 1
            assert status == 200
            samples = parse(text.decode())
            labels = {"method": "GET", "route": USER_ROUTE}
            assert value(samples, "usersvc_http_requests_total", **labels, status="404") == sent
            count = value(samples, "usersvc_http_request_duration_seconds_count", **labels)
            assert count == sent
            assert value(samples, "usersvc_http_requests_in_flight") == 1  # this scrape
            assert value(samples, "usersvc_relay_leader") <= 1
            _eventually(lambda n=scrapes: log.count("/metrics") >= n, within=2)
        assert len(log.pids("/metrics")) == 2, "one worker answered every scrape"
    finally:
        log.stop()
    assert any(line.get("logger", "").startswith("gunicorn") for line in log.lines)


def test_gunicorn_refuses_to_start_without_a_database_url(tmp_path: Path) -> None:
    server = gunicorn(environment(USERSVC_PORT=str(free_port()), WEB_CONCURRENCY="1"))
    output, _ = server.communicate(timeout=60)
    assert server.returncode != 0
    assert "USERSVC_DATABASE_URL" in output


def test_on_sigterm_serve_finishes_the_request_in_flight_and_exits_0(
    database_url: str, names: tuple[str, str]
) -> None:
    exchange, queue = names
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_AMQP_EXCHANGE=exchange,
        USERSVC_AMQP_QUEUE=queue,
    )
    server = usersvc("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    try:
        wait_ready(server, port)
        base = f"http://127.0.0.1:{port}/api/v1/users"
        body = {
            "phone": 79169990001,
            "email": "inflight@example.com",
            "firstname": "Ivan",
            "lastname": "Petrov",
            "middlename": None,
        }
        status, created = request(f"{base}/create_user", body)
        assert status == 201
        user_id = json.loads(created)["result"]
        change = {
            "user_id": user_id,
            "firstname": "Pyotr",
            "lastname": "Ivanov",
            "middlename": None,
        }
        with psycopg.connect(database_url) as blocker, ThreadPoolExecutor(1) as pool:
            # The change waits on this lock: a request in flight when SIGTERM comes.
            blocker.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (user_id,))
            in_flight = pool.submit(request, f"{base}/change-fullname", change, "PUT")
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert not in_flight.done()
            blocker.commit()
            assert in_flight.result(timeout=20)[0] == 200
    finally:
        output = stop(server, signalled=True)
    messages = [line["message"] for line in json_lines(output)]
    assert "outbox relay: stopped" in messages
    # The relay published the event before it stopped: nothing is left behind.
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone() == (
            0,
        )
