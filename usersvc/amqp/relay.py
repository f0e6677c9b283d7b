"""The outbox relay: committed events to RabbitMQ, in commit order, at least once.

One relay leads across all processes and replicas: it holds a PostgreSQL advisory
lock on a connection of its own, and the others wait until that session ends. The
leader, when idle, wakes on NOTIFY (a slow poll covers a lost one) and waits a moment
for the commits that come together; while batches keep finding rows, it looks again
after a moment rather than listen. It publishes a batch in waves of one write each
(each user's next row) with their publisher confirms in flight together, and deletes
the confirmed rows, in one transaction that holds the batch's rows locked. Broker and
database outages are logged and retried with capped exponential backoff;
:meth:`Relay.run` ends when cancelled, or soon after :meth:`Relay.stop`: once the batch
in flight has its confirms and its rows are deleted (so a shutdown sends nothing
twice), and one more batch has gone.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Literal
from uuid import UUID

import aiormq
import asyncpg
from aiormq.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPError, DeliveryError
from attrs import field, frozen
from attrs.validators import ge, gt, min_len
from pamqp.commands import Basic

from usersvc.amqp.messages import OutboxRow, backoff_delay, settled, to_message
from usersvc.amqp.publishing import publish_many
from usersvc.db.idempotency import delete_expired_keys
from usersvc.db.pool import init_connection
from usersvc.db.queries import Queries
from usersvc.telemetry import metrics
from usersvc.telemetry.logs import safe_message
from usersvc.telemetry.tracing import end_publish_span, start_publish_span

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "usersvc_outbox"  # the outbox trigger's (migrations/0002_outbox.sql)
CLEANUP_SLICE = 10_000  # rows deleted per statement
BUSY_PAUSE = 0.05  # seconds; a batch row was locked by an erasure that commits soon
CLOSE_TIMEOUT = 5.0

# Failures of the outside world: one WARNING when an outage begins, one INFO when it
# ends, no traceback. Anything else is a bug and is logged with its traceback (and
# retried all the same).
_OUTAGES = (OSError, AMQPError, asyncpg.PostgresError, asyncpg.InterfaceError)


class _BrokerOutageNoise(logging.Filter):
    """aiormq logs every failed connection attempt as an ERROR, and a dropped connection
    with a traceback; the relay reports the outage itself, once."""

    NOISE = (
        "error when creating transport",
        "Cancelling cause reader exited abnormally",
        "Unexpected connection close from remote",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.NOISE))


logging.getLogger("aiormq.connection").addFilter(_BrokerOutageNoise())


@frozen
class RelaySettings:
    amqp_url: str = field(repr=False)  # may carry a password
    exchange: str = field(default="users", validator=min_len(1))
    # Durable and bound with "#", so nothing is dropped before consumers bind their own.
    queue: str = field(default="users", validator=min_len(1))
    batch_size: int = field(default=500, validator=gt(0))
    poll_interval: float = field(default=5.0, validator=gt(0))  # for a lost NOTIFY
    # After a wake, wait this long before fetching, so the commits that come together
    # go in one batch: under load, one transaction and one write to the broker carry
    # many events instead of a few. Adds at most this much to an event's latency.
    batch_wait: float = field(default=0.01, validator=ge(0))
    # While batches keep finding rows, the wait before the next look (the relay does
    # not listen then): under load a batch carries what this long committed, and a
    # longer one makes fewer, bigger batches, each costing the relay, the database and
    # the broker less per event. Adds at most this much to an event's latency.
    drain_wait: float = field(default=0.025, validator=ge(0))
    cleanup_interval: float = field(default=600.0, validator=gt(0))
    # VACUUM the outbox once this many rows were deleted since the last one, at most
    # once per vacuum_interval: a fetch walks past every row deleted since then.
    vacuum_after: int = field(default=10_000, validator=gt(0))
    vacuum_interval: float = field(default=10.0, validator=ge(0))
    backoff_initial: float = field(default=0.5, validator=gt(0))
    backoff_max: float = field(default=30.0, validator=gt(0))
    # How often a waiting relay tries to take the lead (the takeover delay at most).
    lock_retry_interval: float = field(default=1.0, validator=gt(0))
    # A batch's rows stay locked until its confirms come, and a permanent deletion
    # of one of their users waits for them: keep this short.
    confirm_timeout: float = field(default=10.0, validator=gt(0))
    connect_timeout: float = field(default=10.0, validator=gt(0))
    db_command_timeout: float = field(default=30.0, validator=ge(0))


@frozen
class RelayHealth:
    broker: Literal["connected", "disconnected"]
    leader: bool
    # The last failure's type only (``ConnectionRefusedError``): the health check is
    # answered to anyone who reaches it, and an error's text names hosts, users, queues.
    last_error: str | None


@frozen
class _Batch:
    fetched: int
    deleted: int = 0
    problem: str | None = None  # a message returned or nacked: retry after a backoff
    problem_type: str | None = None  # the type of the problem's first error, for health
    busy: bool = False  # a row was locked by someone else: retry shortly


class BrokerConnectionLostError(ConnectionError):
    pass


class PoolerRefusedError(ConnectionError):
    """The relay's database URL leads to a pooler in transaction mode (PgBouncer), which
    refuses the session settings: it would not keep the session the lock and LISTEN
    live in. Retried like an outage, and said once, until someone fixes the setting."""

    def __init__(self, refusal: str) -> None:
        super().__init__(
            f"{refusal}: the relay needs a direct connection to PostgreSQL (its advisory "
            "lock and LISTEN live in the session), not a pooler in transaction mode; set "
            "USERSVC_RELAY_DATABASE_URL"
        )


async def outbox_backlog(pool: asyncpg.Pool, queries: Queries) -> int:
    """Events committed and not yet confirmed by the broker."""
    return await pool.fetchval(queries.relay_count_backlog)


def _describe(error: BaseException) -> str:
    """For the log: the type and the message (withheld where it may quote a value)."""
    message = safe_message(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _row(record: asyncpg.Record) -> OutboxRow:
    return OutboxRow(
        position=record["position"],
        event_id=record["event_id"],
        event_name=record["event_name"],
        user_id=record["user_id"],
        occurred_at=record["occurred_at"],
        data=record["data"],
        headers=record["headers"],
        actor=record["actor"],
    )


class Relay:
    """Publishes the outbox; run one per process, only one of them publishes at a time."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        queries: Queries,
        settings: RelaySettings,
        *,
        on_published: Callable[[Sequence[OutboxRow]], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """``on_published`` is called with each batch's rows once they are confirmed and
        deleted (for metrics); ``jitter`` draws the backoff's random part."""
        self._pool = pool
        self._database_url = database_url
        self._q = queries
        self._settings = settings
        self._on_published = on_published
        self._jitter = jitter
        self._connected = False
        self._leader = False
        self._last_error_type: str | None = None  # what health tells of the last failure
        self._attempt = 0  # sessions failed in a row (each short-lived), for the backoff
        self._outage_since: float | None = None  # loop time of the outage's first failure
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # the leader's, set by a NOTIFY
        self._vacuuming: asyncio.Task[None] | None = None
        self._may_vacuum: bool | None = None  # asked at the first vacuum

    def health(self) -> RelayHealth:
        return RelayHealth(
            broker="connected" if self._connected else "disconnected",
            leader=self._leader,
            last_error=self._last_error_type,
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch (its confirms, its marks)."""
        self._stopping.set()

    async def run(self) -> None:
        """Relay until stopped or cancelled: connect, wait for the lead, publish; on
        failure back off."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                await self._session()
            except _OUTAGES as error:
                self._last_error_type = type(error).__name__
                if self._outage_since is None:
                    self._outage_since = loop.time()
                    log.warning(
                        "outbox relay: %s; events wait in the outbox, reconnecting",
                        _describe(error),
                    )
                else:
                    log.debug("outbox relay: still out: %s", _describe(error))
            except Exception as error:
                self._last_error_type = type(error).__name__
                log.exception("outbox relay failed")
            if loop.time() - started >= self._settings.backoff_max:
                self._attempt = 0  # a new outage, not the same one going on
            if self._stopping.is_set():
                break
            delay = self._backoff(self._attempt)
            self._attempt += 1
            log.debug("outbox relay: reconnecting in %.2f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        log.info("outbox relay: stopped")

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        metrics.RELAY_BROKER_CONNECTED.set(connected)

    def _set_leader(self, leader: bool) -> None:
        self._leader = leader
        metrics.RELAY_LEADER.set(leader)

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return backoff_delay(attempt, s.backoff_initial, s.backoff_max, self._jitter())

    async def _session(self) -> None:
        """One connection to each side; returns only when stopping, else by raising."""
        async with AsyncExitStack() as stack:
            # Entered first, closed last: the lock is released only once this relay
            # can publish nothing more (its broker connection is closed).
            db = await self._connect_db()
            stack.push_async_callback(_close_db, db)
            broker = await self._connect_broker()
            stack.push_async_callback(_close_broker, broker)
            channel = await broker.channel(publisher_confirms=True)
            await self._declare(channel)
            self._set_connected(True)
            stack.callback(self._set_connected, False)
            self._last_error_type = None
            # The outage's one INFO: with the lead, or when another relay has it.
            again = self._outage_over()
            while not await db.fetchval(self._q.relay_try_lock):
                if again:
                    log.info("outbox relay: %s; another relay leads", again)
                    again = ""
                await self._pause(broker, self._settings.lock_retry_interval)
                if self._stopping.is_set():
                    return
            self._set_leader(True)
            stack.callback(self._set_leader, False)
            log.info(
                "outbox relay: leading (exchange %r)%s",
                self._settings.exchange,
                f"; {again}" if again else "",
            )
            stack.push_async_callback(self._stop_vacuum)
            await self._lead(db, channel, broker)

    def _outage_over(self) -> str:
        """ "connected again after …" when an outage just ended, else ""."""
        if self._outage_since is None:
            return ""
        lasted = asyncio.get_running_loop().time() - self._outage_since
        self._outage_since = None
        return f"connected again after {lasted:.1f} s"

    async def _connect_db(self) -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(
                self._database_url,
                timeout=self._settings.connect_timeout,
                command_timeout=self._settings.db_command_timeout or None,
                server_settings={
                    "application_name": "usersvc-relay",
                    # The lock is the session's: if this host vanishes without closing the
                    # connection, the server ends the session (freeing the lead) in ~30 s
                    # rather than after the system's default of hours.
                    "tcp_keepalives_idle": "15",
                    "tcp_keepalives_interval": "5",
                    "tcp_keepalives_count": "3",
                    # Deleting sent rows need not wait for the WAL to reach disk: a
                    # deletion lost in a database crash only sends those events again,
                    # which at-least-once allows, and every batch is one fsync shorter.
                    "synchronous_commit": "off",
                },
            )
        except asyncpg.ProtocolViolationError as error:
            if "unsupported startup parameter" in str(error):
                raise PoolerRefusedError(str(error)) from None
            raise
        try:
            await init_connection(connection)  # the outbox's jsonb, read as the pool reads it
        except BaseException:
            connection.terminate()
            raise
        return connection

    async def _connect_broker(self) -> AbstractConnection:
        async with asyncio.timeout(self._settings.connect_timeout):
            return await aiormq.connect(self._settings.amqp_url)

    async def _declare(self, channel: AbstractChannel) -> None:
        s = self._settings
        await channel.exchange_declare(s.exchange, exchange_type="topic", durable=True)
        await channel.queue_declare(s.queue, durable=True)
        await channel.queue_bind(s.queue, s.exchange, routing_key="#")

    async def _pause(
        self, broker: AbstractConnection, seconds: float, wake: asyncio.Event | None = None
    ) -> None:
        """Wait ``seconds`` (less when woken); raise as soon as the broker connection drops,
        so health tells of it and the reconnection starts at once."""
        closing = broker.closing
        waiters: set[asyncio.Future] = {closing, asyncio.ensure_future(self._stopping.wait())}
        if wake is not None:
            waiters.add(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if broker.is_closed:
            raise BrokerConnectionLostError("the broker connection was closed")

    async def _lead(
        self, db: asyncpg.Connection, channel: AbstractChannel, broker: AbstractConnection
    ) -> None:
        s = self._settings
        loop = asyncio.get_running_loop()
        wake = self._wake
        notified = self._notified
        # NOTIFY comes at the commit of each transaction that wrote events, but only
        # while the relay listens: when idle. While batches keep finding rows, it
        # looks again after the drain wait instead, since a listening session makes
        # every commit signal it (and it then this process): CPU per event that the
        # database, the relay and the commands all share, for a wake not needed.
        await db.add_listener(NOTIFY_CHANNEL, notified)
        listening = True
        # A lost session (and with it the lead) is noticed at the next fetch.
        db.add_termination_listener(lambda *_: wake.set())
        next_cleanup = loop.time()
        failures = 0
        deleted, next_vacuum = 0, loop.time()
        while True:
            if loop.time() >= next_cleanup:
                await self._clean_up()
                next_cleanup = loop.time() + s.cleanup_interval
            wake.clear()  # before the fetch: a commit during the batch wakes the next round
            final = self._stopping.is_set()
            batch = await self._publish_batch(db, channel, broker)
            if final:
                # Fetched after the stop: it took what the requests that finished
                # during the shutdown committed. What comes later waits for a leader.
                return
            deleted += batch.deleted
            if deleted >= s.vacuum_after and loop.time() >= next_vacuum:
                self._vacuum_soon()
                deleted, next_vacuum = 0, loop.time() + s.vacuum_interval
            if batch.busy:
                await self._pause(broker, BUSY_PAUSE)
            elif batch.problem is not None:
                self._last_error_type = batch.problem_type
                log.warning("outbox relay: %s; retrying the batch from there", batch.problem)
                await self._pause(broker, self._backoff(failures))
                failures += 1
            else:
                failures = 0
                self._last_error_type = None
                if batch.fetched >= s.batch_size:
                    continue  # more is waiting: at once
                if batch.fetched:  # commits are coming: look again after the drain wait
                    if listening:
                        await db.remove_listener(NOTIFY_CHANNEL, notified)
                        listening = False
                    await self._pause(broker, s.drain_wait)
                elif not listening:
                    # Idle now: listen, and look once more, since a commit between the
                    # last fetch and the LISTEN sent a NOTIFY this session never hears.
                    await db.add_listener(NOTIFY_CHANNEL, notified)
                    listening = True
                else:
                    idle = min(s.poll_interval, max(0.0, next_cleanup - loop.time()))
                    await self._pause(broker, idle, wake)
                    if wake.is_set() and s.batch_wait:
                        await self._pause(broker, s.batch_wait)

    def _notified(self, *_: object) -> None:
        """A NOTIFY's listener: the outbox has new rows."""
        self._wake.set()

    async def _publish_batch(
        self, db: asyncpg.Connection, channel: AbstractChannel, broker: AbstractConnection
    ) -> _Batch:
        """Publish the oldest unpublished rows and delete those the broker confirmed.

        A lost broker connection is raised only after the transaction has deleted the
        rows confirmed before it, so fewer are sent twice.
        """
        try:
            async with db.transaction():
                records = await db.fetch(self._q.relay_fetch_batch, self._settings.batch_size)
                if not records:
                    return _Batch(0)
                rows = [_row(record) for record in records]
                results = await self._publish_all(channel, broker, rows)
                positions = settled(rows, [isinstance(r, Basic.Ack) for r in results])
                if positions:
                    await db.execute(self._q.relay_delete_sent, positions)
        except asyncpg.LockNotAvailableError:
            return _Batch(0, busy=True)
        if positions and self._on_published is not None:
            sent = set(positions)
            try:
                self._on_published([row for row in rows if row.position in sent])
            except Exception:  # a metric's bug must not stop the events
                log.exception("outbox relay: on_published failed")
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            metrics.RELAY_PUBLISH_FAILURES.inc(len(errors))
        lost = next((e for e in errors if not isinstance(e, DeliveryError)), None)
        if lost is not None:
            raise BrokerConnectionLostError(f"publishing failed: {_describe(lost)}") from lost
        if not errors:
            return _Batch(len(rows), len(positions))
        problem = f"{len(errors)} of {len(rows)} not confirmed: {_describe(errors[0])}"
        return _Batch(len(rows), len(positions), problem, type(errors[0]).__name__)

    async def _publish_all(
        self, channel: AbstractChannel, broker: AbstractConnection, rows: Sequence[OutboxRow]
    ) -> list[object]:
        """Each row's confirm (``Basic.Ack``) or error, in row order.

        Rows go in waves, each wave one write with its confirms in flight together: the
        first wave holds each user's first row of the batch, the next each user's second,
        and so on. A user's row is sent only once the broker confirmed that user's
        previous row, so a refused event is never overtaken by a later one of its user
        (that one gets the same error, unsent). Under load a batch is almost always one
        wave: its users are new or changed once.
        """
        results: list[object] = [None] * len(rows)
        waiting = list(range(len(rows)))
        refused: dict[UUID, BaseException] = {}
        while waiting:
            wave: list[int] = []
            later: list[int] = []
            in_wave: set[UUID] = set()
            for index in waiting:
                user_id = rows[index].user_id
                if user_id in refused:
                    results[index] = refused[user_id]
                elif user_id in in_wave:
                    later.append(index)
                else:
                    in_wave.add(user_id)
                    wave.append(index)
            if not wave:  # the rest were all of users refused in an earlier wave
                break
            outcomes = await self._publish_wave(channel, broker, [rows[i] for i in wave])
            lost: BaseException | None = None
            for index, outcome in zip(wave, outcomes, strict=True):
                results[index] = outcome
                if isinstance(outcome, BaseException):
                    refused[rows[index].user_id] = outcome
                    if not isinstance(outcome, DeliveryError):
                        lost = outcome
            if lost is not None:  # the connection is gone: the rest is not sent
                for index in later:
                    results[index] = lost
                break
            waiting = later
        return results

    async def _publish_wave(
        self, channel: AbstractChannel, broker: AbstractConnection, rows: Sequence[OutboxRow]
    ) -> list[object]:
        """Publish rows of distinct users in one write; each one's confirm or error."""
        exchange = self._settings.exchange
        messages = [to_message(row) for row in rows]
        # Each in the trace of the request that committed its event (its traceparent).
        spans = [
            start_publish_span(
                row.headers,
                f"publish {exchange}",
                **{
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": exchange,
                    "messaging.rabbitmq.destination.routing_key": message.routing_key,
                    "messaging.message.id": str(row.event_id),
                    "usersvc.event.name": row.event_name,
                },
            )
            for row, message in zip(rows, messages, strict=True)
        ]
        confirmations: list[asyncio.Future] = []

        async def send() -> None:
            confirmations.extend(await publish_many(channel, exchange, messages))
            await asyncio.gather(*confirmations, return_exceptions=True)

        outcomes: list[object] = []
        try:
            # The write and the confirms bounded together: by the confirm timeout, and
            # by the connection (aiormq fails the confirms it waits for when it drops,
            # but a write queued behind a dead writer would wait for ever).
            sending = asyncio.ensure_future(send())
            closing = {broker.closing, channel.closing}
            try:
                await asyncio.wait(
                    {sending, *closing},
                    timeout=self._settings.confirm_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in (*closing, sending, *confirmations):
                    waiter.cancel()
            unsettled: BaseException = (
                BrokerConnectionLostError("the broker connection was closed")
                if any(waiter.done() and not waiter.cancelled() for waiter in closing)
                else TimeoutError(f"no confirm within {self._settings.confirm_timeout:g} s")
            )
            failed = sending.exception() if sending.done() and not sending.cancelled() else None
            if failed is not None:
                unsettled = failed  # the write itself failed
            if not confirmations:  # nothing was queued for the broker
                outcomes = [unsettled] * len(rows)
            else:
                outcomes = [_outcome(confirmation, unsettled) for confirmation in confirmations]
        except BaseException as error:
            outcomes = [error] * len(rows)
            raise
        finally:
            for span, outcome in zip(spans, outcomes or [None] * len(rows), strict=True):
                end_publish_span(span, _failure(outcome))
        return outcomes

    def _vacuum_soon(self) -> None:
        """VACUUM the outbox beside the batches (on a pool connection: it takes no lock
        that a command or a batch waits for); one at a time."""
        if self._vacuuming is None or self._vacuuming.done():
            self._vacuuming = asyncio.create_task(self._vacuum())

    async def _vacuum(self) -> None:
        try:
            if self._may_vacuum is None:
                self._may_vacuum = bool(await self._pool.fetchval(self._q.relay_may_vacuum_outbox))
                if not self._may_vacuum:
                    log.info(
                        "outbox relay: this database role may not vacuum the outbox (not its"
                        " owner); autovacuum keeps it small"
                    )
            if self._may_vacuum:
                await self._pool.execute(self._q.relay_vacuum_outbox)
        except _OUTAGES as error:  # the next one may do; the batches go on meanwhile
            log.warning("outbox relay: vacuuming the outbox failed: %s", _describe(error))
        except Exception:
            log.exception("outbox relay: vacuuming the outbox failed")

    async def _stop_vacuum(self) -> None:
        if self._vacuuming is not None:
            self._vacuuming.cancel()
            await asyncio.gather(self._vacuuming, return_exceptions=True)
            self._vacuuming = None

    async def _clean_up(self) -> None:
        """Delete rows an earlier version of the relay marked published (it kept them a
        day), and expired idempotency keys (here: one process at a time does it, the
        leader, every cleanup interval)."""
        deleted = 0
        while True:
            status = await self._pool.execute(self._q.relay_delete_marked, CLEANUP_SLICE)
            count = int(status.split()[-1])
            deleted += count
            if count < CLEANUP_SLICE:
                break
        if deleted:
            log.info("outbox relay: deleted %d rows marked published", deleted)
        expired = await delete_expired_keys(self._pool, self._q)
        if expired:
            log.info("outbox relay: deleted %d expired idempotency keys", expired)


def _outcome(confirmation: asyncio.Future, unsettled: BaseException) -> object:
    """A publish's confirm (``Basic.Ack``) or its error (``unsettled``: not settled)."""
    if confirmation.cancelled():
        return unsettled
    return confirmation.exception() or confirmation.result()


def _failure(outcome: object) -> BaseException | str | None:
    if outcome is None or isinstance(outcome, BaseException):
        return outcome
    return None if isinstance(outcome, Basic.Ack) else "not confirmed by the broker"


async def _close_broker(broker: AbstractConnection) -> None:
    try:
        await broker.close(timeout=CLOSE_TIMEOUT)
    except Exception as error:  # closing a broken connection: nothing left to do
        log.debug("outbox relay: closing the broker connection: %s", _describe(error))


async def _close_db(db: asyncpg.Connection) -> None:
    # A broken session, or a cancellation while closing: drop the socket; the server
    # then ends the session, and its advisory lock with it.
    try:
        await db.close(timeout=CLOSE_TIMEOUT)
    except Exception:
        db.terminate()
    except BaseException:
        db.terminate()
        raise
