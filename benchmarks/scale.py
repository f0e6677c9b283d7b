"""Cost at scale: the service with 10,000 users and with 1,000,000, side by side (not a test).

    uv run python benchmarks/scale.py [--sizes 10000,1000000] [--rounds 6] [--duration 5]
                                      [--connections 16] [--sql-runs 500] [--explain]
                                      [--json results.json]

Needs ``wrk`` (the Debian package), a PostgreSQL and a RabbitMQ as the tests use them
(USERSVC_TEST_DATABASE_URL, USERSVC_TEST_AMQP_URL); it uses benchmarks/http_load.py's
helpers for the databases, the broker, the server processes and wrk. Then:

1. One fresh database per size (all dropped after), migrated, and seeded straight in
   SQL in the shape the service writes: users created in time order over three years
   (so the heap and the time indexes grow at their right end, and the other indexes
   take their keys in random order, as in production), about 8% temporarily deleted
   (the older a user, the likelier: recent users are seldom deleted yet), 0 to 3
   linked accounts each (one on average), linked later, in time order; then VACUUM
   ANALYZE. The seeding's PostgreSQL session runs at the benchmark's niceness.
2. The sizes of the tables and of each index (pg_relation_size, pg_indexes_size).
3. The SQL alone: the statements each operation runs, prepared through asyncpg on one
   connection per database (as a pool connection keeps them), ``--sql-runs`` times per
   round, the rounds alternating between the sizes; writes are rolled back. Its p50
   and p99 in microseconds (a round trip on the loopback included), and the plan
   PostgreSQL used (generic or custom, from pg_prepared_statements).
4. HTTP: one ``usersvc serve`` (its relay in it, events to the benchmark's own exchange
   and queue, deleted after) per database, both running; each operation driven by wrk
   against each size in turn, the rounds alternating (10k, 1M, 10k, 1M, …): req/s,
   p50, p99, and the ratio of the p99 medians of the largest size to the smallest,
   against the target of 1.3. The users a round creates are deleted after it and the
   tables vacuumed, so a size stays its size.
5. ``--explain``: EXPLAIN (ANALYZE, BUFFERS) of the listing queries at the largest
   size, as a generic plan (what a prepared statement switches to after five runs)
   and as a custom one, each generic plan's estimated cost against jit_above_cost;
   and a page's time with the plan PostgreSQL keeps against a plan made anew for
   every page (plan_cache_mode = force_custom_plan), on one prepared statement.

Operations: GET of a user by id; look-up by email; the listing's first page, a page
at a random cursor in the later half of the walk, and the same for each status;
create_user; change-contacts. Timings on a shared machine are noisy: compare the
sizes within one run (they alternate), not runs with each other.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import asyncpg
import psycopg
from http_load import (
    UNTHROTTLED,
    Runs,
    Server,
    bench_exchange,
    fresh_database,
    load_average,
    production_environment,
    usersvc,
)
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from usersvc.db.pool import init_connection  # noqa: E402
from usersvc.db.queries import Queries, load  # noqa: E402
from usersvc.db.users import FIRST_POSITION  # noqa: E402
from usersvc.http import cursors  # noqa: E402

SIZES = (10_000, 1_000_000)
RNG = random.Random(21)  # noqa: S311 - the requests' draws, the same in every run
TARGET = 1.3  # the p99 at the largest size, at most this many times that at the smallest
SAMPLE = 20_000  # users drawn at random for the requests' ids, emails and cursors
PAGE = 20  # the listing's default page; the service asks the database for one more
SEED_CHUNK = 100_000  # users per seeding transaction
# Seeded phones are +7 99x xxx xx xx, out of the range wrk's runs make contacts in
# (79,000,000,000 + 2,000,000 a run, see http_load.Runs) for 450 runs and more.
SEED_PHONES = 79_900_000_000
SQL_PHONES = 79_800_000_000  # the SQL timings' new contacts (rolled back)


# --- seeding ---

# Users number first..last of a database of size, created in time order over three
# years, oldest first. Their linked accounts (0 to 3, one on average, see below) are
# counted from the user's id here too, so that the version counts them as the service's
# would.
SEED_USERS = """
INSERT INTO users (user_id, firstname, lastname, middlename, email, phone, status,
                   created_at, deleted_at, version)
