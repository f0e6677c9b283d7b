"""Running the service as an operator does (gunicorn, ``usersvc serve``) and talking to it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**values: str) -> dict[str, str]:
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERSVC_", "OTEL_", "PROMETHEUS_", "WEB_CONCURRENCY"))
    }
    # The tests choose who may call, as production must (gunicorn refuses to choose).
    return kept | {"USERSVC_LOG_FORMAT": "json", "USERSVC_AUTH": "none"} | values


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def gunicorn(env: dict[str, str]) -> subprocess.Popen:
    return start(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"], env
    )


def usersvc(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return start([sys.executable, "-m", "usersvc", *args], env)


def request(url: str, body: object | None = None, method: str | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}  # urllib would say the body is a form
    call = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited {process.returncode}:\n{process.stdout.read()}")
        try:
            status, _ = request(f"http://127.0.0.1:{port}/api/v1/healthcheck", method="POST")
        except OSError:
            time.sleep(0.2)
            continue
        if status == 200:
            return
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"no answer within {STARTUP_SECONDS} s:\n{process.communicate()[0]}")


def stop(process: subprocess.Popen, within: float = 40, *, signalled: bool = False) -> str:
    """SIGTERM (one only: a second one means "do not wait"); the output, once it exited 0."""
    if not signalled:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"did not stop on SIGTERM:\n{output}")
    assert process.returncode == 0, output
    return output


def json_lines(output: str) -> list[dict]:
    """Every line of the output is one JSON object."""
    lines = []
    for line in output.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n{output}")
    return lines
