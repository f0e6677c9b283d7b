"""The Prometheus metrics (names agreed in docs/telemetry.md's table) and ``GET /metrics``.

Under gunicorn every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus-client's multiprocess mode) and a scrape of any worker sums them all.
Gauges say how they combine: ``livesum`` for what adds up over live workers. The
outbox gauges are not stored at all: they are read from the database at scrape
time, so every worker and every replica reports the same truth.
"""

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from usersvc.amqp.messages import OutboxRow

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ACQUIRE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0)
UNMATCHED = "unmatched"  # the route label of a path no route matches

HTTP_REQUESTS = Counter("usersvc_http_requests", "Requests answered", ("method", "route", "status"))
HTTP_DURATION = Histogram(
    "usersvc_http_request_duration_seconds",
    "Time to answer a request",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "usersvc_http_requests_in_flight", "Requests being handled", multiprocess_mode="livesum"
)
COMMANDS = Counter(
    "usersvc_commands",
    "Domain commands by outcome (ok or the contract code)",
    ("command", "outcome"),
)
# No label: the key is the client's, and its endpoint is in the request metrics.
IDEMPOTENT_REPLAYS = Counter(
    "usersvc_idempotent_replays", "Commands answered from an Idempotency-Key's stored response"
)
# Requests refused before their operation ran (§5): no client id as a label, since
# callers are unbounded in number; the access log names them.
REFUSALS = ("unauthenticated", "insufficient_scope", "too_many_requests")
HTTP_REFUSED = Counter("usersvc_http_requests_refused", "Requests refused by reason", ("reason",))
for _reason in REFUSALS:  # at 0 from the start, so a panel reads 0 rather than "No data"
    HTTP_REFUSED.labels(_reason)
HTTP_CONNECTIONS_REFUSED = Counter(
    "usersvc_http_connections_refused",
    "Connections answered 503 and closed at once, past a bound on open connections",
    ("bound",),
)
for _bound in ("per_peer", "total"):
    HTTP_CONNECTIONS_REFUSED.labels(_bound)
DB_POOL_SIZE = Gauge(
    "usersvc_db_pool_size", "Connections open in the pool(s)", multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "usersvc_db_pool_connections_in_use",
    "Connections checked out of the pool",
    multiprocess_mode="livesum",
)
DB_POOL_ACQUIRE = Histogram(
    "usersvc_db_pool_acquire_seconds",
    "Time waiting to acquire a pool connection",
    buckets=ACQUIRE_BUCKETS,
)
DB_TRANSACTION_RETRIES = Counter(
    "usersvc_db_transaction_retries", "Transactions run again", ("reason",)
)
RELAY_PUBLISHED = Counter(
    "usersvc_relay_events_published", "Events confirmed by the broker", ("event",)
)
RELAY_PUBLISH_FAILURES = Counter(
    "usersvc_relay_publish_failures", "Publishes nacked, returned or lost"
)
RELAY_LEADER = Gauge(
    "usersvc_relay_leader", "1 in the process whose relay leads", multiprocess_mode="livesum"
)
# The lowest over workers: 0 as soon as any worker's relay lost the broker.
RELAY_BROKER_CONNECTED = Gauge(
    "usersvc_relay_broker_connected",
    "1 while the relay's broker connection is up",
    multiprocess_mode="livemin",
)

# Labelled children, looked up once: ``labels()`` takes a lock and builds a tuple.
_requests: dict[tuple[str, str, int], Counter] = {}
_durations: dict[tuple[str, str], Histogram] = {}
_commands: dict[tuple[str, str], Counter] = {}


# What no answer hands over sooner (a request's start, a pool checkout) is handed over
# within this many seconds.
HAND_OVER_WITHIN = 0.05


