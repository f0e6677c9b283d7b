"""What a GET /users/{user_id} costs the server, layer by layer, in instructions (not a test).

    uv run python benchmarks/get_cost.py [--requests 1000] [--connections 8]
                                         [--variants usersvc,floor,...]

Instructions, not seconds: the server runs under ``valgrind --tool=callgrind``, which
counts the instructions its process executes, the same whatever else the machine is
doing (the machine is shared, and a throughput taken on it is noise). Each variant
serves a fresh copy of one database of 2,000 users; a client (outside valgrind) sends
warm-up requests, the counters are zeroed, then ``--requests`` GETs of random users
over ``--connections`` keep-alive connections, and the count is read.

The variants are usersvc as ``usersvc serve`` runs it (JSON logs at INFO to a file,
trace ids without an exporter, the metrics), the same with one layer taken out, and
the floor (benchmarks/floor.py). What a layer costs is the difference it makes:

- ``jwt``: everything, and each request's bearer token checked (``USERSVC_AUTH=jwt``
  against benchmarks/issuer.py's keys; one token, its verdict cached after the first
  request, as for any client that reuses its token);
- ``usersvc``: everything ``usersvc serve`` does by default (``USERSVC_AUTH`` unset:
  no token checks; each caller's quotas counted in memory);
- ``no-quotas``: without the quotas;
- ``no-access-log``: without the access log line;
- ``no-metrics``: without the request and pool metrics;
- ``no-span``: without the request's span ids (the server span, unrecorded);
- ``no-telemetry``: without any of those nor the request id (the middleware's
  ``Measured`` does nothing);
- ``pass-through``: the middleware only calls the handler (what aiohttp's machinery
  for a middleware costs);
- ``no-middleware``: without the middleware at all (no turns, no error envelopes);
- ``floor-handler``: that, and the floor's handler in place of usersvc's (no UUID
  check by the schema's rule, no envelope helpers, presenting by ``dict``);
- ``floor``: benchmarks/floor.py, aiohttp and asyncpg alone.

Needs valgrind (the Debian package). Slow: each variant takes a minute or two.
"""

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

import aiohttp
import uvloop
from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.http_load import fresh_database  # noqa: E402
from benchmarks.issuer import Issuer  # noqa: E402
from usersvc.config import Settings  # noqa: E402
from usersvc.http import app as app_module  # noqa: E402
from usersvc.http import middleware, server  # noqa: E402
from usersvc.http.app import SERVER_OPTIONS, create_app  # noqa: E402
from usersvc.http.callers import quotas_of, tokens_of  # noqa: E402
from usersvc.http.handlers import USERS, Handler  # noqa: E402
from usersvc.serialization import dumps  # noqa: E402
from usersvc.telemetry import logs, metrics, requests  # noqa: E402
from usersvc.telemetry.logs import configure_logging  # noqa: E402
from usersvc.telemetry.tracing import configure_tracing  # noqa: E402

VARIANTS = (
    "jwt",
    "usersvc",
    "no-quotas",
    "no-access-log",
    "no-metrics",
    "no-span",
    "no-telemetry",
    "pass-through",
    "no-middleware",
    "floor-handler",
    "floor",
)
SEED_USERS = 2_000
WARM_UP = 200


# --- the server side: one variant, run under valgrind by the main side ---


def serve(variant: str, port: int, database_url: str, log: str) -> None:
    """usersvc as ``usersvc serve --no-relay`` runs it, less what ``variant`` takes out."""
    if variant == "no-access-log":
        logs.access = lambda *_: None
    elif variant == "no-metrics":
        for name in ("request_started", "request_ended", "observe_request", "released"):
            setattr(metrics, name, lambda *_: None)
        metrics.acquired = lambda _: None
    elif variant == "no-span":
        requests.ServerSpan = _NoSpan  # type: ignore[misc]
    elif variant in ("no-telemetry", "no-middleware", "floor-handler"):
        middleware.Measured = _Unmeasured  # type: ignore[misc]
    if variant == "floor-handler":
        app_module.get_user = floor_get_user  # type: ignore[assignment]
    if variant == "pass-through":
        app_module.middleware = lambda *_: _pass_through  # type: ignore[assignment]
    with open(log, "w") as stream:  # the server's log lines
        configure_logging("INFO", "json", stream)
        configure_tracing()
        settings = Settings.from_env(os.environ)  # the issuer's, for jwt
        app = create_app(
            database_url,
            relay=None,
            tokens=tokens_of(settings),
            quotas=None if variant == "no-quotas" else quotas_of(settings),
        )
        if variant in ("no-middleware", "floor-handler"):
            app.middlewares.clear()  # before the app is frozen: as if it had none
        server.run(
            app,
            host="127.0.0.1",
            port=port,
            loop=uvloop.new_event_loop(),
            shutdown_timeout=1.0,
            **SERVER_OPTIONS,
        )


class _NoSpan:
    @classmethod
    def start(cls, _request: object) -> None:
        return None


class _Unmeasured:
    __slots__ = ("request_id",)

    def __init__(self, _request: object) -> None:
        self.request_id = "-"

    def end(self, *_: object) -> None:
        pass


