"""A request aiohttp's HTTP parser refuses, before any app code runs, is answered in the
contract's envelope too: a 4xx from the failure table, JSON, the connection closed,
never a traceback, counted and logged like any answer, and nothing changed.

Proven on the real servers, `usersvc serve` and gunicorn (one process of each for the
whole module), with raw bytes over a socket."""

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from attrs import frozen

from tests.api.support import API, assert_error_shape, user_body
from tests.conftest import copy_of, through_pooler
from tests.telemetry.processes import REPO, environment, free_port, wait_ready
from usersvc.db import pool as pool_module
from usersvc.http.failures import BAD_REQUEST, HEADERS_TOO_LARGE, ErrorInfo

CREATE = f"{API}/users/create_user"
BODY = json.dumps(user_body()).encode()
# The AMQP port of no broker: the relay waits for it quietly; this test sends no event.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/"
# A value that must reach neither the answer nor the log (it stands for personal data).
SECRET = "malformed-secret-7f3a"


def _head(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


def _create(*extra: str) -> bytes:
    """A create_user that would create a user, were it readable, with ``extra`` headers."""
    return (
        _head(
            f"POST {CREATE} HTTP/1.1",
            "Host: x",
            "Content-Type: application/json",
            *extra,
            f"Content-Length: {len(BODY)}",
            "",
        )
        + BODY
    )


MALFORMED: dict[str, tuple[bytes, ErrorInfo]] = {
    "thousands of headers": (
        _create(f"X-Secret: {SECRET}", *(f"X-H{i}: v" for i in range(4000))),
        HEADERS_TOO_LARGE,
    ),
    "more headers than the parser takes (129)": (
        _create(*(f"X-H{i}: v" for i in range(129))),
        HEADERS_TOO_LARGE,
    ),
    "a header line over 8 KiB": (_create(f"X-Big: {SECRET}" + "a" * 9000), HEADERS_TOO_LARGE),
    "a header name over 8 KiB": (_create("X-" + "a" * 9000 + ": v"), HEADERS_TOO_LARGE),
    # aiohttp reports an overlong request line as it does a header line (no 414 apart)
    "a request line over 8 KiB": (
        _head(f"GET {API}/users?email={SECRET}" + "a" * 9000 + " HTTP/1.1", "Host: x", ""),
        HEADERS_TOO_LARGE,
    ),
    "a malformed request line": (_head("GARBAGE", "", ""), BAD_REQUEST),
    "a bad HTTP version": (_head(f"GET {API}/users HTTP/9", "Host: x", ""), BAD_REQUEST),
    "an invalid method": (_head(f"G@T {API}/users HTTP/1.1", "Host: x", ""), BAD_REQUEST),
    "TLS on the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", BAD_REQUEST),
    "a header without a colon": (_create(f"X-Bad {SECRET}"), BAD_REQUEST),
    "an invalid chunked body": (
        _head(
            f"POST {CREATE} HTTP/1.1",
            "Host: x",
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
            "",
            "zz",  # not a chunk size
        )
        + BODY
        + b"\r\n0\r\n\r\n",
        BAD_REQUEST,
    ),
    "a chunk longer than its size": (
        _head(
            f"POST {CREATE} HTTP/1.1",
            "Host: x",
            "Content-Type: application/json",
            "Transfer-Encoding: chunked",
            "",
            "1",
        )
        + BODY
        + b"\r\n0\r\n\r\n",
        BAD_REQUEST,
    ),
    "two Content-Length headers": (
        _create(f"Content-Length: {len(BODY)}"),
        BAD_REQUEST,
    ),
    "Content-Length and chunked together": (
        _create("Transfer-Encoding: chunked"),
        BAD_REQUEST,
    ),
    "no Host in HTTP/1.1": (_head(f"GET {API}/users HTTP/1.1", "", ""), BAD_REQUEST),
}