SELECT user_id,
       (ARRAY['Ivan','Anna','Maria','Petr','Olga','Sergey','Elena','Dmitry','Nikolai',
              'Irina'])[1 + n %% 10],
       (ARRAY['Petrov','Ivanova','Smirnov','Kuznetsova','Popov','Sokolova','Lebedev',
              'Novikova'])[1 + (n / 10) %% 8],
       CASE WHEN n %% 10 < 7 THEN
           (ARRAY['Ivanovich','Petrovna','Sergeevich','Olegovna'])[1 + n %% 4] END,
       -- one in twenty without an email, one in seven of the rest without a phone;
       -- the local parts in random order, as the unique index gets them
       CASE WHEN n %% 20 <> 0 THEN substr(md5(n::text), 1, 8) || '.' || n || '@'
           || (ARRAY['gmail.com','yandex.ru','mail.ru','example.org','outlook.com'])[1 + n %% 5]
       END,
       CASE WHEN n %% 20 = 0 OR n %% 7 <> 0
           THEN %(phones)s::bigint + (n::bigint * 7919) %% 10000000 END,
       CASE WHEN deleted THEN 'deleted' ELSE 'active' END,
       created_at,
       CASE WHEN deleted THEN created_at + random() * (now() - created_at) END,
       1 + deleted::int + n %% 3
         + (ARRAY[0,0,0,0,1,1,1,2,2,3])[1 + abs(hashtext(user_id::text || 'k')) %% 10]
FROM (
    SELECT n, gen_random_uuid() AS user_id,
           now() - interval '3 years' * (1 - n::float8 / %(size)s::float8) AS created_at,
           -- about 8%% in all: 16%% of the oldest, none of the newest
           random() < 0.16 * (1 - n::float8 / %(size)s::float8) AS deleted
    FROM generate_series(%(first)s::int, %(last)s::int) AS n
) AS s
ORDER BY n
"""

# Every user's linked accounts, each of another network, linked at a random time
# between the user's creation and now (or their deletion), inserted in that order.
SEED_LINKED_ACCOUNTS = """
INSERT INTO linked_accounts (linked_account_id, user_id, social_network, connection_link,
                             link_key, connected_for, connected_at)
SELECT gen_random_uuid(), user_id, network, 'https://' || host || handle, host || handle,
       (ARRAY['login', 'notifications', NULL])[1 + abs(hashtext(handle)) % 3],
       connected_at
FROM (
    SELECT u.user_id, net.network, net.host,
           net.prefix || left(replace(u.user_id::text, '-', ''), 16) AS handle,
           u.created_at + random() * (coalesce(u.deleted_at, now()) - u.created_at)
               AS connected_at
    FROM users u
    CROSS JOIN LATERAL (
        SELECT (abs(hashtext(u.user_id::text)) % 6 + i) % 6 AS slot
        FROM generate_series(
            1, (ARRAY[0,0,0,0,1,1,1,2,2,3])[1 + abs(hashtext(u.user_id::text || 'k')) % 10]
        ) AS i
    ) AS pick
    JOIN (VALUES (0, 'vk', 'vk.com', '/id'), (1, 'telegram', 't.me', '/'),
                 (2, 'discord', 'discord.com', '/users/'), (3, 'tiktok', 'tiktok.com', '/@'),
                 (4, 'instagram', 'instagram.com', '/'), (5, 'twitter', 'x.com', '/'))
        AS net (slot, network, host, prefix) ON net.slot = pick.slot
) AS a
ORDER BY connected_at
"""


def _nice_backend(connection: psycopg.Connection) -> None:
    """Run the session's PostgreSQL backend at this process's niceness, where it is a
    local PostgreSQL process this user may renice (the seeding is the heavy part)."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    host = connection.info.host
    if ours <= 0 or not (host.startswith("/") or host in {"127.0.0.1", "localhost", "::1"}):
        return
    pid = connection.info.backend_pid
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
            os.setpriority(os.PRIO_PROCESS, pid, ours)