@web.middleware
async def _pass_through(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await handler(request)


async def floor_get_user(request: web.Request) -> web.Response:
    """benchmarks/floor.py's handler, on usersvc's pool and query."""
    row = await request.app[USERS].get_row(UUID(request.match_info["user_id"]))
    if row is None:
        return web.Response(body=dumps({"status": 404}), status=404)
    user = dict(row)
    user["linked_accounts"] = [dict(a) for a in user["linked_accounts"]]
    return web.Response(
        body=dumps({"status": 200, "result": user}), content_type="application/json"
    )


# --- the main side ---


def seed(database_url: str) -> list[str]:
    """2,000 users as the load benchmark seeds them (no linked accounts), by SQL."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "INSERT INTO users (user_id, firstname, lastname, middlename, email, phone,"
            " status, created_at)"
            " SELECT gen_random_uuid(), 'Ivan', 'Petrov', NULL, 'seed' || k || '@example.com',"
            " 79000000000 + k, 'active', now() FROM generate_series(1, %s) AS k"
            " RETURNING user_id",
            (SEED_USERS,),
        ).fetchall()
        connection.execute("VACUUM ANALYZE users")
    return [str(row[0]) for row in rows]


async def drive(
    port: int, ids: list[str], requests: int, connections: int, headers: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/users/"
    chooser = random.Random(requests)  # noqa: S311 - the same GETs for every variant
    picks = iter([chooser.choice(ids) for _ in range(requests)])
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one_connection() -> None:
            for user_id in picks:
                async with session.get(url + user_id) as response:
                    assert response.status == 200, await response.text()
                    await response.read()

        await asyncio.gather(*(one_connection() for _ in range(connections)))


async def wait_up(port: int, process: subprocess.Popen, headers: dict[str, str]) -> None:
    probe = f"http://127.0.0.1:{port}/api/v1/users/00000000-0000-4000-8000-000000000000"
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(1200):
            if process.poll() is not None:
                raise RuntimeError(f"the server exited {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(probe) as response:
                    if response.status == 404:
                        return
            await asyncio.sleep(0.25)
    raise RuntimeError("the server did not start")


def instructions(out_file: Path) -> int:
    """The instructions counted in a callgrind dump (its ``summary``/``totals`` line)."""
    for line in out_file.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out_file}")


def measure(
    variant: str,
    database_url: str,
    ids: list[str],
    args: argparse.Namespace,
    work: Path,
    issuer: Issuer,
) -> float:
    port = args.port
    env = os.environ | {"USERSVC_AUTH": "none"}
    headers: dict[str, str] = {}
    if variant == "jwt":
        env |= issuer.settings()
        headers["Authorization"] = issuer.authorization
    out = work / f"callgrind.{variant}"
    if variant == "floor":
        command = [sys.executable, str(HERE / "floor.py"), str(port), database_url]
    else:
        log = str(work / f"{variant}.log")
        command = [sys.executable, str(Path(__file__)), "serve", variant, str(port)]
        command += [database_url, log]
    valgrind = shutil.which("valgrind") or "valgrind"
    process = subprocess.Popen(  # noqa: S603 - valgrind and this interpreter, fixed arguments
        # Not counted until the server is up (counting makes a start of many seconds a
        # start of minutes): instrumentation is switched on once it answers.
        [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *command,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        asyncio.run(wait_up(port, process, headers))
        callgrind_control = shutil.which("callgrind_control") or "callgrind_control"

        def control(command: str) -> None:
            sent = [callgrind_control, command, str(process.pid)]
            subprocess.run(sent, check=True, capture_output=True)  # noqa: S603

        control("--instr=on")
        asyncio.run(drive(port, ids, WARM_UP, args.connections, headers))
        control("--zero")
        started = time.monotonic()
        asyncio.run(drive(port, ids, args.requests, args.connections, headers))
        seconds = time.monotonic() - started
        control("--dump")
        counted = sum(instructions(d) for d in work.glob(f"callgrind.{variant}.*"))
        print(
            f"  {variant:14} {counted / args.requests:12,.0f} instructions per GET"
            f"  ({args.requests} GETs in {seconds:.0f} s under valgrind)",
            flush=True,
        )
        return counted / args.requests
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(*sys.argv[2:3], int(sys.argv[3]), *sys.argv[4:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("--variants", type=lambda text: text.split(","), default=list(VARIANTS))
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="usersvc-get-cost-"))
    counted: dict[str, float] = {}
    try:
        issuer = Issuer(args.port + 1)
        with fresh_database("cost") as database_url, issuer.serving_in_thread():
            ids = seed(database_url)
            for variant in args.variants:
                counted[variant] = measure(variant, database_url, ids, args, work, issuer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| variant | instructions per GET | vs usersvc | vs floor |")
    print("|---|---:|---:|---:|")
    for variant, count in counted.items():
        vs_svc = f"{count - counted['usersvc']:+,.0f}" if "usersvc" in counted else ""
        vs_floor = f"{count / counted['floor']:.2f}x" if "floor" in counted else ""
        print(f"| {variant} | {count:,.0f} | {vs_svc} | {vs_floor} |")


if __name__ == "__main__":
    main()
