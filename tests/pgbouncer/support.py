"""A real PgBouncer (Debian's `pgbouncer` package), started by the tests in front of the
tests' PostgreSQL: PgBouncer's stock settings but for where it listens, the database it
leads to, who may log in, and transaction mode."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from attrs import frozen

START_SECONDS = 15.0
# PgBouncer refuses to run as root; as root (CI), it is told to become this user.
UNPRIVILEGED_USER = "nobody"


@frozen
class PgBouncer:
    url: str  # postgresql://user@127.0.0.1:port, no database: append "/name"
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def binary() -> str:
    """The pgbouncer program: on PATH, or where Debian puts it (/usr/sbin may not be on a
    user's PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    assert found, "pgbouncer is not installed: Debian's pgbouncer package (.ci/run installs it)"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(upstream: str, port: int, folder: Path) -> Path:
    parts = urlsplit(upstream)
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    # Every database of the upstream server, by its own name: tests make theirs as they go.
    (folder / "userlist.txt").write_text(f'"{user}" "{password}"\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        f"""\
[databases]
* = host={parts.hostname or "127.0.0.1"} port={parts.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
admin_users = {user}
pool_mode = transaction
"""
    )
    return config


@contextlib.contextmanager
def running_pgbouncer(upstream: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode on a free port in front of ``upstream``'s server
    (a URL such as postgresql://postgres@127.0.0.1:5432/postgres); stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="usersvc-pgbouncer-"))
    folder.chmod(0o755)  # readable by the unprivileged user it may run as
    port = _free_port()
    config = _config(upstream, port, folder)
    command = [binary(), str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", UNPRIVILEGED_USER]
    log = folder / "pgbouncer.log"
    user = unquote(urlsplit(upstream).username or "postgres")
    bouncer = PgBouncer(f"postgresql://{user}@127.0.0.1:{port}", port, log)
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_it_serves(process, bouncer, upstream)
        yield bouncer
    finally:
        process.terminate()  # SIGTERM: PgBouncer's immediate shutdown
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_it_serves(process: subprocess.Popen, bouncer: PgBouncer, upstream: str) -> None:
    database = urlsplit(upstream).path.lstrip("/") or "postgres"
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"pgbouncer exited {process.returncode}:\n{bouncer.log_text()}")
        try:
            with psycopg.connect(f"{bouncer.url}/{database}", connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise AssertionError(f"pgbouncer does not serve:\n{bouncer.log_text()}") from None
            time.sleep(0.1)
