"""A PostgreSQL server of the test's own, to stop, crash and restart (never the shared
one): initdb and pg_ctl into a temporary directory, on a free port."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")


def _binary(name: str) -> str:
    for directory in BIN_CANDIDATES:
        path = Path(directory) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: the database fault tests need it")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """``start``/``stop``/``restart``; as root the server runs as the ``postgres`` user.

    Logging stays at the server's defaults, into ``log`` (``settings``: more lines for
    postgresql.conf, such as TLS; ``hba``: pg_hba.conf in place of trust for all)."""

    def __init__(self, settings: str = "", hba: str | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="usersvc-pg-"))
        self.data = self._dir / "data"
        self.log = self._dir / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self._dir, "postgres", "postgres")
        self._run(_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self._dir}'\nfsync = off\n"
                f"max_connections = 100\n{settings}\n"
            )
        if hba is not None:
            (self.data / "pg_hba.conf").write_text(hba)

    @property
    def directory(self) -> Path:
        """The server's own folder (readable by the server's user): for its TLS files."""
        return self._dir

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            _binary("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: a crash (recovery at the next start)."""
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self._dir, ignore_errors=True)