@frozen
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _exchange(port: int, data: bytes) -> bytes:
    """Sends ``data`` at once; everything the server sends until it closes.

    Each request here is under 64 KiB, one read for the server: it closes the
    connection after its answer, and bytes of ours it had not read by then would
    make the close a reset, which takes the answer with it."""
    assert len(data) < 60_000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _start(kind: str, database_url: str, log: Path) -> Server:
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=through_pooler(database_url),
        USERSVC_RELAY_DATABASE_URL=database_url,
        USERSVC_DATABASE_STATEMENT_CACHE=str(pool_module.STATEMENT_CACHE),
        USERSVC_AMQP_URL=NO_BROKER,
        USERSVC_HOST="127.0.0.1",
        USERSVC_PORT=str(port),
        WEB_CONCURRENCY="1",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="usersvc-malformed-metrics-"),
    )
    if kind == "serve":
        command = [sys.executable, "-m", "usersvc", "serve"]
    else:
        command = [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server = Server(kind, port, process, log)
    try:
        wait_ready(process, port)
    except BaseException:
        process.kill()
        process.wait(30)
        raise AssertionError(server.output()) from None
    return server


@pytest.fixture(scope="module")
def module_database(template_database: str) -> Iterator[str]:
    with copy_of(template_database, "usersvc_test_malformed") as url:
        yield url


@pytest.fixture(scope="module", params=["serve", "gunicorn"])
def server(request: pytest.FixtureRequest, module_database: str) -> Iterator[Server]:
    log = Path(tempfile.mkstemp(prefix=f"usersvc-malformed-{request.param}-", suffix=".log")[1])
    running = _start(request.param, module_database, log)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.terminate()
            try:
                running.process.wait(40)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(30)
        log.unlink(missing_ok=True)


def _rows(database_url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(database_url) as connection:
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("users", "linked_accounts", "outbox")
        }


def _parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def test_a_request_the_parser_refuses_is_a_4xx_envelope_and_changes_nothing(
    server: Server, module_database: str
):
    before = _rows(module_database)
    for case, (data, expected) in MALFORMED.items():
        answer = _exchange(server.port, data)
        assert answer, f"{server.kind}, {case}: closed without an answer"
        status, headers, body = _parse(answer)
        assert status == expected.status, (server.kind, case, answer[:500])
        assert headers["content-type"] == "application/json", (server.kind, case, headers)
        assert headers["connection"].lower() == "close", (server.kind, case, headers)
        assert headers["server"] == "usersvc", (server.kind, case, headers)  # no version
        assert int(headers["content-length"]) == len(body), (server.kind, case, headers)
        envelope = json.loads(body)
        assert_error_shape(envelope, expected.status)
        assert envelope["error"]["data"] == {"code": expected.code, "message": expected.message}
        assert SECRET.encode() not in answer, (server.kind, case)
        assert b"Traceback" not in answer, (server.kind, case)
    assert _rows(module_database) == before
    # and the server goes on: the next client is served as ever
    answer = _exchange(
        server.port,
        _head(f"POST {API}/healthcheck HTTP/1.1", "Host: x", "Connection: close", "", ""),
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_a_refused_request_is_counted_and_logged_without_its_bytes_or_a_traceback(
    server: Server,
):
    for data, _ in (MALFORMED["thousands of headers"], MALFORMED["an invalid chunked body"]):
        _exchange(server.port, data)
    metrics = _exchange(
        server.port, _head("GET /metrics HTTP/1.1", "Host: x", "Connection: close", "", "")
    ).decode()
    for info in (HEADERS_TOO_LARGE, BAD_REQUEST):
        counted = re.search(
            r'^usersvc_http_requests_total\{[^}]*method="UNKNOWN",route="unmatched",'
            rf'status="{info.status}"\}} (\d+)',
            metrics,
            re.M,
        )
        assert counted, metrics
        assert float(counted[1]) >= 1
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        access = [
            line
            for line in lines
            if line.get("logger") == "usersvc.access" and line.get("route") == "unmatched"
        ]
        if {line["status"] for line in access} >= {400, 431} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {line["status"] for line in access} >= {400, 431}, server.output()[-3000:]
    assert all(line["method"] == "UNKNOWN" and line["request_id"] for line in access), access
    output = server.output()
    assert "Traceback" not in output, output[-3000:]
    assert SECRET not in output
    assert all(line["level"] != "error" for line in lines), output[-3000:]