class _Turn:
    """What this process measured lately, handed to prometheus-client when the turn of
    its event loop in which a request ended (or a command was decided) ends, at the
    latest ``HAND_OVER_WITHIN`` after a count, and before every scrape.

    prometheus-client takes a lock and walks a few calls for every increment: some
    ten per request, a tenth of the instructions of a GET. Counted here in plain
    ints and lists, they cost one increment per metric and hand-over, and under load
    a hand-over carries several requests. A request's start and its pool checkouts
    wait for its end (one hand-over a request, not one for each turn it spans, which
    was a fifth of a lone GET's instructions), or for a timer armed at most once per
    ``HAND_OVER_WITHIN``: a request that takes longer is in flight for other workers
    within that. The pool's gauge and histogram always wait for that timer. Other
    gunicorn workers, reading the shared files, see an answered request once its turn
    has ended, the pool's numbers within ``HAND_OVER_WITHIN``.
    """

    __slots__ = (
        "acquire_waits",
        "commands",
        "due",
        "durations",
        "in_flight",
        "in_use",
        "requests",
        "ticking",
    )
    due: asyncio.AbstractEventLoop | None  # the loop whose next turn hands these over
    ticking: asyncio.AbstractEventLoop | None  # the loop whose timer will hand them over

    def __init__(self) -> None:
        self.in_flight = 0
        self.in_use = 0
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], list[float]] = {}
        self.acquire_waits: list[float] = []
        self.commands: dict[tuple[str, str], int] = {}
        self.due = None
        self.ticking = None


_turn = _Turn()


def _forget_parents_counts() -> None:
    """A forked worker hands over only what it counted itself."""
    global _turn
    _turn = _Turn()


os.register_at_fork(after_in_child=_forget_parents_counts)


def _due() -> None:
    """After a count of what ends something: its hand-over is due when this turn of the
    loop ends (at once without a running loop). A hand-over due on another loop is
    made at once: that loop may never turn again (one that stopped, or a forked
    worker's parent's)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush()
        return
    turn = _turn
    if turn.due is not loop:
        if turn.due is not None:
            flush()
        turn.due = loop
        loop.call_soon(_answered)


def _due_later() -> None:
    """After a count of what starts something: handed over with the next end's, or by
    a timer armed if none is (one timer per ``HAND_OVER_WITHIN`` at most, not one per
    turn: under load every turn ends requests)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush()
        return
    if _turn.ticking is not loop:
        _turn.ticking = loop
        loop.call_later(HAND_OVER_WITHIN, _tick, loop)


def _tick(loop: asyncio.AbstractEventLoop) -> None:
    if _turn.ticking is loop:
        _turn.ticking = None
    flush()


def flush() -> None:
    """Hand everything counted to prometheus-client (a scrape does this first)."""
    turn = _turn
    turn.due = None
    _hand_over(turn)
    _hand_over_pool(turn)


def _answered() -> None:
    """The hand-over at the end of a turn that ended requests: what they answered. The
    pool's checkouts wait for the timer (or a scrape): they need no other worker to
    see them the moment a request is answered, and were half of this hand-over."""
    turn = _turn
    turn.due = None
    _hand_over(turn)
    if turn.in_use or turn.acquire_waits:
        _due_later()


def _hand_over_pool(turn: _Turn) -> None:
    if turn.in_use:
        DB_POOL_IN_USE._value.inc(turn.in_use)
        turn.in_use = 0
    if turn.acquire_waits:
        waits, turn.acquire_waits = turn.acquire_waits, []
        observe_all(DB_POOL_ACQUIRE, waits)


