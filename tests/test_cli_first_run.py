"""The usersvc command on a first run: serve without naming the command, a clean
--help, --version, and settings that cannot work stopping it with one clear line."""

import contextlib
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_cli import _env, _free_port, _post, _stop, _usersvc, _wait_healthy
from tests.test_migrations import MIGRATIONS
from usersvc import __version__
from usersvc.config import DEFAULTS

SECRET = "hunter2-secret"


def _run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "usersvc", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line(run: subprocess.CompletedProcess) -> str:
    """The only line the command printed (stdout and stderr together)."""
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) == 1, run.stdout + run.stderr
    assert "Traceback" not in lines[0]
    return lines[0]


def test_serve_is_the_default_command_and_takes_host_and_port(empty_database_url: str):
    port = _free_port()
    process = _usersvc(
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-relay",
        env=_env(USERSVC_DATABASE_URL=empty_database_url),
    )
    try:
        body = _wait_healthy(process, port)
        assert body["result"]["status"] == "OK"
        status, _ = _post(f"http://127.0.0.1:{port}/api/v1/healthcheck")
        assert status == 200
    finally:
        _stop(process)


def test_help_reads_cleanly_and_lists_every_setting():
    run = _run("--help")
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "``" not in text  # no reStructuredText left in the help
    assert "usersvc [serve] [--host HOST] [--port PORT] [--no-relay]" in text
    for name in DEFAULTS:
        assert name in text, name
    serve = _run("serve", "--help")
    assert serve.returncode == 0
    assert "--no-relay" in serve.stdout


