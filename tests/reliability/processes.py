"""``usersvc serve`` as an operator runs it: a real process on a port, its log in a file."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.reliability.private_postgres import free_port

STARTUP_SECONDS = 60


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERSVC_")}
    return env | values


class Serve:
    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = Path(tempfile.mkstemp(prefix="usersvc-serve-", suffix=".log")[1])
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "usersvc", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> dict[str, Any] | None:
        request = urllib.request.Request(f"{self.base}/api/v1/healthcheck", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())["result"]
        except (OSError, urllib.error.URLError):
            return None

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"usersvc exited {self.process.returncode}:\n{self.output()}")
            health = self.health()
            if health is not None:
                return health
            time.sleep(0.2)
        raise AssertionError(f"usersvc did not answer in {STARTUP_SECONDS} s:\n{self.output()}")

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.log.unlink(missing_ok=True)
