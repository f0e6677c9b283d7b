"""Load benchmark of the HTTP API: usersvc side by side with a bare floor (not a test).

    uv run python benchmarks/http_load.py [--rounds 5] [--duration 6] [--connections 32]
                                          [--only main|auth] [--json results.json]

Needs ``wrk`` (the Debian package), a PostgreSQL and a RabbitMQ as the tests use
them (USERSVC_TEST_DATABASE_URL, USERSVC_TEST_AMQP_URL). It makes two fresh
databases (dropped after) and its own exchange and queue (deleted after), then:

1. starts the floor (benchmarks/floor.py: usersvc's SQL, nothing else) and usersvc
   as production runs it, with the relay as its own ``usersvc relay`` process;
2. seeds 2,000 users through each API;
3. drives ``wrk`` (benchmarks/wrk/*.lua) alternately against the floor and usersvc,
   A B A B, in four scenarios: GET of random seeded users; the batch get of 20 of
   them (``GET /users?id=…``, 20 ids); create_user with unique contacts; 80% GET /
   15% change-fullname or change-contacts / 5% create;
4. does the same for usersvc with the relay in its process, and with two gunicorn
   workers when the project has a gunicorn.conf.py;
5. counts the round trips to PostgreSQL per command: each server runs once more
   behind a proxy that reads the protocol and counts what waits for an answer
   (a simple Query or an extended-protocol Sync), and the statements prepared.

``--only auth`` instead runs usersvc checking bearer tokens (``USERSVC_AUTH=jwt``, the
keys of benchmarks/issuer.py) against usersvc without (``none``), A B A B: what the
token checks cost. Every usersvc run counts each request against quotas it cannot
exhaust (``USERSVC_RATE_LIMIT``), as production counts them.

Per scenario and server it prints req/s, p50/p99 latency, non-2xx answers, the
server's CPU per request (user + system, all its processes) and peak RSS (per
process), then the usersvc/floor ratios of the rounds' medians, and the users per
second of a batch of 20 against those of single GETs; and where each
request's CPU went on the machine: the server, the relay, PostgreSQL, RabbitMQ (their
processes on this machine, read from /proc), wrk, and the machine's busy time in all.

On a RabbitMQ 3.x with ``rabbitmqctl`` at hand, the benchmark's queue is made a classic
queue version 2 (by a policy on its name), as every classic queue is on RabbitMQ 4.
"""

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import uuid4

import aiohttp
import aiormq
import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from benchmarks.issuer import Issuer  # noqa: E402
from usersvc.db.migrations import apply_migrations  # noqa: E402