def test_version_prints_the_version():
    run = _run("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"usersvc {__version__}"


BAD_SETTINGS = [
    ({"USERSVC_PORT": "abc"}, "USERSVC_PORT"),
    ({"USERSVC_PORT": "70000"}, "USERSVC_PORT"),
    ({"USERSVC_DATABASE_URL": f"postgresql://bob:{SECRET}@db:abc/users"}, "USERSVC_DATABASE_URL"),
    ({"USERSVC_DATABASE_URL": f"mysql://bob:{SECRET}@db/users"}, "USERSVC_DATABASE_URL"),
    ({"USERSVC_DATABASE_URL": f"bob:{SECRET}@db/users"}, "USERSVC_DATABASE_URL"),
    # Well-formed for a URL parser, refused by the driver: still a bad setting.
    (
        {"USERSVC_DATABASE_URL": f"postgresql://bob:{SECRET}@127.0.0.1/users?sslmode=bogus"},
        "USERSVC_DATABASE_URL",
    ),
    ({"USERSVC_AMQP_URL": f"http://guest:{SECRET}@127.0.0.1/"}, "USERSVC_AMQP_URL"),
    ({"USERSVC_LOG_LEVEL": "LOUD"}, "USERSVC_LOG_LEVEL"),
    ({"USERSVC_DATABASE_WAIT": "soon"}, "USERSVC_DATABASE_WAIT"),
    ({"USERSVC_AMQP_EXCHANGE": ""}, "USERSVC_AMQP_EXCHANGE"),
    (
        {"USERSVC_MIGRATE_DATABASE_URL": f"postgresql://owner:{SECRET}@db:abc/users"},
        "USERSVC_MIGRATE_DATABASE_URL",
    ),
    # The owner's URL alone: nothing to serve with (the embedded server is not assumed).
    (
        {"USERSVC_MIGRATE_DATABASE_URL": f"postgresql://owner:{SECRET}@127.0.0.1/users"},
        "USERSVC_MIGRATE_DATABASE_URL",
    ),
]


@pytest.mark.parametrize(("env", "name"), BAD_SETTINGS, ids=[n for _, n in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(env: dict[str, str], name: str):
    run = _run("serve", timeout=30, **env)
    assert run.returncode == 2, run.stdout + run.stderr
    line = _one_line(run)
    assert line.startswith(f"usersvc: error: {name}: "), line
    assert SECRET not in line


def test_a_bad_port_option_is_exit_status_2():
    run = _run("--port", "abc")
    assert run.returncode == 2
    assert "--port: 'abc' is not a port number" in run.stderr
    assert "Traceback" not in run.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_database_is_retried_then_one_line_and_exit_status_1():
    url = f"postgresql://bob:{SECRET}@127.0.0.1:{_closed_port()}/users"
    run = _run("serve", USERSVC_DATABASE_URL=url, USERSVC_DATABASE_WAIT="1.5")
    assert run.returncode == 1, run.stdout + run.stderr
    line = _one_line(run)
    assert line.startswith("usersvc: error: USERSVC_DATABASE_URL: the database at "), line
    assert "did not answer in 1.5 s" in line
    assert "bob:***@127.0.0.1" in line
    assert SECRET not in line


class _NotYetThenForward(socketserver.BaseRequestHandler):
    """Drops the first connections, as a database still starting does, then pipes each
    connection to PostgreSQL, both ways."""

    target: tuple[str, int]
    refuse: int
    seen: list[int]

    def handle(self) -> None:
        self.seen.append(1)
        if len(self.seen) <= self.refuse:
            self.request.shutdown(socket.SHUT_RDWR)
            return
        with socket.create_connection(self.target) as upstream:
            threads = [
                threading.Thread(target=_pipe, args=(self.request, upstream), daemon=True),
                threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


REFUSED = 3


@pytest.fixture
def late_database(empty_database_url: str) -> Iterator[str]:
    """The test's database behind a port that drops the first connections."""
    real = urlsplit(empty_database_url)
    handler = type(
        "Forward",
        (_NotYetThenForward,),
        {"target": (real.hostname, real.port or 5432), "refuse": REFUSED, "seen": []},
    )
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield real._replace(netloc=f"{real.username}@127.0.0.1:{port}").geturl()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_database_that_comes_up_late_is_waited_for(late_database: str):
    run = _run("migrate", USERSVC_DATABASE_URL=late_database, USERSVC_DATABASE_WAIT="30")
    log = run.stdout + run.stderr  # wherever the logging setup writes
    assert run.returncode == 0, log
    assert f"the database answered after {REFUSED + 1} attempts" in log
    assert f"{MIGRATIONS} migration(s) applied" in log


def _on_a_taken_port(database_url: str, **env: str) -> tuple[subprocess.CompletedProcess, int]:
    """``usersvc serve`` told to listen on a port another socket holds; the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _run(
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-relay",
            USERSVC_DATABASE_URL=database_url,
            **env,
        )
    return run, port


def test_a_port_already_taken_is_one_line_and_exit_status_1(empty_database_url: str):
    run, port = _on_a_taken_port(
        empty_database_url,
        USERSVC_LOG_LEVEL="WARNING",
        USERSVC_AUTH="none",  # chosen: no warning about it at this level
    )
    assert run.returncode == 1, run.stdout + run.stderr
    line = _one_line(run)
    assert line.startswith(f"usersvc: error: cannot listen on 127.0.0.1:{port}: "), line


def test_serving_on_is_logged_once_the_port_is_bound_and_never_for_a_taken_one(
    empty_database_url: str,
):
    run, port = _on_a_taken_port(empty_database_url, USERSVC_LOG_LEVEL="INFO")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "serving on" not in run.stdout + run.stderr
    assert f"usersvc: error: cannot listen on 127.0.0.1:{port}: " in run.stderr
    free = _free_port()
    process = _usersvc(
        "--host",
        "127.0.0.1",
        "--port",
        str(free),
        "--no-relay",
        env=_env(USERSVC_DATABASE_URL=empty_database_url),
    )
    try:
        _wait_healthy(process, free)
    finally:
        output = _stop(process)
    (serving,) = [line for line in output.splitlines() if "serving on" in line]
    assert f"serving on http://127.0.0.1:{free} " in serving


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"USERSVC_PORT": "abc"}, "USERSVC_PORT"),
        (
            {"USERSVC_DATABASE_URL": f"postgresql://bob:{SECRET}@db:abc/users"},
            "USERSVC_DATABASE_URL",
        ),
    ],
    ids=["port", "database-url"],
)
def test_gunicorn_with_a_bad_setting_is_one_line_and_exit_status_2(env: dict[str, str], name: str):
    run = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"],
        env=_env(**({"USERSVC_DATABASE_URL": "postgresql://postgres@127.0.0.1/x"} | env)),
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    line = _one_line(run)
    assert line.startswith(f"usersvc: error: {name}: "), line
    assert SECRET not in line
