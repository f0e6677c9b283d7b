"""Replicas: usersvc serve processes on one database and broker, the relay's leader
killed with kill -9 under load; takeover time and events lost (not a test).

    uv run python benchmarks/replicas.py [--replicas 3] [--kills 2] [--seconds 8]
                                         [--clients 12] [--users 10000] [--json out.json]

Needs a PostgreSQL and a RabbitMQ as the tests use them (USERSVC_TEST_DATABASE_URL,
USERSVC_TEST_AMQP_URL). Makes its own database (dropped after), seeded as
benchmarks/scale.py seeds, and its own exchange and queue (deleted after), then:

1. starts ``--replicas`` ``usersvc serve`` processes on that database and exchange, each
   with its relay (one leads, by PostgreSQL's advisory lock; the others try again every
   second);
2. drives writes through them all (``--clients`` clients, each request to a replica
   still alive, chosen at random): create_user and change-contacts, every one an event;
3. ``--kills`` times, ``--seconds`` apart: finds the leading replica (its health check
   says ``relay_leader``), kills its process with SIGKILL, and measures the takeover:
   until another replica's health check says it leads, and until the first event
   committed after the kill reaches the benchmark's queue (a relay publishes again);
4. stops the load, waits for the outbox to empty, reads the queue to the end, and counts
   the events: committed (a trigger keeps a copy of every outbox row, in this database
   only, as the reliability tests do), delivered, lost (committed, never delivered:
   must be 0), duplicates (at least once allows them), and whether each user's events
   came in commit order.

Times are wall-clock on one machine (the database's clock_timestamp() and this
process's time.time() are the same clock).
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import aiormq
import psycopg
from http_load import (
    AMQP_URL,
    Server,
    bench_exchange,
    fresh_database,
    load_average,
    production_environment,
    usersvc,
)
from scale import RNG, UNTHROTTLED, Sample, free_port, seed

# The benchmark's own copy of every committed event, with the time it was written (its
# transaction commits after that): the relay deletes the outbox row once it is sent.
COMMIT_LOG = """
CREATE TABLE bench_commit_log (
    position   bigint PRIMARY KEY,
    event_id   uuid NOT NULL,
    user_id    uuid NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION bench_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_commit_log (position, event_id, user_id)
    VALUES (NEW.position, NEW.event_id, NEW.user_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER bench_log_commit AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION bench_log_commit();
"""
PHONES = 79_600_000_000  # the load's new contacts (seeded ones are 799…)


class Deliveries:
    """Every message of the queue as it arrives: its event id and when it came."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[UUID, float]] = []
        self.connection: Any = None

    async def start(self, queue: str) -> None:
        self.connection = await aiormq.connect(AMQP_URL)
        channel = await self.connection.channel()
        await channel.basic_qos(prefetch_count=1000)

        async def take(message: Any) -> None:
            self.arrivals.append((UUID(message.header.properties.message_id), time.time()))
            await message.channel.basic_ack(message.delivery_tag)

        await channel.basic_consume(queue, take)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class Load:
    """Clients sending writes to the replicas still alive, each request an event."""

    def __init__(self, replicas: list[Server], changeable: list[UUID]) -> None:
        self.replicas, self.changeable = replicas, changeable
        self.killed: set[Server] = set()
        self.answers: Counter[str] = Counter()
        self.counter = 0
        self.stop = asyncio.Event()

    def _body(self) -> tuple[str, str, dict]:
        self.counter += 1
        k = self.counter
        if k % 3 == 0:
            body = {
                "phone": PHONES + k,
                "email": f"replica{k}@example.com",
                "firstname": "Ivan",
                "lastname": "Petrov",
                "middlename": None,
            }
            return "POST", "/api/v1/users/create_user", body
        body = {
            "user_id": str(RNG.choice(self.changeable)),
            "email": f"replica{k}@example.com",
            "phone": PHONES + k,
        }
        return "PUT", "/api/v1/users/change-contacts", body

    async def client(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            alive = [r for r in self.replicas if r not in self.killed]
            replica = RNG.choice(alive)
            method, path, body = self._body()
            try:
                async with session.request(method, replica.url + path, json=body) as response:
                    await response.read()
                    self.answers[str(response.status)] += 1
            except (aiohttp.ClientError, OSError):
                # In flight to the replica just killed: committed or not, its event is
                # counted from the database.
                self.answers["no answer (replica killed)"] += 1

    async def run(self, clients: int) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self.client(session) for _ in range(clients)))


async def health(session: aiohttp.ClientSession, replica: Server) -> dict | None:
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with session.post(
            f"{replica.url}/api/v1/healthcheck", timeout=aiohttp.ClientTimeout(total=2)
        ) as response:
            return (await response.json())["result"]
    return None


async def leader(session: aiohttp.ClientSession, replicas: list[Server]) -> Server | None:
    """The one replica whose relay leads, or None while none does."""
    healths = await asyncio.gather(*(health(session, r) for r in replicas))
    leading = [r for r, h in zip(replicas, healths, strict=True) if h and h.get("relay_leader")]
    if len(leading) > 1:
        raise AssertionError(f"{len(leading)} relays lead at once")
    return leading[0] if leading else None


async def wait_for_leader(
    session: aiohttp.ClientSession, replicas: list[Server], within: float = 30
) -> Server:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await leader(session, replicas)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no relay leads after {within} s")


def committed(url: str) -> list[tuple[UUID, UUID, float]]:
    """(event_id, user_id, written at, epoch seconds) of every committed event, in commit
    order (the outbox's position)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT event_id, user_id, extract(epoch FROM written_at)::float8"
            " FROM bench_commit_log ORDER BY position"
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def backlog(url: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT count(*) FROM outbox").fetchone()[0]  # type: ignore[index]


async def all_delivered(url: str, deliveries: Deliveries) -> list[tuple[UUID, UUID, float]]:
    """Once the outbox is empty (a minute at most) and every committed event has
    arrived (half a minute more at most), and a second for any duplicates: the
    committed events."""
    deadline = time.monotonic() + 60
    while await asyncio.to_thread(backlog, url) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    events = await asyncio.to_thread(committed, url)
    wanted = {event_id for event_id, _, _ in events}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if wanted <= {event_id for event_id, _ in deliveries.arrivals}:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    return events


async def run(args: argparse.Namespace) -> dict[str, Any]:
    def say(text: str) -> None:
        print(text, flush=True)

    work = Path(tempfile.mkdtemp(prefix="usersvc-replicas-"))
    report: dict[str, Any] = {"load_before": load_average()}
    try:
        with fresh_database("replicas") as url:
            say(f"seeding {args.users:,} users…")
            await asyncio.to_thread(seed, url, args.users, say)
            sample = Sample(url, args.users)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(COMMIT_LOG)
            async with bench_exchange() as (exchange, queue, broker_note):
                environment = await asyncio.to_thread(production_environment, work)
                say(f"{broker_note}; {environment}")
                replicas = []
                for number in range(args.replicas):
                    replica = usersvc(url, exchange, free_port(), relay=True)
                    replica.name = f"replica {number + 1}"
                    replica.env |= UNTHROTTLED
                    replicas.append(replica)
                deliveries = Deliveries()
                try:
                    for replica in replicas:
                        await replica.start()
                    # the relay declares the queue: consume once one leads
                    async with aiohttp.ClientSession() as session:
                        await wait_for_leader(session, replicas)
                    await deliveries.start(queue)
                    report |= await kill_leaders(args, url, replicas, sample, deliveries, say)
                    say("load stopped; waiting for the outbox to empty…")
                    events = await all_delivered(url, deliveries)
                finally:
                    await deliveries.close()
                    for replica in replicas:
                        await replica.stop()
            report |= count_events(events, deliveries.arrivals, report["kills"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = load_average()
    return report


async def kill_leaders(
    args: argparse.Namespace,
    url: str,
    replicas: list[Server],
    sample: Sample,
    deliveries: Deliveries,
    say: Any,
) -> dict[str, Any]:
    load = Load(replicas, sample.changeable)
    kills: list[dict[str, Any]] = []
    started = time.monotonic()
    driving = asyncio.create_task(load.run(args.clients))
    async with aiohttp.ClientSession() as session:
        try:
            for number in range(1, args.kills + 1):
                await asyncio.sleep(args.seconds)
                alive = [r for r in replicas if r not in load.killed]
                victim = await wait_for_leader(session, alive)
                assert victim.process is not None
                load.killed.add(victim)
                killed_at = time.time()
                os.kill(victim.process.pid, signal.SIGKILL)
                await victim.process.wait()
                alive.remove(victim)
                successor = await wait_for_leader(session, alive)
                lead_seconds = time.time() - killed_at
                kills.append({
                    "killed": victim.name,
                    "killed_at": killed_at,
                    "successor": successor.name,
                    "lead_taken_seconds": lead_seconds,
                })  # fmt: skip
                say(
                    f"  kill {number}: {victim.name} (the leader) killed; {successor.name}"
                    f" leads after {lead_seconds:.2f} s"
                )
            await asyncio.sleep(args.seconds)
        finally:
            load.stop.set()
            await driving
    elapsed = time.monotonic() - started
    requests = sum(load.answers.values())
    return {
        "kills": kills,
        "answers": dict(load.answers),
        "requests_per_second": requests / elapsed,
        "seconds": elapsed,
    }


def count_events(
    events: list[tuple[UUID, UUID, float]],
    arrivals: list[tuple[UUID, float]],
    kills: list[dict[str, Any]],
) -> dict[str, Any]:
    first_arrival: dict[UUID, float] = {}
    for event_id, at in arrivals:
        first_arrival.setdefault(event_id, at)
    written = {event_id: at for event_id, _, at in events}
    lost = [event_id for event_id, _, _ in events if event_id not in first_arrival]
    for kill in kills:
        # A relay publishes again: the first event written after the kill (which the
        # dead leader cannot have sent) arrives.
        after = [
            first_arrival[e]
            for e, at in written.items()
            if at > kill["killed_at"] and e in first_arrival
        ]
        kill["publishing_again_seconds"] = min(after) - kill["killed_at"] if after else None
    # Each user's events in commit order? By the queue's order of first deliveries (the
    # clock can tie within a batch).
    order: dict[UUID, int] = {}
    for index, (event_id, _) in enumerate(arrivals):
        order.setdefault(event_id, index)
    by_user: dict[UUID, list[UUID]] = {}
    for event_id, user_id, _ in events:
        if event_id in order:
            by_user.setdefault(user_id, []).append(event_id)
    out_of_order = sum(1 for ids in by_user.values() if sorted(ids, key=order.__getitem__) != ids)
    return {
        "committed": len(events),
        "delivered": len(arrivals),
        "duplicates": len(arrivals) - len(first_arrival),
        "lost": len(lost),
        "users_out_of_order": out_of_order,
        "foreign_messages": len(set(first_arrival) - set(written)),
    }


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    print()
    print(
        f"## Replicas: {args.replicas} usersvc serve on one database and broker, "
        f"the relay's leader killed {args.kills} times (kill -9)"
    )
    print()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    print()
    print("| kill | leader killed | new leader | lead taken (s) | publishing again (s) |")
    print("|---:|---|---|---:|---:|")
    for number, kill in enumerate(report["kills"], 1):
        again = kill["publishing_again_seconds"]
        print(
            f"| {number} | {kill['killed']} | {kill['successor']} | "
            f"{kill['lead_taken_seconds']:.2f} | {'—' if again is None else f'{again:.2f}'} |"
        )
    print()
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(report["answers"].items()))
    takeovers = [k["publishing_again_seconds"] for k in report["kills"]]
    known = [t for t in takeovers if t is not None]
    print(
        f"- load: {args.clients} clients, {report['requests_per_second']:.0f} writes/s over"
        f" {report['seconds']:.0f} s ({answers})"
    )
    if known:
        print(f"- publishing again after a kill: median {statistics.median(known):.2f} s")
    print(
        f"- events: {report['committed']} committed, {report['delivered']} delivered "
        f"({report['duplicates']} duplicates), **lost: {report['lost']}**; users whose "
        f"events came out of commit order: {report['users_out_of_order']}"
    )
    # Every write answered 2xx committed its event; one cut off by a kill may have.
    answers = report["answers"]
    ok = sum(n for status, n in answers.items() if status.startswith("2"))
    unknown = sum(n for status, n in answers.items() if not status[0].isdigit())
    consistent = ok <= report["committed"] <= ok + unknown
    print(
        f"- {ok} writes answered 2xx, {unknown} cut off by a kill: {report['committed']}"
        f" committed is {'within' if consistent else '**outside**'} [{ok}, {ok + unknown}]"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kills", type=int, default=2, help="fewer than --replicas")
    parser.add_argument("--seconds", type=float, default=8, help="load before each kill")
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--users", type=int, default=10_000, help="seeded users")
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    if not 0 < args.kills < args.replicas:
        sys.exit("--kills: at least 1 and fewer than --replicas (one must stay to publish)")
    report = asyncio.run(run(args))
    print_report(args, report)
    if report["lost"] or report["users_out_of_order"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
