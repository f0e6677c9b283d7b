"""Benchmark of the outbox relay against real PostgreSQL and RabbitMQ (not a test).

    uv run python benchmarks/relay.py [--commands 10000] [--concurrency 64]
                                      [--load-processes 2] [--in-process] [--rate 500]

Makes its own database (dropped after) and its own exchange and queue (deleted
after), then measures:

1. live: the commands run through ``Users.execute`` while the relay runs; for each
   event, the time from its commit (``execute`` returned) to the broker's confirm
   (the relay's ``on_published``, called once the confirmed batch is marked), and
   the relay's publish rate over the run. The commands come from other processes
   (``--load-processes``), as from the other replicas and workers of the service;
   ``--in-process`` runs them in the relay's own event loop instead, as a single
   instance that serves the requests and leads the relay would. ``--rate N`` paces
   them at a steady N commands per second in all (as fast as they go without it),
   and the outbox backlog is sampled every 50 ms: it must not grow.
2. drain: the same number of events committed with no relay running, then the time
   a relay takes to publish them all (its top rate, with a backlog).

Every published event is also checked to have reached a consumer of the queue.
Times are CLOCK_MONOTONIC, one clock for all processes of the machine.

Environment: USERSVC_TEST_DATABASE_URL (an admin URL, as the tests use) and
USERSVC_TEST_AMQP_URL.
"""

import argparse
import asyncio
import inspect
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from uuid import UUID, uuid4

import aiormq
import asyncpg
import psycopg
import uvloop
from aiormq.abc import DeliveredMessage
from psycopg import sql
from returns.result import Success

from usersvc.amqp import Relay, RelaySettings, outbox_backlog
from usersvc.amqp.messages import OutboxRow
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.users import Command, Users
from usersvc.domain import commands

