"""The service as process managers run it: in a process group of its own, signalled as a
group (systemd's ``KillMode=control-group``, a terminal's Ctrl-C, a container runtime
that signals every process), through ``uv run usersvc`` or gunicorn; and what a client
and an orchestrator's probes saw meanwhile."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from tests.reliability.private_postgres import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90  # a loaded 2-core machine, uv's start included
PROBE_EVERY = 0.05
REFUSED = "refused"  # the connection was never made: the request was not sent


def uv() -> str:
    """The uv the tests run under (``uv run pytest`` says where it is), else on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("no uv: run the tests with `uv run pytest` (it sets $UV)")
    return found


def environment(**values: str) -> dict[str, str]:
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERSVC_", "OTEL_", "PROMETHEUS_", "WEB_CONCURRENCY"))
    }
    # The tests choose who may call, as production must (gunicorn refuses to choose).
    return kept | {"USERSVC_LOG_FORMAT": "json", "USERSVC_AUTH": "none"} | values


class Group:
    """A command in a session (and process group) of its own, its output in a file."""

    def __init__(
        self, command: list[str], env: dict[str, str], port: int, cwd: Path = REPO
    ) -> None:
        self.port = port
        self.log = Path(tempfile.mkstemp(prefix="usersvc-group-", suffix=".log")[1])
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @classmethod
    def uv_run_usersvc(cls, env: dict[str, str], *args: str, cwd: Path = REPO) -> "Group":
        """``uv run usersvc serve`` on a free port (``--no-sync``: the test's environment
        is the project's already), in ``cwd`` (the project named wherever it runs)."""
        port = free_port()
        command = [uv(), "run", "--no-sync", "--project", str(REPO), "usersvc", "serve"]
        return cls([*command, "--host", "127.0.0.1", "--port", str(port), *args], env, port, cwd)

    @classmethod
    def gunicorn(cls, env: dict[str, str], workers: int = 2) -> "Group":
        """``gunicorn --config gunicorn.conf.py``, as the image runs it."""
        port = free_port()
        metrics = tempfile.mkdtemp(prefix="usersvc-group-metrics-")
        env = env | {
            "USERSVC_HOST": "127.0.0.1",
            "USERSVC_PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": metrics,
        }
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        return cls([gunicorn, "--config", "gunicorn.conf.py"], env, port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        """To every process of the group, as ``kill -SIG -- -PGID`` sends it."""
        os.killpg(self.process.pid, signum)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"exited {self.process.returncode}:\n{self.output()[-5000:]}")
            if probe(self.base + "/readyz")[0] == 200:
                return
            time.sleep(0.2)
        pytest.fail(f"not ready within {STARTUP_SECONDS} s:\n{self.output()[-5000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self.log.unlink(missing_ok=True)


def probe(url: str, timeout: float = 5.0) -> tuple[int | str, bytes]:
    """GET as an orchestrator's probe does: the status, or ``REFUSED``, or the name of
    what went wrong with a connection that was made."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            return REFUSED, b""
        return type(error.reason).__name__, b""
    except OSError as error:
        return type(error).__name__, b""


@attrs.frozen
class Seen:
    """One request and what came of it (times: ``time.monotonic()``)."""

    path: str
    sent: float
    ended: float
    outcome: int | str  # the status, REFUSED, or the name of the error


class Prober:
    """GET /livez and /readyz in turn, every ``PROBE_EVERY`` seconds, on a thread, until
    stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Prober":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in ("/readyz", "/livez"):
                sent = time.monotonic()
                outcome, _ = probe(self.base + path)
                self.seen.append(Seen(path, sent, time.monotonic(), outcome))
            self._stop.wait(PROBE_EVERY)

    def of(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]


type Send = Callable[[str, str, Any], Awaitable[tuple[int, Any, dict[str, str]]]]


def recording_sender(session: aiohttp.ClientSession, base: str, seen: list[Seen]) -> Send:
    """The load's ``send``, keeping what came of every request. A connection refused
    (the listener is closed) is not an unanswered request: it was never sent; the
    client waits a moment before its next try rather than spin."""

    async def send(method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        sent = time.monotonic()
        try:
            async with session.request(method, base + path, json=body) as response:
                answer = await response.json()
        except aiohttp.ClientConnectorError:
            seen.append(Seen(path, sent, time.monotonic(), REFUSED))
            await asyncio.sleep(0.02)
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            seen.append(Seen(path, sent, time.monotonic(), f"{type(error).__name__}: {error}"))
            raise
        seen.append(Seen(path, sent, time.monotonic(), response.status))
        return response.status, answer, dict(response.headers)

    return send
