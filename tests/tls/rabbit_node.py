"""A RabbitMQ node of the tests' own, listening only for AMQP over TLS (amqps): a second
rabbitmq-server beside the machine's, with its own node name, ports, configuration,
database and logs in a temporary folder, no plugins (so it boots in seconds), stopped
and removed afterwards. The machine's broker is not touched."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from tests.reliability.private_postgres import free_port
from tests.tls.certificates import Certificates

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's; not the wrapper that su's
BOOT_SECONDS = 90  # a loaded machine of two cores took 19 s


class TlsRabbit:
    def __init__(self, certificates: Certificates) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="usersvc-rabbit-"))
        self.port = free_port()
        self.name = f"usersvc-tls-{uuid4().hex[:8]}@localhost"
        if not Path(SERVER).exists():
            raise RuntimeError(f"{SERVER} is not installed: the TLS tests need it")
        (self.directory / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{self.port}\n"
            f"ssl_options.cacertfile = {certificates.ca}\n"
            f"ssl_options.certfile = {certificates.certificate}\n"
            f"ssl_options.keyfile = {certificates.key}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")  # not the machine's
        self.log = self.directory / "boot.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        self._env = base | {
            "HOME": str(self.directory),  # its own Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_PID_FILE": str(self.directory / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, ca: Path, user: str = "guest", password: str = "guest") -> str:
        return f"amqps://{user}:{password}@localhost:{self.port}/?cafile={ca}"

    def start(self) -> None:
        """Boot it; returns once its TLS listener accepts connections."""
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [SERVER],
                env=self._env,
                cwd=self.directory,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its shell, beam and helpers: one group to stop
            )
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited:\n{self.log.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rabbitmq-server did not listen in {BOOT_SECONDS} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the VM stops cleanly on SIGTERM
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(OSError, ValueError):  # no pid file, or no such process
            os.kill(int((self.directory / "pid").read_text()), signal.SIGKILL)  # outlived it
        shutil.rmtree(self.directory, ignore_errors=True)