def seed(url: str, size: int, say: Callable[[str], None]) -> float:
    """``size`` users and their linked accounts; the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(url) as connection:
        _nice_backend(connection)
        for first in range(1, size + 1, SEED_CHUNK):
            last = min(size, first + SEED_CHUNK - 1)
            connection.execute(
                SEED_USERS, {"first": first, "last": last, "size": size, "phones": SEED_PHONES}
            )
            connection.commit()
            if size > SEED_CHUNK:
                say(f"  {size:,}: {last:,} users ({time.monotonic() - started:.0f} s)")
        connection.execute(SEED_LINKED_ACCOUNTS)
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE users, linked_accounts, outbox")
    return time.monotonic() - started


# --- what the requests ask for ---


class Sample:
    """Users drawn at random from one database, and what the requests make of them."""

    def __init__(self, url: str, size: int) -> None:
        with psycopg.connect(url) as connection:
            rows = connection.execute(
                "SELECT user_id, email, status, created_at FROM users ORDER BY random() LIMIT %s",
                (min(size, SAMPLE),),
            ).fetchall()
            self.seeded_until: datetime = connection.execute(
                "SELECT max(created_at) FROM users"
            ).fetchone()[0]  # type: ignore[index]
        half = len(rows) // 2
        readers, writers = rows[:half], rows[half:]  # no look-up meets a changed email
        self.ids: list[UUID] = [r[0] for r in rows]
        self.emails: list[str] = [r[1] for r in readers if r[1] is not None]
        self.changeable: list[UUID] = [r[0] for r in writers if r[2] == "active"]
        # Cursors in the later half of the walk: each a position of a user, of either
        # status, or of that status.
        self.deep = self._later_half([(r[3], r[0]) for r in rows])
        self.by_status = {
            status: self._later_half([(r[3], r[0]) for r in rows if r[2] == status])
            for status in ("active", "deleted")
        }

    @staticmethod
    def _later_half(positions: list[tuple[datetime, UUID]]) -> list[tuple[datetime, UUID]]:
        ordered = sorted(positions)
        later = ordered[len(ordered) // 2 :]
        RNG.shuffle(later)
        return later

    def paths(self) -> dict[str, list[str]]:
        """The GETs of each read operation (wrk/paths.lua picks lines at random)."""
        base = "/api/v1/users"

        def page(position: tuple[datetime, UUID], status: str | None = None) -> str:
            kind = f"status={status}&" if status else ""
            return f"{base}?{kind}limit={PAGE}&cursor={cursors.encode(position)}"

        return {
            "GET by id": [f"{base}/{i}" for i in self.ids],
            "look-up by email": [f"{base}?email={quote(e, safe='')}" for e in self.emails],
            "list: first page": [f"{base}?limit={PAGE}"],
            "list: deep page": [page(p) for p in self.deep],
            "list active: deep page": [page(p, "active") for p in self.by_status["active"]],
            "list deleted: deep page": [page(p, "deleted") for p in self.by_status["deleted"]],
        }


# The operations over HTTP: (name, wrk script); a read's lines come from Sample.paths,
# a write's user ids from Sample.changeable.
OPERATIONS = (
    ("GET by id", "paths"),
    ("look-up by email", "paths"),
    ("list: first page", "paths"),
    ("list: deep page", "paths"),
    ("list active: deep page", "paths"),
    ("list deleted: deep page", "paths"),
    ("create_user", "create"),
    ("change-contacts", "contacts"),
)


# --- sizes ---


def sizes_of(url: str) -> dict[str, int]:
    """Bytes of each table (its heap) and index of users and linked_accounts, and the
    sum of each table's indexes."""
    with psycopg.connect(url) as connection:
        found: dict[str, int] = {}
        for table in ("users", "linked_accounts"):
            found[f"{table} (table)"] = connection.execute(
                "SELECT pg_relation_size(%s::regclass)", (table,)
            ).fetchone()[0]  # type: ignore[index]
            found[f"{table} (all indexes)"] = connection.execute(
                "SELECT pg_indexes_size(%s::regclass)", (table,)
            ).fetchone()[0]  # type: ignore[index]
            for name, size in connection.execute(
                "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)"
                " FROM pg_index WHERE indrelid = %s::regclass ORDER BY 1",
                (table,),
            ):
                found[f"index {name}"] = size
    return found