ADMIN_URL = os.environ.get(
    "USERSVC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("USERSVC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
COMMANDS_PER_USER = 10  # a creation and nine changes


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def _change(user_id: UUID, step: int) -> Command:
    match step % 4:
        case 0:
            return commands.ChangeFullname(user_id, f"Name{step}", "Petrov", None)
        case 1:
            return commands.ChangeContacts(user_id, f"u{uuid4().hex[:12]}@example.com", None)
        case 2:
            return commands.DeleteUserTemporarily(user_id)
        case _:
            return commands.RecoverUser(user_id)


async def _ticks(rate: float, count: int, tokens: asyncio.Queue[None]) -> None:
    """``count`` tokens at a steady ``rate`` per second (late ones catch up at once)."""
    started = time.monotonic()
    for number in range(count):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tokens.put_nowait(None)


async def run_commands(
    users: Users, count: int, concurrency: int, rate: float | None = None
) -> dict[UUID, float]:
    """``count`` commands, ``concurrency`` users at a time, at most ``rate`` per second;
    each event's commit time."""
    committed: dict[UUID, float] = {}
    users_left = iter(range(count // COMMANDS_PER_USER))
    tokens: asyncio.Queue[None] = asyncio.Queue()
    ticker = None
    if rate is not None:
        ticker = asyncio.create_task(_ticks(rate, count, tokens))

    async def execute(command: Command) -> UUID:
        if ticker is not None:
            await tokens.get()
        decision = await users.execute(command)
        now = time.monotonic()
        assert isinstance(decision, Success), decision
        event = decision.unwrap().event
        committed[event.event_id] = now
        return event.user_id

    async def worker() -> None:
        for _ in users_left:
            email = f"ivan.{uuid4().hex[:16]}@example.com"
            user_id = await execute(commands.CreateUser("Ivan", "Petrov", None, email, None))
            for step in range(COMMANDS_PER_USER - 1):
                await execute(_change(user_id, step))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if ticker is not None:
        ticker.cancel()
    return committed


def _load_process(
    database_url: str, count: int, concurrency: int, rate: float | None
) -> dict[UUID, float]:
    async def main() -> dict[UUID, float]:
        pool = await create_pool(database_url, min_size=4, max_size=16)
        try:
            return await run_commands(Users(pool, load()), count, concurrency, rate)
        finally:
            await pool.close()

    return uvloop.run(main())


async def _eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 300.0) -> None:
    async with asyncio.timeout(within):
        while True:
            done = check()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return
            await asyncio.sleep(0.01)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Bench:
    def __init__(self, database_url: str, args: argparse.Namespace) -> None:
        self.database_url = database_url
        self.args = args
        self.queries = load()
        suffix = uuid4().hex[:12]
        self.settings = RelaySettings(
            amqp_url=AMQP_URL, exchange=f"users.bench.{suffix}", queue=f"users.bench.{suffix}"
        )
        self.confirmed: dict[UUID, float] = {}

    def on_published(self, rows: Sequence[OutboxRow]) -> None:
        now = time.monotonic()
        for row in rows:
            self.confirmed.setdefault(row.event_id, now)

    async def commands(self, users: Users) -> dict[UUID, float]:
        count, concurrency, processes = (
            self.args.commands,
            self.args.concurrency,
            self.args.load_processes,
        )
        rate = self.args.rate
        if self.args.in_process:
            return await run_commands(users, count, concurrency, rate)
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=spawn) as executor:
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        executor,
                        _load_process,
                        self.database_url,
                        count // processes,
                        max(1, concurrency // processes),
                        None if rate is None else rate / processes,
                    )
                    for _ in range(processes)
                )
            )
        return {event: at for part in parts for event, at in part.items()}

    async def run(self) -> None:
        pool = await create_pool(self.database_url, min_size=4, max_size=32)
        users, queries, settings = Users(pool, self.queries), self.queries, self.settings

        async def drained() -> bool:
            return await outbox_backlog(pool, queries) == 0

        async with aiormq.connect(AMQP_URL) as broker:
            channel = await broker.channel()
            await channel.exchange_declare(settings.exchange, exchange_type="topic", durable=True)
            await channel.queue_declare(settings.queue, durable=True)
            await channel.queue_bind(settings.queue, settings.exchange, routing_key="#")
            try:
                # --- live ---
                relay = Relay(
                    pool, self.database_url, queries, settings, on_published=self.on_published
                )
                task = asyncio.create_task(relay.run())
                await _eventually(lambda: relay.health().leader)
                backlogs: list[int] = []
                sampler = asyncio.create_task(self.sample_backlog(pool, backlogs))
                committed = await self.commands(users)
                took = max(committed.values()) - min(committed.values())
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
                await _eventually(drained)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

                latencies = sorted(self.confirmed[e] - at for e, at in committed.items())
                span = max(self.confirmed.values()) - min(committed.values())
                q = statistics.quantiles(latencies, n=100)
                where = (
                    "in the relay's event loop"
                    if self.args.in_process
                    else f"from {self.args.load_processes} other processes"
                )
                at_a_time = self.args.concurrency
                paced = "" if self.args.rate is None else f", paced at {self.args.rate:g}/s"
                print(f"live: {len(committed)} commands, {at_a_time} at a time, {where}{paced}")
                print(f"  commits:          {len(committed) / took:7.0f} /s")
                print(f"  publish rate:     {len(committed) / span:7.0f} events/s (sustained)")
                print(
                    f"  commit → confirm: p50 {_ms(q[49])}, p90 {_ms(q[89])}, "
                    f"p99 {_ms(q[98])}, max {_ms(latencies[-1])}"
                )
                half = len(backlogs) // 2
                print(
                    f"  outbox backlog:   max {max(backlogs, default=0)}, mean of the first half "
                    f"{statistics.fmean(backlogs[:half] or [0]):.0f}, of the second "
                    f"{statistics.fmean(backlogs[half:] or [0]):.0f} (sampled every 50 ms)"
                )

                # --- drain: a backlog, then a relay ---
                committed_too = await self.commands(users)
                backlog = await outbox_backlog(pool, queries)
                relay = Relay(pool, self.database_url, queries, settings)
                started = time.monotonic()
                task = asyncio.create_task(relay.run())
                await _eventually(drained)
                seconds = time.monotonic() - started
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                print(f"drain: {backlog} events waiting, all published in {seconds:.2f} s")
                rate = backlog / seconds
                print(f"  publish rate:     {rate:7.0f} events/s (connecting included)")

                # Every event reached the queue (duplicates aside).
                delivered = await self.consume(channel, len(committed) + len(committed_too))
                assert delivered == {str(e) for e in (committed | committed_too)}
                print(f"consumer: all {len(delivered)} events delivered")
            finally:
                await channel.queue_delete(settings.queue)
                await channel.exchange_delete(settings.exchange)
                await pool.close()

    async def sample_backlog(self, pool: asyncpg.Pool, into: list[int]) -> None:
        while True:
            into.append(await outbox_backlog(pool, self.queries))
            await asyncio.sleep(0.05)

    async def consume(self, channel: aiormq.abc.AbstractChannel, expected: int) -> set[str]:
        delivered: set[str] = set()

        async def on_message(message: DeliveredMessage) -> None:
            delivered.add(message.header.properties.message_id)

        consuming = await channel.basic_consume(self.settings.queue, on_message, no_ack=True)
        await _eventually(lambda: len(delivered) >= expected, within=60)
        await channel.basic_cancel(consuming.consumer_tag)
        return delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="users at a time, in all")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--in-process", action="store_true", help="commands in the relay's loop")
    parser.add_argument(
        "--rate", type=float, help="commands per second, in all (default: flat out)"
    )
    args = parser.parse_args()
    name = f"usersvc_bench_{uuid4().hex[:12]}"
    base, _, _ = ADMIN_URL.rpartition("/")
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        apply_migrations(f"{base}/{name}")
        uvloop.run(Bench(f"{base}/{name}", args).run())
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