ADMIN_URL = os.environ.get(
    "USERSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("USERSVC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18500"))
SEED_USERS = 2_000
SCENARIOS = ("get", "batch", "create", "mix")
BATCH = 20  # ids per batch get (benchmarks/wrk/batch.lua)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- databases and the broker ---


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


@contextlib.contextmanager
def fresh_database(tag: str):
    name = f"usersvc_bench_{tag}_{uuid4().hex[:8]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
        apply_migrations(url)
        yield url
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _rabbitmqctl(*args: str) -> bool:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    process = await asyncio.create_subprocess_exec(
        ctl, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait() == 0


@contextlib.asynccontextmanager
async def bench_exchange() -> AsyncIterator[tuple[str, str, str]]:
    """The relay's own exchange and queue, gone afterwards with whatever they hold; and
    a line on the broker for the report."""
    name = f"users.bench.{uuid4().hex[:12]}"
    async with aiormq.connect(AMQP_URL) as broker:
        version = str(broker.server_properties.get("version", "?"))
    note = f"RabbitMQ {version}"
    # RabbitMQ 4 (compose.yml's) stores every classic queue as version 2; a 3.x broker
    # makes version 1 queues unless told, whose persistent messages cost it about a
    # third more CPU each. The benchmark's own queue is made as production would have
    # it, by a policy on its name alone (cleared at the end), where rabbitmqctl can.
    policy = version.startswith("3.") and await _rabbitmqctl(
        "set_policy", "--apply-to", "queues", name, f"^{re.escape(name)}$",
        '{"queue-version": 2}',
    )  # fmt: skip
    if policy:
        note += ", the benchmark's queue a classic queue version 2 (as on RabbitMQ 4)"
    try:
        yield name, name, note
    finally:
        if policy:
            await _rabbitmqctl("clear_policy", name)
        async with aiormq.connect(AMQP_URL) as broker:
            channel = await broker.channel()
            await channel.queue_delete(name)
            await channel.exchange_delete(name)


# --- processes ---

# The interpreter the servers run on: the production environment's (see
# production_environment), else this one's.
PYTHON = [sys.executable]


def production_environment(work: Path) -> str:
    """A line for the report. The servers run from an environment of the project's
    production dependencies alone, as the image installs them (``uv sync --no-dev``):
    the development one also holds the test tools, and what they bring (rich and
    pygments, which structlog imports when present) would count in the servers' RSS."""
    uv = shutil.which("uv")
    env = work / "production-env"
    if uv is not None:
        done = subprocess.run(  # noqa: S603 - uv, found on PATH, with fixed arguments
            [uv, "sync", "--no-dev", "--frozen", "--quiet"],
            cwd=ROOT,
            env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(env)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            PYTHON[0] = str(env / "bin" / "python")
            return "servers run from the production dependencies (uv sync --no-dev)"
    return "servers run from this environment, test tools and all (uv sync --no-dev failed)"


def _stat(pid: int) -> tuple[int, int, int]:
    """(parent pid, CPU ticks user + system, resident pages) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21])


def _reaped_ticks(pid: int) -> int:
    """CPU ticks of the children the process has waited for (a replaced gunicorn worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[13]) + int(fields[14])


def _tree(root: int) -> list[int]:
    """The process and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = _stat(int(entry.name))[0]
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _owned_by(user: str) -> list[int]:
    """The processes a system user runs (the machine's PostgreSQL or RabbitMQ)."""
    try:
        uid = str(pwd.getpwnam(user).pw_uid)
    except KeyError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                status = (entry / "status").read_text()
                if status.split("\nUid:", 1)[1].split()[0] == uid:
                    found.append(int(entry.name))
    return found


def _machine_ticks() -> tuple[int, dict[str, dict[int, int]]]:
    """The CPU ticks the whole machine spent busy, and those of each of PostgreSQL's and
    RabbitMQ's processes (none where they run elsewhere, as in a container)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    shares: dict[str, dict[int, int]] = {}
    for name in ("postgres", "rabbitmq"):
        shares[name] = {}
        for pid in _owned_by(name):
            with contextlib.suppress(OSError):
                shares[name][pid] = _stat(pid)[1]
    return busy, shares


def _spent(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks spent between two readings by the processes alive at the second (one that
    ended in between, such as a closed session's, is not counted)."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """A server process (and its children) with its CPU ticks and peak RSS."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.process: asyncio.subprocess.Process | None = None
        self.database_url: str | None = env.get("USERSVC_DATABASE_URL")  # usersvc's: a relay
        self.companion: Server | None = None  # the relay process beside it, if any
        self.authorization: str | None = None  # the Authorization header its callers send
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        if not self.port:  # no HTTP to ask: alive after a moment is enough
            await asyncio.sleep(2)
            if self.process.returncode is None:
                return
        probe = f"{self.url}/api/v1/users/00000000-0000-4000-8000-000000000000"
        headers = {"Authorization": self.authorization} if self.authorization else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(300):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(probe) as response:
                        if response.status == 404:
                            return
                await asyncio.sleep(0.1)
        self.log.seek(0)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read().decode()[-3000:]}")

    def cpu_ticks(self) -> int:
        assert self.process is not None
        total = _reaped_ticks(self.process.pid)
        for pid in _tree(self.process.pid):
            with contextlib.suppress(OSError):
                total += _stat(pid)[1]
        return total

    def peak_rss_mb(self) -> float:
        """The largest peak of any one of its processes (a worker, under gunicorn)."""
        assert self.process is not None
        peaks = []
        for pid in _tree(self.process.pid):
            with contextlib.suppress(OSError):
                peaks.append(_peak_rss_mb(pid))
        return max(peaks)

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


def floor(database_url: str, port: int) -> Server:
    return Server("floor", [PYTHON[0], str(HERE / "floor.py"), str(port), database_url], {}, port)


# No token checks (--only auth measures them), and quotas that count every request as in
# production but that wrk, one caller sending thousands a second, cannot spend: none of
# its requests is a 429.
UNTHROTTLED = {
    "USERSVC_AUTH": "none",
    "USERSVC_RATE_LIMIT": "10000000/second",
    "USERSVC_RATE_LIMIT_LOOKUPS": "10000000/second",
}


def usersvc_env(database_url: str, exchange: str) -> dict[str, str]:
    """The service's settings as production sets them (metrics and logs on)."""
    return {
        "USERSVC_DATABASE_URL": database_url,
        "USERSVC_AMQP_URL": AMQP_URL,
        "USERSVC_AMQP_EXCHANGE": exchange,
        "USERSVC_AMQP_QUEUE": exchange,
        "USERSVC_LOG_LEVEL": "INFO",
    } | UNTHROTTLED


def usersvc(
    database_url: str,
    exchange: str,
    port: int,
    *,
    relay: bool = False,
    issuer: Issuer | None = None,
) -> Server:
    """``usersvc serve``; with ``issuer``, checking its bearer tokens (``USERSVC_AUTH=jwt``)."""
    argv = [PYTHON[0], "-m", "usersvc", "serve", "--host", "127.0.0.1", "--port", str(port)]
    name = "usersvc+relay" if relay else "usersvc"
    env = usersvc_env(database_url, exchange)
    if issuer is not None:
        name += "+jwt"
        env |= issuer.settings()
    server = Server(name, argv if relay else [*argv, "--no-relay"], env, port)
    server.authorization = issuer.authorization if issuer is not None else None
    return server


def relay(database_url: str, exchange: str, port: int) -> Server:
    """``usersvc relay``, its metrics and probes on ``port`` (not its default 8001)."""
    env = usersvc_env(database_url, exchange) | {
        "USERSVC_HOST": "127.0.0.1",
        "USERSVC_RELAY_PORT": str(port),
    }
    return Server("relay", [PYTHON[0], "-m", "usersvc", "relay"], env, 0)


def gunicorn(database_url: str, exchange: str, port: int, workers: int, metrics: Path) -> Server:
    """The production server as gunicorn.conf.py sets it up, each worker with its relay."""
    env = usersvc_env(database_url, exchange) | {
        "USERSVC_HOST": "127.0.0.1",
        "USERSVC_PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    argv = [PYTHON[0], "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    return Server(f"gunicorn x{workers}", argv, env, port)


def has_gunicorn() -> bool:
    found = subprocess.run(  # noqa: S603 - the servers' interpreter, fixed arguments
        [PYTHON[0], "-c", "import gunicorn"], capture_output=True, check=False
    )
    return found.returncode == 0 and (ROOT / "gunicorn.conf.py").is_file()


# --- load ---


async def seed(server: Server, ids_file: Path) -> None:
    """2,000 users through the server's API; their ids go to ``ids_file`` for wrk."""
    ids: list[str] = []
    numbers = iter(range(1, SEED_USERS + 1))
    headers = {"Authorization": server.authorization} if server.authorization else {}
    async with aiohttp.ClientSession(server.url, headers=headers) as session:

        async def worker() -> None:
            for k in numbers:
                body = {
                    "phone": 79000000000 + k,
                    "email": f"seed{k}@example.com",
                    "firstname": "Ivan",
                    "lastname": "Petrov",
                    "middlename": None,
                }
                async with session.post("/api/v1/users/create_user", json=body) as response:
                    assert response.status == 201, await response.text()
                    ids.append((await response.json())["result"])

        await asyncio.gather(*(worker() for _ in range(16)))
    ids_file.write_text("\n".join(ids) + "\n")  # noqa: ASYNC240 - once, before the load


class Runs:
    """wrk runs, each with its own range of unique contacts."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.count = 0

    async def wrk(self, server: Server, scenario: str, ids_file: Path, seconds: float) -> dict:
        self.count += 1
        # Seeding uses 1..2,000 and the round-trip count 900,000,000 and up; a round takes
        # 16 numbers per create, so 2,000,000 is room for 125,000 creates. Phones stay
        # +7 9XX XXX XX XX (79,000,000,000 + the number).
        base = self.count * 2_000_000
        ticks = server.cpu_ticks()
        companion = server.companion.cpu_ticks() if server.companion else 0
        machine, shares = _machine_ticks()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            "wrk", "-t", "1", "-c", str(self.args.connections), "-d", f"{round(seconds)}s",
            "--latency", "-s", str(HERE / "wrk" / f"{scenario}.lua"), server.url,
            "--", str(ids_file), str(base),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=os.environ | {"BENCH_AUTHORIZATION": server.authorization or ""},
        )  # fmt: skip
        out, _ = await process.communicate()
        ticks = server.cpu_ticks() - ticks
        machine_after, shares_after = _machine_ticks()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_seconds = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if server.companion:
            companion = server.companion.cpu_ticks() - companion
        line = next((x for x in out.decode().splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"wrk said:\n{out.decode()}")
        result = json.loads(line.removeprefix("BENCH "))
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        result["cpu_ms"] = ticks / CLOCK_TICKS * 1000 / max(1, result["requests"])
        if server.companion:
            result["relay_cpu_ms"] = companion / CLOCK_TICKS * 1000 / max(1, result["requests"])
        # The rest of the machine's part in each request: the database, the broker (the
        # events), wrk itself, and how many of the cores were busy in all.
        per_request = 1000 / CLOCK_TICKS / max(1, result["requests"])
        for name, before in shares.items():
            result[f"{name}_cpu_ms"] = _spent(before, shares_after[name]) * per_request
        result["wrk_cpu_ms"] = wrk_seconds * 1000 / max(1, result["requests"])
        result["machine_cpu_ms"] = (machine_after - machine) * per_request
        result["busy_cores"] = (
            (machine_after - machine) / CLOCK_TICKS / (result["duration_us"] / 1e6)
        )
        return result


def outbox_backlog(database_url: str) -> int:
    """Events committed and not yet confirmed by the broker."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return row.fetchone()[0]  # type: ignore[index]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def side_by_side(
    runs: Runs,
    floor_server: Server,
    floor_ids: Path,
    server: Server,
    ids: Path,
    rounds: int,
    say: Callable[[str], None],
) -> dict[str, dict[str, list[dict]]]:
    """Each scenario: floor, server, floor, server… ``rounds`` times each."""
    results: dict[str, dict[str, list[dict]]] = {}
    for scenario in runs.args.scenarios:
        for who in (floor_server, server):  # warm both up: statements prepared, pools full
            await runs.wrk(who, scenario, floor_ids if who is floor_server else ids, 1)
        per: dict[str, list[dict]] = {floor_server.name: [], server.name: []}
        for number in range(1, rounds + 1):
            for who, who_ids in ((floor_server, floor_ids), (server, ids)):
                result = await runs.wrk(who, scenario, who_ids, runs.args.duration)
                if who.database_url is not None:  # does the relay keep up?
                    result["backlog_end"] = outbox_backlog(who.database_url)
                    await asyncio.sleep(1)
                    result["backlog_1s"] = outbox_backlog(who.database_url)
                per[who.name].append(result)
                say(_round_line(scenario, number, who.name, result))
        results[scenario] = per
    return results


def record_rss(results: dict[str, dict[str, list[dict]]], *servers: Server) -> None:
    """Each round's peak RSS: its server's, read once the rounds are done."""
    peaks = {server.name: server.peak_rss_mb() for server in servers}
    for per in results.values():
        for name, rounds in per.items():
            for result in rounds:
                result["rss_mb"] = peaks[name]


def _round_line(scenario: str, number: int, name: str, result: dict) -> str:
    line = (
        f"  {scenario:6} round {number} {name:14} {result['rps']:7.0f} req/s  "
        f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms"
        f"  non-2xx {result['non2xx']}  cpu {result['cpu_ms']:.2f} ms/req"
    )
    if "relay_cpu_ms" in result:
        line += f" (+ relay {result['relay_cpu_ms']:.2f})"
    line += (
        f"  [machine {result['machine_cpu_ms']:.2f} ms/req, {result['busy_cores']:.2f} cores busy:"
        f" PostgreSQL {result['postgres_cpu_ms']:.2f}, RabbitMQ {result['rabbitmq_cpu_ms']:.2f},"
        f" wrk {result['wrk_cpu_ms']:.2f}]"
    )
    if "backlog_end" in result:
        line += f"  outbox backlog {result['backlog_end']}, 1 s later {result['backlog_1s']}"
    return line


# --- round trips, counted on the wire ---


class Wire:
    """A TCP proxy to PostgreSQL that counts the frontend's messages by type."""

    SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.counts: Counter[str] = Counter()
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe_down() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        down = asyncio.create_task(pipe_down())
        buffer, started = b"", False
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                up_writer.write(data)
                buffer += data
                while True:  # count each whole message
                    if not started:
                        if len(buffer) < 8:
                            break
                        (length, code) = struct.unpack("!ii", buffer[:8])
                        if len(buffer) < length:
                            break
                        buffer = buffer[length:]
                        started = code not in (self.SSL_REQUEST, self.GSSENC_REQUEST)
                        continue
                    if len(buffer) < 5:
                        break
                    (length,) = struct.unpack("!i", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    self.counts[chr(buffer[0])] += 1
                    buffer = buffer[1 + length :]
                await up_writer.drain()
        up_writer.close()
        await down

    def round_trips(self) -> int:
        return self.counts["Q"] + self.counts["S"]  # each waits for ReadyForQuery

    def prepares(self) -> int:
        return self.counts["P"]  # extended-protocol Parse: a statement prepared anew


async def count_round_trips(server: Server, wire: Wire, ids_file: Path) -> dict[str, dict]:
    """Sequential requests of each command; what the wire saw per request."""
    ids = ids_file.read_text().split()  # noqa: ASYNC240 - once, before the load
    made = iter(range(900_000_000, 999_999_999))
    requests: dict[str, Callable[[], tuple[str, str, dict | None]]] = {
        "GET /users/{id}": lambda: ("GET", f"/api/v1/users/{ids[0]}", None),
        "create_user": lambda: (
            "POST",
            "/api/v1/users/create_user",
            {
                "phone": 79000000000 + (k := next(made)),
                "email": f"count{k}@example.com",
                "firstname": "Ivan",
                "lastname": "Petrov",
                "middlename": None,
            },
        ),
        "change-fullname": lambda: (
            "PUT",
            "/api/v1/users/change-fullname",
            {"user_id": ids[1], "firstname": "Anna", "lastname": "Ivanova", "middlename": None},
        ),
        "change-contacts": lambda: (
            "PUT",
            "/api/v1/users/change-contacts",
            {
                "user_id": ids[2],
                "email": f"count{(k := next(made))}@example.com",
                "phone": 79000000000 + k,
            },
        ),
    }
    counted: dict[str, dict] = {}
    async with aiohttp.ClientSession(server.url) as session:

        async def send(make: Callable[[], tuple[str, str, dict | None]], times: int) -> None:
            for _ in range(times):
                method, path, body = make()
                async with session.request(method, path, json=body) as response:
                    assert response.status < 300, await response.text()

        for name, make in requests.items():
            await send(make, 30)  # every pooled connection has prepared what it runs
            await asyncio.sleep(0.2)
            trips, prepares = wire.round_trips(), wire.prepares()
            times = 100
            await send(make, times)
            counted[name] = {
                "round_trips": (wire.round_trips() - trips) / times,
                "prepared": (wire.prepares() - prepares) / times,
            }
    return counted


# --- the report ---


def _median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def _backlogs(rounds: list[dict]) -> str:
    if "backlog_end" not in rounds[0]:
        return ""
    return f"max {max(r['backlog_end'] for r in rounds)} / {max(r['backlog_1s'] for r in rounds)}"


def table(results: dict[str, dict[str, list[dict]]], floor_name: str) -> list[str]:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | non-2xx | CPU ms/req | peak RSS MB |"
        " req/s vs floor | p99 vs floor | outbox backlog at end / 1 s later |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for scenario, per in results.items():
        base = per[floor_name]
        for name, rounds in per.items():
            rps, p50, p99 = (_median(rounds, k) for k in ("rps", "p50_us", "p99_us"))
            cpu = f"{_median(rounds, 'cpu_ms'):.2f}"
            if "relay_cpu_ms" in rounds[0]:
                cpu += f" + relay {_median(rounds, 'relay_cpu_ms'):.2f}"
            non2xx = sum(r["non2xx"] for r in rounds)
            broken = sum(r["socket_errors"] for r in rounds)
            if broken:
                non2xx = f"{non2xx} ({broken} socket errors)"
            ratio = rps / _median(base, "rps")
            p99_ratio = p99 / _median(base, "p99_us")
            vs = ("", "") if name == floor_name else (f"{ratio:.2f}", f"{p99_ratio:.2f}")
            lines.append(
                f"| {scenario} | {name} | {rps:,.0f} | {p50 / 1000:.1f} | {p99 / 1000:.1f} | "
                f"{non2xx} | {cpu} | {rounds[0]['rss_mb']:.0f} | "
                f"{vs[0]} | {vs[1]} | {_backlogs(rounds)} |"
            )
    return lines


def batch_table(results: dict[str, dict[str, list[dict]]]) -> list[str]:
    """Users per second: a batch of 20 ids against single GETs (medians of the rounds)."""
    if "get" not in results or "batch" not in results:
        return []
    lines = [
        f"| server | single GET users/s | batch of {BATCH} users/s | batch / single |",
        "|---|---:|---:|---:|",
    ]
    for name, rounds in results["batch"].items():
        single = _median(results["get"][name], "rps")
        batched = _median(rounds, "rps") * BATCH
        lines.append(f"| {name} | {single:,.0f} | {batched:,.0f} | {batched / single:.1f} |")
    return lines


def machine_table(results: dict[str, dict[str, list[dict]]]) -> list[str]:
    """Where a request's CPU went on the whole machine (medians of the rounds)."""
    lines = [
        "| scenario | server | machine ms/req | server | relay | PostgreSQL | RabbitMQ | wrk |"
        " cores busy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, per in results.items():
        for name, rounds in per.items():
            relay = f"{_median(rounds, 'relay_cpu_ms'):.2f}" if "relay_cpu_ms" in rounds[0] else ""
            lines.append(
                f"| {scenario} | {name} | {_median(rounds, 'machine_cpu_ms'):.2f} | "
                f"{_median(rounds, 'cpu_ms'):.2f} | {relay} | "
                f"{_median(rounds, 'postgres_cpu_ms'):.2f} | "
                f"{_median(rounds, 'rabbitmq_cpu_ms'):.2f} | {_median(rounds, 'wrk_cpu_ms'):.2f} | "
                f"{_median(rounds, 'busy_cores'):.2f} |"
            )
    return lines


async def run(args: argparse.Namespace) -> None:
    def say(text: str) -> None:
        print(text, flush=True)

    runs = Runs(args)
    work = Path(tempfile.mkdtemp(prefix="usersvc-bench-"))
    report: dict[str, object] = {"load_before": load_average()}
    ports = iter(range(PORT_BASE + 10, PORT_BASE + 99))
    try:
        with fresh_database("floor") as floor_db, fresh_database("svc") as svc_db:
            async with bench_exchange() as (exchange, _, broker_note):
                environment = await asyncio.to_thread(production_environment, work)
                report |= {"broker": broker_note, "environment": environment}
                say(f"{broker_note}; {environment}")
                floor_server = floor(floor_db, next(ports))
                floor_ids, svc_ids = work / "floor-ids", work / "usersvc-ids"
                variants: list[tuple[Server, Server | None]] = [
                    (usersvc(svc_db, exchange, next(ports)), relay(svc_db, exchange, next(ports)))
                ]
                if args.only != "main":
                    variants.append((usersvc(svc_db, exchange, next(ports), relay=True), None))
                    if await asyncio.to_thread(has_gunicorn):
                        metrics = work / "metrics"
                        metrics.mkdir()
                        server = gunicorn(svc_db, exchange, next(ports), 2, metrics)
                        variants.append((server, None))
                    else:
                        say("(no gunicorn.conf.py or gunicorn: the two-worker run is skipped)")
                all_results: dict[str, dict] = {}
                await floor_server.start()
                try:
                    await seed(floor_server, floor_ids)
                    for number, (server, its_relay) in enumerate(variants):
                        if its_relay is not None:
                            await its_relay.start()
                            server.companion = its_relay
                        await server.start()
                        try:
                            if number == 0:
                                await seed(server, svc_ids)
                            say(f"{server.name} against the floor (load {load_average()}):")
                            results = await side_by_side(
                                runs, floor_server, floor_ids, server, svc_ids, args.rounds, say
                            )
                            record_rss(results, floor_server, server)
                            all_results[server.name] = results
                        finally:
                            await server.stop()
                            if its_relay is not None:
                                await its_relay.stop()
                finally:
                    await floor_server.stop()

                say("counting round trips to PostgreSQL…")
                host, port = _host_port(floor_db)
                trips: dict[str, dict] = {}
                for make, db, ids in (
                    (lambda url, p: floor(url, p), floor_db, floor_ids),
                    (lambda url, p: usersvc(url, exchange, p), svc_db, svc_ids),
                ):
                    wire = Wire(host, port)
                    wire_port = next(ports)
                    await wire.start(wire_port)
                    server = make(_via(db, wire_port), next(ports))
                    await server.start()
                    try:
                        trips[server.name] = await count_round_trips(server, wire, ids)
                    finally:
                        await server.stop()
                        assert wire.server is not None
                        wire.server.close()
        report |= {"results": all_results, "round_trips": trips, "load_after": load_average()}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    say("")
    say(
        f"load average before {report['load_before']}, after {report['load_after']}; "
        f"wrk -t1 -c{args.connections}, {args.duration} s rounds, medians of {args.rounds}"
    )
    for name, results in all_results.items():
        say("")
        say(f"### {name} vs floor")
        say("")
        for line in table(results, "floor"):
            say(line)
        say("")
        if batched := batch_table(results):
            for line in batched:
                say(line)
            say("")
        for line in machine_table(results):
            say(line)
    say("")
    say("| command | floor round trips | usersvc round trips | floor prepares | usersvc prepares |")
    say("|---|---:|---:|---:|---:|")
    for command, floor_count in trips["floor"].items():
        svc_count = trips["usersvc"][command]
        say(
            f"| {command} | {floor_count['round_trips']:.2f} | {svc_count['round_trips']:.2f} | "
            f"{floor_count['prepared']:.2f} | {svc_count['prepared']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))  # noqa: ASYNC240 - at the end


async def run_auth(args: argparse.Namespace) -> None:
    """What checking tokens costs: usersvc with ``USERSVC_AUTH=none`` and with ``jwt``
    side by side on one database, A B A B, each caller showing the same valid token (its
    verdict cached after the first request, as with any client that reuses its token)."""

    def say(text: str) -> None:
        print(text, flush=True)

    runs = Runs(args)
    work = Path(tempfile.mkdtemp(prefix="usersvc-bench-"))
    ports = iter(range(PORT_BASE + 10, PORT_BASE + 99))
    load_before = load_average()
    try:
        with fresh_database("auth") as db:
            async with bench_exchange() as (exchange, _, broker_note):
                environment = await asyncio.to_thread(production_environment, work)
                say(f"{broker_note}; {environment}")
                issuer = Issuer(next(ports))
                async with issuer.serving():
                    plain = usersvc(db, exchange, next(ports))
                    checked = usersvc(db, exchange, next(ports), issuer=issuer)
                    its_relay = relay(db, exchange, next(ports))  # drains both servers' events
                    ids = work / "ids"
                    await its_relay.start()
                    await plain.start()
                    await checked.start()
                    try:
                        await seed(plain, ids)
                        say(f"{checked.name} against {plain.name} (load {load_average()}):")
                        results = await side_by_side(
                            runs, plain, ids, checked, ids, args.rounds, say
                        )
                        record_rss(results, plain, checked)
                    finally:
                        for server in (checked, plain, its_relay):
                            await server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say("")
    say(
        f"load average before {load_before}, after {load_average()}; wrk -t1 "
        f"-c{args.connections}, {args.duration} s rounds, medians of {args.rounds}; "
        f"'vs floor' is against {plain.name} (no token checks)"
    )
    say("")
    say(f"### {checked.name} vs {plain.name}")
    say("")
    for line in table(results, plain.name):
        say(line)
    say("")
    for line in machine_table(results):
        say(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))  # noqa: ASYNC240 - at the end


async def profile(args: argparse.Namespace) -> None:
    """usersvc alone under each scenario's load, sampled by py-spy: the top functions."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before the load
    runs = Runs(args)
    ports = iter(range(PORT_BASE + 10, PORT_BASE + 99))
    with fresh_database("profile") as db:
        async with bench_exchange() as (exchange, _, _note):
            print(await asyncio.to_thread(production_environment, out))
            server, its_relay = usersvc(db, exchange, next(ports)), relay(db, exchange, next(ports))
            await its_relay.start()
            await server.start()
            try:
                ids = out / "ids"
                await seed(server, ids)
                for scenario in args.scenarios:
                    await runs.wrk(server, scenario, ids, 1)
                    assert server.process is not None
                    raw = out / f"{scenario}.txt"
                    spy = await asyncio.create_subprocess_exec(
                        "py-spy", "record", "--format", "raw", "--function", "--nonblocking",
                        "--rate", "250",
                        "-p", str(server.process.pid), "-o", str(raw),
                        "-d", str(args.duration + 1),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )  # fmt: skip
                    await asyncio.sleep(0.5)
                    result = await runs.wrk(server, scenario, ids, args.duration)
                    await spy.wait()
                    print(f"\n{scenario}: {result['rps']:.0f} req/s (load {load_average()})")
                    for share, name in top_functions(raw):
                        print(f"  {share:5.1f}%  {name}")
            finally:
                await server.stop()
                await its_relay.stop()


def top_functions(raw: Path, count: int = 25) -> list[tuple[float, str]]:
    """Functions by the share of samples they are on the stack in (each counted once)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        n = int(samples)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    return [(100 * n / total, frame) for frame, n in inclusive.most_common(count)]


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = rest.partition(":")
    return host, int(port or 5432)


def _via(url: str, port: int) -> str:
    """The same database through the counting proxy (no TLS: the proxy reads the wire)."""
    scheme, _, rest = url.partition("://")
    userinfo, _, hostpart = rest.rpartition("@")
    database = hostpart.split("/", 1)[1]
    who = f"{userinfo}@" if userinfo else ""
    return f"{scheme}://{who}127.0.0.1:{port}/{database}?sslmode=disable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        choices=["main", "all", "auth"],
        default="all",
        help="main: skip the relay/gunicorn runs; auth: only USERSVC_AUTH=jwt against none",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated, of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--profile", metavar="DIR", help="instead: py-spy samples of usersvc")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if args.profile:
        asyncio.run(profile(args))
    else:
        asyncio.run(run_auth(args) if args.only == "auth" else run(args))


if __name__ == "__main__":
    main()