# --- the SQL alone ---


class SqlTimer:
    """One connection to one database with the operations' statements prepared on it."""

    def __init__(self, connection: asyncpg.Connection, queries: Queries, sample: Sample) -> None:
        self.connection, self.q, self.sample = connection, queries, sample
        self.statements: dict[str, Any] = {}
        self.counter = 0

    @classmethod
    async def open(cls, url: str, queries: Queries, sample: Sample) -> "SqlTimer":
        connection = await asyncpg.connect(url)
        await init_connection(connection)
        return cls(connection, queries, sample)

    async def prepared(self, name: str) -> Any:
        if name not in self.statements:
            self.statements[name] = await self.connection.prepare(self.q[name])
        return self.statements[name]

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def operations(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """Each operation as one call that runs its statements once (timed whole)."""
        s = self.sample

        def fetch(name: str, make: Callable[[], tuple]) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                await (await self.prepared(name)).fetch(*make())

            return run

        def page(name: str, positions: list) -> Callable[[], Awaitable[None]]:
            return fetch(name, lambda: (*RNG.choice(positions), PAGE + 1))

        return {
            "GET by id": fetch("load_user", lambda: (RNG.choice(s.ids),)),
            "look-up by email": fetch("find_user_by_email", lambda: (RNG.choice(s.emails),)),
            "list: first page": fetch("list_users", lambda: (*FIRST_POSITION, PAGE + 1)),
            "list: deep page": page("list_users", s.deep),
            "list active: deep page": page("list_active_users", s.by_status["active"]),
            "list deleted: deep page": page("list_deleted_users", s.by_status["deleted"]),
            "create_user": self._create_user,
            "change-contacts": self._change_contacts,
        }

    def _event(self, user_id: UUID, name: str) -> tuple:
        now = datetime.now(UTC)
        return (uuid4(), name, user_id, now, {"user_id": str(user_id)}, {}, "benchmark")

    async def _create_user(self) -> None:
        k = self._next()
        user_id = uuid4()
        statement = await self.prepared("create_user")
        transaction = self.connection.transaction()
        await transaction.start()
        try:
            await statement.fetch(
                *self._event(user_id, "UserCreated"),
                "Ivan", "Petrov", None, f"sql{k}@example.com", SQL_PHONES + k, "active",
                datetime.now(UTC), 1,
            )  # fmt: skip
        finally:
            await transaction.rollback()

    async def _change_contacts(self) -> None:
        """As the service runs it: the user's row locked and read, then the write."""
        k = self._next()
        user_id = RNG.choice(self.sample.changeable)
        lock = await self.prepared("lock_user_and_contacts")
        change = await self.prepared("change_contacts")
        email, phone = f"sqlmoved{k}@example.com", SQL_PHONES + k
        transaction = self.connection.transaction()
        await transaction.start()
        try:
            row = await lock.fetchrow(user_id, email, phone)
            await change.fetch(
                *self._event(user_id, "ContactsChanged"), email, phone, row["version"] + 1
            )
        finally:
            await transaction.rollback()

    async def plans(self) -> dict[str, str]:
        """Per query name: the plan PostgreSQL ran most, generic or custom."""
        rows = await self.connection.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        )
        by_text = {row["statement"]: row for row in rows}
        found = {}
        for name, statement in self.statements.items():
            row = by_text.get(statement.get_query())
            if row is not None:
                found[name] = "generic" if row["generic_plans"] > row["custom_plans"] else "custom"
        return found


