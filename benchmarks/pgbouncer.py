"""What PgBouncer and an empty statement cache cost (not a test).

    uv run python benchmarks/pgbouncer.py [--rounds 5] [--duration 6] [--connections 32]

Needs ``wrk`` and ``pgbouncer`` (Debian's packages) and the tests' PostgreSQL
(USERSVC_TEST_DATABASE_URL). It makes a database of its own (dropped after) with the
service's session settings as the role's defaults there, starts PgBouncer in transaction
mode in front of it (as tests/pgbouncer does), and three ``usersvc serve --no-relay``
processes on that one database:

  direct, cache 100   USERSVC_DATABASE_URL straight to PostgreSQL (the default)
  direct, cache 0     the same with USERSVC_DATABASE_STATEMENT_CACHE=0
  pgbouncer, cache 0  through PgBouncer (1.18 keeps no prepared statement: cache 0)

then drives ``wrk`` against each in turn, round after round (A B C A B C ...): GET of
random seeded users, and create_user. It prints each one's median req/s, p50 and p99
over the rounds, and the ratio to the first.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from uuid import uuid4

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from benchmarks.http_load import UNTHROTTLED  # noqa: E402
from tests.pgbouncer.support import running_pgbouncer  # noqa: E402
from usersvc.db.migrations import apply_migrations  # noqa: E402
from usersvc.db.pool import SERVER_SETTINGS  # noqa: E402

ADMIN_URL = os.environ.get(
    "USERSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SEED = 2_000
WRK = shutil.which("wrk") or "wrk"
LOGS = Path(tempfile.mkdtemp(prefix="usersvc-bench-pgbouncer-"))  # each server's log (WARNING+)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def start(
    name: str, database_url: str, cache: int, direct_url: str
) -> tuple[str, subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USERSVC_", "OTEL_"))}
    env |= {
        "USERSVC_DATABASE_URL": database_url,
        "USERSVC_RELAY_DATABASE_URL": direct_url,
        "USERSVC_DATABASE_STATEMENT_CACHE": str(cache),
        "USERSVC_HOST": "127.0.0.1",
        "USERSVC_PORT": str(port),
        "USERSVC_LOG_LEVEL": "WARNING",
        "USERSVC_LOG_FORMAT": "json",
    } | UNTHROTTLED
    log = LOGS / f"{name.replace(', ', '-').replace(' ', '')}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "usersvc", "serve", "--no-relay"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/healthcheck", method="POST"
            )
            with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - http, ours
                return name, process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{name} did not start") from None
            time.sleep(0.2)


def stop(servers: list[tuple[str, subprocess.Popen, int]]) -> None:
    for _, process, _ in servers:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def wrk(script: str, port: int, ids: Path, args: argparse.Namespace, run: int) -> dict:
    out = subprocess.run(  # noqa: S603 - wrk, found on PATH, with our arguments
        [
            WRK,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(HERE / "wrk" / script),
            f"http://127.0.0.1:{port}",
            "--",
            str(ids),
            str(run),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    database = f"usersvc_bench_pgbouncer_{uuid4().hex[:8]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    direct = f"{base}/{database}"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    servers: list[tuple[str, subprocess.Popen, int]] = []
    try:
        apply_migrations(direct)
        for name, value in SERVER_SETTINGS.items():
            admin(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET {} = {}").format(
                    sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
                )
            )
        with running_pgbouncer(ADMIN_URL) as bouncer:
            servers = [
                start("direct, cache 100", direct, 100, direct),
                start("direct, cache 0", direct, 0, direct),
                start("pgbouncer, cache 0", f"{bouncer.url}/{database}", 0, direct),
            ]
            with tempfile.TemporaryDirectory() as folder:
                ids = Path(folder) / "ids"
                ids.write_text("")
                seeding = argparse.Namespace(**{**vars(args), "duration": 3})
                rows: list = []
                # Users made through the API, as the load makes them. Each wrk run's contacts
                # start 2,000,000 apart (phones +79..., which are valid numbers).
                for attempt in range(20):
                    if len(rows) >= SEED:
                        break
                    wrk("create.lua", servers[0][2], ids, seeding, 2 * 10**6 * attempt)
                    with psycopg.connect(direct) as connection:
                        rows = connection.execute(
                            "SELECT user_id FROM users LIMIT %s", [SEED]
                        ).fetchall()
                ids.write_text("".join(f"{row[0]}\n" for row in rows))
                results: dict[tuple[str, str], list[dict]] = {}
                run = 10**8
                for _ in range(args.rounds):
                    for scenario in ("get.lua", "create.lua"):
                        for name, _, port in servers:
                            run += 2 * 10**6
                            results.setdefault((scenario, name), []).append(
                                wrk(scenario, port, ids, args, run)
                            )
            print(
                f"{len(rows)} users seeded; {args.rounds} rounds of {args.duration} s, "
                f"{args.connections} connections; medians over the rounds\n"
            )
            print(
                f"{'scenario':<10} {'server':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                f"{'non2xx':>7} {'rps ratio':>9} {'p99 ratio':>9}"
            )
            for scenario in ("get.lua", "create.lua"):
                first = None
                for name, _, _ in servers:
                    runs = results[(scenario, name)]
                    rps = statistics.median(r["rps"] for r in runs)
                    p50 = statistics.median(r["p50_us"] for r in runs) / 1000
                    p99 = statistics.median(r["p99_us"] for r in runs) / 1000
                    bad = sum(r["non2xx"] + r["socket_errors"] for r in runs)
                    first = first or (rps, p99)
                    print(
                        f"{scenario.removesuffix('.lua'):<10} {name:<20} {rps:>8.0f} {p50:>8.2f} "
                        f"{p99:>8.2f} {bad:>7} {rps / first[0]:>9.2f} {p99 / first[1]:>9.2f}"
                    )
            # before anything stops: what the servers logged under the load
            print(
                "\nwarnings and errors the servers logged (their logs: LOGS)".replace(
                    "LOGS", str(LOGS)
                )
            )
            for log in sorted(LOGS.glob("*.log")):
                messages = Counter(
                    json.loads(line)["message"][:100]
                    for line in log.read_text().splitlines()
                    if line.startswith("{")
                )
                print(f"  {log.stem}: {sum(messages.values())}")
                for message, count in messages.most_common(5):
                    print(f"    {count} x {message}")
            stop(servers)
    finally:
        stop(servers)
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


if __name__ == "__main__":
    main()