def _hand_over(turn: _Turn) -> None:
    # The metrics' values directly (``_value``, as observe_all the buckets): the public
    # inc() checks each time what cannot fail here, a third of an increment's cost.
    if turn.in_flight:
        HTTP_IN_FLIGHT._value.inc(turn.in_flight)
        turn.in_flight = 0
    if turn.requests:
        requests, turn.requests = turn.requests, {}
        for (method, route, status), n in requests.items():
            counter = _requests.get((method, route, status))
            if counter is None:
                counter = _requests[method, route, status] = HTTP_REQUESTS.labels(
                    method, route, str(status)
                )
            counter._value.inc(n)
    if turn.durations:
        durations, turn.durations = turn.durations, {}
        for (method, route), seconds in durations.items():
            histogram = _durations.get((method, route))
            if histogram is None:
                histogram = _durations[method, route] = HTTP_DURATION.labels(method, route)
            observe_all(histogram, seconds)
    if turn.commands:
        counted, turn.commands = turn.commands, {}
        for key, n in counted.items():
            counter = _commands.get(key)
            if counter is None:
                counter = _commands[key] = COMMANDS.labels(*key)
            counter._value.inc(n)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each value, as one increment per bucket touched and
    one for the sum (of prometheus-client's own bucket and sum values: the histogram
    keeps a count per bucket, the first whose bound is not below the value).
    tests/telemetry/test_metrics_batches.py holds it to one ``observe`` per value."""
    bounds = histogram._upper_bounds
    buckets: dict[int, int] = {}
    total = 0.0
    for value in values:
        at = bisect_left(bounds, value)
        buckets[at] = buckets.get(at, 0) + 1
        total += value
    for at, n in buckets.items():
        histogram._buckets[at].inc(n)
    histogram._sum.inc(total)


def request_started() -> None:
    _turn.in_flight += 1
    _due_later()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """A request answered that ``request_started`` did not count (one refused unread)."""
    _observe(_turn, method, route, status, seconds)
    _due()


def request_ended(method: str, route: str, status: int, seconds: float) -> None:
    """A request answered that ``request_started`` counted in flight."""
    turn = _turn
    turn.in_flight -= 1
    _observe(turn, method, route, status, seconds)
    _due()


def _observe(turn: _Turn, method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    turn.requests[key] = turn.requests.get(key, 0) + 1
    durations = turn.durations.get((method, route))
    if durations is None:
        turn.durations[method, route] = [seconds]
    else:
        durations.append(seconds)


def refused(reason: str) -> None:
    """A request refused (rare enough to count at once)."""
    HTTP_REFUSED.labels(reason).inc()


def connection_refused(bound: str) -> None:
    HTTP_CONNECTIONS_REFUSED.labels(bound).inc()


def count_command(command: str, outcome: str) -> None:
    commands = _turn.commands
    key = (command, outcome)
    commands[key] = commands.get(key, 0) + 1
    _due()


# The pools of this process (the API's, the relay's when it runs alone); asyncpg's
# pools take no weak reference, so a closed pool is dropped at the next update.
_pools: set[asyncpg.Pool] = set()
POOL_SIZE_EVERY = 1.0  # seconds: the size changes only as connections open and close
_size_updated = 0.0


def track_pool(pool: asyncpg.Pool) -> None:
    _pools.add(pool)
    update_pool_size()


def update_pool_size() -> None:
    """Counting the pools' connections walks them all: done at a scrape, at most once
    a second on the request path."""
    global _size_updated
    size = 0
    for pool in list(_pools):
        if pool.is_closing():
            _pools.discard(pool)
            continue
        size += pool.get_size()
    DB_POOL_SIZE.set(size)
    _size_updated = time.monotonic()


def acquired(started: float) -> None:
    """A connection was checked out of a pool (``started``: when the wait began)."""
    now = time.perf_counter()
    turn = _turn
    turn.acquire_waits.append(now - started)
    turn.in_use += 1
    _due_later()
    if time.monotonic() - _size_updated > POOL_SIZE_EVERY:
        update_pool_size()


def released() -> None:
    _turn.in_use -= 1
    _due_later()


# --- the scrape


class _Scrape:
    """What one scrape shows: the stored metrics and the ones read just now."""

    def __init__(self, stored: Iterable[Metric], read_now: Iterable[Metric]) -> None:
        self._stored = stored
        self._read_now = read_now

    def collect(self) -> Iterator[Metric]:
        yield from self._stored
        yield from self._read_now


def _stored_metrics() -> Iterable[Metric]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry.collect()
    return REGISTRY.collect()


def outbox_metrics(backlog: int, oldest_age: float) -> list[Metric]:
    return [
        GaugeMetricFamily(
            "usersvc_outbox_backlog",
            "Events committed, not yet confirmed by the broker",
            value=backlog,
        ),
        GaugeMetricFamily(
            "usersvc_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none)",
            value=oldest_age,
        ),
    ]


def metrics_handler(
    read_outbox: Callable[[web.Request], Awaitable[tuple[int, float] | None]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /metrics``: the stored metrics of every worker and the outbox gauges.

    ``read_outbox`` answers (backlog, oldest age) or None when the database does
    not: the scrape then goes without those two rather than failing.
    """

    async def handle(request: web.Request) -> web.Response:
        outbox = await read_outbox(request)
        flush()  # what this turn counted, the read just now included
        update_pool_size()
        read_now = outbox_metrics(*outbox) if outbox is not None else []
        body = generate_latest(_Scrape(_stored_metrics(), read_now))  # type: ignore[arg-type]
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def published(rows: Sequence["OutboxRow"]) -> None:
    """The relay's ``on_published``: events the broker confirmed, by event name."""
    for row in rows:
        RELAY_PUBLISHED.labels(row.event_name).inc()