async def time_sql(
    timers: dict[int, SqlTimer], rounds: int, runs: int, say: Callable[[str], None]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Per operation and size: the p50 and p99 (µs) of each round, and the plans."""
    results: dict[str, dict[int, dict[str, Any]]] = {}
    operations = {size: timer.operations() for size, timer in timers.items()}
    for per in operations.values():  # prepared, and past the five custom plans
        for run in per.values():
            for _ in range(10):
                await run()
    for number in range(1, rounds + 1):
        for name in operations[next(iter(operations))]:
            for size, per in operations.items():
                run = per[name]
                took = []
                for _ in range(runs):
                    started = time.perf_counter_ns()
                    await run()
                    took.append((time.perf_counter_ns() - started) / 1000)
                took.sort()
                entry = results.setdefault(name, {}).setdefault(size, {"p50": [], "p99": []})
                entry["p50"].append(took[len(took) // 2])
                entry["p99"].append(took[min(len(took) - 1, int(len(took) * 0.99))])
        say(f"  SQL round {number} done (load {load_average()})")
    query_of = {
        "GET by id": ("load_user",),
        "look-up by email": ("find_user_by_email",),
        "list: first page": ("list_users",),
        "list: deep page": ("list_users",),
        "list active: deep page": ("list_active_users",),
        "list deleted: deep page": ("list_deleted_users",),
        "create_user": ("create_user",),
        "change-contacts": ("lock_user_and_contacts", "change_contacts"),
    }
    for size, timer in timers.items():
        plans = await timer.plans()
        for name, entry in results.items():
            entry[size]["plan"] = "/".join(plans.get(q, "?") for q in query_of[name])
    return results


# --- HTTP ---


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_up_writes(url: str, seeded_until: datetime) -> None:
    """Delete the users the load created and vacuum what the writes left dead, so the
    next round meets the database at its size (the relay has deleted the events)."""
    with psycopg.connect(url, autocommit=True) as connection:
        _nice_backend(connection)
        connection.execute("DELETE FROM users WHERE created_at > %s", (seeded_until,))
        connection.execute("VACUUM users, outbox")


async def time_http(
    runs: Runs,
    servers: dict[int, Server],
    files: dict[int, dict[str, Path]],
    cleanups: dict[int, Callable[[], None]],
    rounds: int,
    say: Callable[[str], None],
) -> dict[str, dict[int, list[dict]]]:
    """Each operation against each size in turn, ``rounds`` times; per operation and
    size the wrk results of the rounds."""
    results: dict[str, dict[int, list[dict]]] = {}
    for name, script in OPERATIONS:  # warm up: statements prepared, pools full
        for size, server in servers.items():
            await runs.wrk(server, script, files[size][name], 1)
    for size in servers:
        await asyncio.to_thread(cleanups[size])
    for number in range(1, rounds + 1):
        for name, script in OPERATIONS:
            for size, server in servers.items():
                result = await runs.wrk(server, script, files[size][name], runs.args.duration)
                results.setdefault(name, {}).setdefault(size, []).append(result)
                say(
                    f"  round {number} {name:24} {size:>9,}: {result['rps']:7.0f} req/s  "
                    f"p50 {result['p50_us'] / 1000:6.2f} ms  p99 {result['p99_us'] / 1000:6.2f} ms"
                    f"  non-2xx {result['non2xx']}"
                )
        for size in servers:  # outside the timed runs
            await asyncio.to_thread(cleanups[size])
    return results


# --- EXPLAIN ---


def explain_listings(url: str, queries: Queries, sample: Sample) -> list[str]:
    """The listing queries' plans, generic and custom, with EXPLAIN (ANALYZE, BUFFERS)."""
    cases = [
        ("list_users", "first page", [*FIRST_POSITION, PAGE + 1]),
        ("list_users", "deep page", [*sample.deep[0], PAGE + 1]),
        ("list_active_users", "deep page", [*sample.by_status["active"][0], PAGE + 1]),
        ("list_deleted_users", "deep page", [*sample.by_status["deleted"][0], PAGE + 1]),
    ]
    lines: list[str] = []
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as connection:
        jit_above = connection.execute("SHOW jit_above_cost").fetchone()[0]  # type: ignore[index]
        for name, what, args in cases:
            connection.execute(sql.SQL("PREPARE q AS {}").format(sql.SQL(queries[name])))
            execute = sql.SQL("EXECUTE q({})").format(sql.SQL(", ").join(map(sql.Literal, args)))
            try:
                connection.execute(execute)  # the pages it reads cached, for both plans
                for mode in ("force_generic_plan", "force_custom_plan"):
                    connection.execute(sql.SQL("SET plan_cache_mode = {}").format(sql.SQL(mode)))
                    cost = connection.execute(
                        sql.SQL("EXPLAIN (FORMAT JSON) {}").format(execute)
                    ).fetchone()[0][0]["Plan"]["Total Cost"]  # type: ignore[index]
                    plan = connection.execute(
                        sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(execute)
                    ).fetchall()
                    kind = mode.removeprefix("force_").removesuffix("_plan")
                    lines += [
                        f"{name} ({what}), {kind} plan: estimated cost {cost:,.0f}"
                        f" (jit_above_cost {float(jit_above):,.0f})",
                        "```",
                        *(row[0] for row in plan),
                        "```",
                        "",
                    ]
            finally:
                connection.execute("RESET plan_cache_mode")
                connection.execute("DEALLOCATE q")
    return lines


async def time_plan_modes(
    url: str, queries: Queries, sample: Sample, runs: int, rounds: int
) -> list[str]:
    """Each listing page run with the plan PostgreSQL keeps for the statement and with a
    plan made anew each time (plan_cache_mode, toggled between blocks on one connection
    and one prepared statement): what keeping the generic plan saves per page. Medians
    of the rounds' p50, µs."""
    cases = {
        "list_users (first page)": ("list_users", [FIRST_POSITION]),
        "list_users (deep page)": ("list_users", sample.deep),
        "list_active_users (deep page)": ("list_active_users", sample.by_status["active"]),
        "list_deleted_users (deep page)": ("list_deleted_users", sample.by_status["deleted"]),
    }
    modes = ("auto", "force_custom_plan")
    connection = await asyncpg.connect(url)
    try:
        await init_connection(connection)
        found: dict[str, dict[str, list[float]]] = {}
        for what, (name, positions) in cases.items():
            statement = await connection.prepare(queries[name])
            for _ in range(10):  # past the five custom plans
                await statement.fetch(*RNG.choice(positions), PAGE + 1)
            for _ in range(rounds):
                for mode in modes:
                    await connection.execute(f"SET plan_cache_mode = {mode}")
                    took = []
                    for _ in range(runs):
                        position = RNG.choice(positions)
                        started = time.perf_counter_ns()
                        await statement.fetch(*position, PAGE + 1)
                        took.append((time.perf_counter_ns() - started) / 1000)
                    found.setdefault(what, {}).setdefault(mode, []).append(statistics.median(took))
            await connection.execute("RESET plan_cache_mode")
    finally:
        await connection.close()
    lines = [
        "| listing (µs, p50) | the plan kept (auto) | planned each time (force_custom_plan) |",
        "|---|---:|---:|",
    ]
    for what, per in found.items():
        kept, anew = (statistics.median(per[mode]) for mode in modes)
        lines.append(f"| {what} | {kept:.0f} | {anew:.0f} |")
    return lines


# --- the report ---


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def http_table(results: dict[str, dict[int, list[dict]]], sizes: list[int]) -> list[str]:
    small, large = sizes[0], sizes[-1]
    head = " | ".join(f"req/s {_size(s)} | p50 {_size(s)} | p99 {_size(s)}" for s in sizes)
    lines = [
        f"| operation | {head} | p99 {_size(large)} / {_size(small)} | within {TARGET}x |",
        "|---|" + "---:|" * (3 * len(sizes) + 1) + "---|",
    ]
    for name, per in results.items():
        cells = []
        for size in sizes:
            rounds = per[size]
            cells += [
                f"{statistics.median(r['rps'] for r in rounds):,.0f}",
                _ms(statistics.median(r["p50_us"] for r in rounds)),
                _ms(statistics.median(r["p99_us"] for r in rounds)),
            ]
        ratio = statistics.median(r["p99_us"] for r in per[large]) / statistics.median(
            r["p99_us"] for r in per[small]
        )
        broken = sum(r["non2xx"] + r["socket_errors"] for s in sizes for r in per[s])
        note = f" ({broken} non-2xx or socket errors)" if broken else ""
        verdict = "yes" if ratio <= TARGET else "**no**"
        lines.append(f"| {name}{note} | {' | '.join(cells)} | {ratio:.2f} | {verdict} |")
    return lines


def sql_table(results: dict[str, dict[int, dict[str, Any]]], sizes: list[int]) -> list[str]:
    small, large = sizes[0], sizes[-1]
    head = " | ".join(f"plan {_size(s)} | p50 {_size(s)} | p99 {_size(s)}" for s in sizes)
    lines = [
        f"| operation (µs) | {head} | p50 {_size(large)} / {_size(small)} |"
        f" p99 {_size(large)} / {_size(small)} |",
        "|---|" + "---|---:|---:|" * len(sizes) + "---:|---:|",
    ]
    for name, per in results.items():
        cells = []
        for size in sizes:
            entry = per[size]
            cells += [
                entry["plan"],
                f"{statistics.median(entry['p50']):.0f}",
                f"{statistics.median(entry['p99']):.0f}",
            ]
        p50 = statistics.median(per[large]["p50"]) / statistics.median(per[small]["p50"])
        p99 = statistics.median(per[large]["p99"]) / statistics.median(per[small]["p99"])
        lines.append(f"| {name} | {' | '.join(cells)} | {p50:.2f} | {p99:.2f} |")
    return lines


def sizes_table(found: dict[int, dict[str, int]], sizes: list[int]) -> list[str]:
    lines = [
        "| relation (MB) | " + " | ".join(_size(s) for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name in found[sizes[-1]]:
        cells = [f"{found[s].get(name, 0) / 2**20:.1f}" for s in sizes]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def _size(users: int) -> str:
    if users >= 1_000_000 and users % 1_000_000 == 0:
        return f"{users // 1_000_000}M"
    if users >= 1_000 and users % 1_000 == 0:
        return f"{users // 1_000}k"
    return str(users)


@contextlib.contextmanager
def databases(sizes: list[int]) -> Iterator[dict[int, str]]:
    with contextlib.ExitStack() as stack:
        yield {size: stack.enter_context(fresh_database(f"scale{_size(size)}")) for size in sizes}


async def run(args: argparse.Namespace) -> None:
    def say(text: str) -> None:
        print(text, flush=True)

    sizes: list[int] = args.sizes
    queries = load()
    work = Path(tempfile.mkdtemp(prefix="usersvc-scale-"))
    report: dict[str, Any] = {
        "sizes": sizes,
        "rounds": args.rounds,
        "load_before": load_average(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
    }
    try:
        with databases(sizes) as urls:
            seconds = {}
            for size, url in urls.items():
                say(f"seeding {size:,} users…")
                seconds[size] = await asyncio.to_thread(seed, url, size, say)
                say(f"  {size:,} users seeded in {seconds[size]:.0f} s")
            report["seed_seconds"] = seconds
            samples = {size: Sample(url, size) for size, url in urls.items()}
            found = {size: sizes_of(url) for size, url in urls.items()}
            report["relation_bytes"] = found

            if args.explain:
                largest = sizes[-1]
                report["explain"] = explain_listings(urls[largest], queries, samples[largest])
                report["plan_modes"] = await time_plan_modes(
                    urls[largest], queries, samples[largest], args.sql_runs, args.rounds
                )

            say(f"the SQL alone: {args.sql_runs} runs per round and size…")
            timers = {
                size: await SqlTimer.open(url, queries, samples[size]) for size, url in urls.items()
            }
            try:
                report["sql"] = await time_sql(timers, args.rounds, args.sql_runs, say)
            finally:
                for timer in timers.values():
                    await timer.connection.close()

            if not args.no_http:
                report |= await measure_http(args, urls, samples, work, say)
            report["load_after"] = load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(args, report)


async def measure_http(
    args: argparse.Namespace,
    urls: dict[int, str],
    samples: dict[int, Sample],
    work: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The HTTP rounds: one usersvc serve per database, wrk against each in turn."""
    files: dict[int, dict[str, Path]] = {}
    for size, sample in samples.items():
        files[size] = {}
        for name, lines in sample.paths().items():
            files[size][name] = work / f"{size}-{len(files[size])}.txt"
            files[size][name].write_text("\n".join(lines) + "\n")
        writers = work / f"{size}-writers.txt"
        writers.write_text("\n".join(map(str, sample.changeable)) + "\n")
        files[size] |= {"create_user": writers, "change-contacts": writers}
    cleanups = {
        size: (lambda u=url, s=samples[size]: clean_up_writes(u, s.seeded_until))
        for size, url in urls.items()
    }
    async with bench_exchange() as (exchange, _, broker_note):
        environment = await asyncio.to_thread(production_environment, work)
        say(f"{broker_note}; {environment}")
        servers = {}
        for size, url in urls.items():
            servers[size] = usersvc(url, exchange, free_port(), relay=True)
            servers[size].name = f"usersvc {_size(size)}"
            servers[size].env |= UNTHROTTLED
        try:
            for server in servers.values():
                await server.start()
            say(f"HTTP: wrk -t1 -c{args.connections}, {args.duration} s rounds…")
            http = await time_http(Runs(args), servers, files, cleanups, args.rounds, say)
        finally:
            for server in servers.values():
                await server.stop()
    return {"broker": broker_note, "environment": environment, "http": http}


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    sizes: list[int] = args.sizes
    print()
    print(
        f"## Cost at scale: {', '.join(f'{s:,}' for s in sizes)} users, medians of "
        f"{args.rounds} alternating rounds"
    )
    print()
    seeding = ", ".join(f"{report['seed_seconds'][s]:.0f} s for {_size(s)}" for s in sizes)
    print(
        f"load average before {report['load_before']}, after {report['load_after']}; "
        f"niceness {report['nice']}; seeding took {seeding}"
    )
    if "http" in report:
        print()
        print(f"### HTTP (wrk -t1 -c{args.connections}, {args.duration} s rounds; ms)")
        print()
        print(f"{report['broker']}; {report['environment']}")
        print()
        print("\n".join(http_table(report["http"], sizes)))
    print()
    print(f"### The SQL alone (asyncpg, prepared, {args.sql_runs} runs a round; µs)")
    print()
    print("\n".join(sql_table(report["sql"], sizes)))
    print()
    print("### Table and index sizes")
    print()
    print("\n".join(sizes_table(report["relation_bytes"], sizes)))
    if args.explain:
        print()
        print(f"### The listing queries' plans at {sizes[-1]:,} users")
        print()
        print("\n".join(report["plan_modes"]))
        print()
        print("\n".join(report["explain"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: sorted(int(s.replace("_", "")) for s in text.split(",")),
        default=list(SIZES),
        help="comma-separated user counts (default 10000,1000000)",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sql-runs", type=int, default=500, help="SQL runs per round and size")
    parser.add_argument("--explain", action="store_true", help="also EXPLAIN the listings")
    parser.add_argument("--no-http", action="store_true", help="the SQL alone, no HTTP rounds")
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    if len(args.sizes) < 2:
        sys.exit("--sizes: give at least two sizes to compare")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
