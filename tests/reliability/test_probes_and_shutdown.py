"""§6 as operators stop the service: SIGTERM twice to the whole process group (systemd's
``KillMode=control-group``, and ``uv run`` forwards what it gets on top), or SIGINT to
it (a terminal's Ctrl-C), while clients keep sending, through ``uv run usersvc`` and
through gunicorn with two workers. The process exits 0; every request sent got an
answer (2xx or the load's own 4xx, a 503 only before the listener closed); a request
that could not connect was never sent; /readyz answers 503 from the first signal until
the exit while /livez stays 200; and every committed change's event reaches RabbitMQ.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import aiohttp
import asyncpg
import attrs
import pytest

from tests.reliability.groups import (
    REFUSED,
    Group,
    Prober,
    Seen,
    environment,
    probe,
    recording_sender,
)
from tests.reliability.load import (
    Record,
    assert_no_personal_data,
    check_database,
    committed_events,
    keep_commit_log,
    run_load,
)
from tests.reliability.private_postgres import PrivatePostgres, free_port
from tests.reliability.rabbit import (
    Vhost,
    check_delivery,
    declare_counting_queue,
    drain,
    private_vhost,
)
from usersvc.db.pool import init_connection
from usersvc.http.probes import READY_WAIT

CLIENTS = 8
LOAD_SECONDS = 2.0  # before the signal
DRAIN_SECONDS = 3.0
EXIT_SECONDS = 90.0
# The signal reaches the process at once, but a loaded machine may run its handler a
# little later: probes sent this soon after it may still see the process ready.
SIGNAL_SLACK = 1.5
OK = b'{"status":200,"result":{"status":"OK"}}'


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    """One for the module (making one takes seconds); each test its own names in it."""
    with private_vhost() as vhost:
        yield vhost


@attrs.frozen
class Broker:
    url: str
    exchange: str
    queue: str  # the relay's
    counted: str  # the test's, bound to every event

    def settings(self) -> dict[str, str]:
        return {
            "USERSVC_AMQP_URL": self.url,
            "USERSVC_AMQP_EXCHANGE": self.exchange,
            "USERSVC_AMQP_QUEUE": self.queue,
        }


@pytest.fixture
async def broker(vhost: Vhost) -> Broker:
    name = uuid4().hex[:10]
    broker = Broker(vhost.url, f"users.{name}", f"users.{name}", f"counted.{name}")
    await declare_counting_queue(broker.url, broker.exchange, broker.counted)
    return broker


@contextlib.asynccontextmanager
async def connection(database_url: str):
    connection = await asyncpg.connect(database_url)
    try:
        await init_connection(connection)
        yield connection
    finally:
        await connection.close()


def relay_group(database_url: str, broker: Broker) -> Group:
    """``usersvc relay`` on the test's database and broker, its probes on a free port."""
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_HOST="127.0.0.1",
        USERSVC_RELAY_PORT=str(port),
        **broker.settings(),
    )
    return Group([sys.executable, "-m", "usersvc", "relay"], env, port)


async def publish_the_rest(database_url: str, broker: Broker) -> None:
    """``usersvc relay`` until the outbox is empty: what the stopped service had not
    sent yet goes now (the relay confirms what it sent and leaves the rest)."""
    relay = relay_group(database_url, broker)
    try:
        await asyncio.to_thread(relay.wait_ready)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            async with connection(database_url) as db:
                if not await db.fetchval("SELECT count(*) FROM outbox"):
                    break
            await asyncio.sleep(0.2)
        relay.signal(signal.SIGTERM)
        assert await asyncio.to_thread(relay.process.wait, 60) == 0, relay.output()[-3000:]
    finally:
        relay.close()


async def stop_under_load(
    service: Group, database_url: str, broker: Broker, signals: list[int], drain_seconds: float
) -> str:
    """Load, the signals to the group, the exit; then every check of §6."""
    await asyncio.to_thread(service.wait_ready)
    record = Record()
    requests: list[Seen] = []
    stop = asyncio.Event()
    with Prober(service.base) as prober:
        async with aiohttp.ClientSession() as session:
            send = recording_sender(session, service.base, requests)
            load = asyncio.create_task(run_load(send, CLIENTS, stop, record))
            await asyncio.sleep(LOAD_SECONDS)
            signalled = time.monotonic()
            for n, signum in enumerate(signals):
                if n:
                    await asyncio.sleep(0.05)
                service.signal(signum)
            try:
                code = await asyncio.to_thread(service.process.wait, EXIT_SECONDS)
            finally:
                exited = time.monotonic()
                stop.set()
                await load
    output = service.output()
    assert code == 0, output[-5000:]
    assert_no_traceback(output)

    # Every request sent was answered; one that could not connect was never sent.
    readyz, livez = prober.of("/readyz"), prober.of("/livez")
    unanswered = [s for s in [*requests, *readyz, *livez] if isinstance(s.outcome, str)]
    refused = [s.sent for s in [*requests, *readyz, *livez] if s.outcome == REFUSED]
    closed = min(refused, default=exited)  # the listener was closed by then
    assert all(s.outcome == REFUSED for s in unanswered), (
        f"signal at {signalled:.3f}, first refusal at {closed:.3f}, exit at {exited:.3f}",
        [s for s in unanswered if s.outcome != REFUSED][:10],
    )
    assert not record.problems, record.problems[:10]
    statuses = {s.outcome for s in requests}
    assert 500 not in statuses
    late = [s for s in requests if s.outcome == 503 and s.ended > closed]
    assert not late, late[:10]
    answered_after = [
        s for s in requests if s.sent > signalled + SIGNAL_SLACK and s.outcome in (200, 201)
    ]
    if drain_seconds:
        assert answered_after, "no request was served during the drain"

    # /readyz: 200 before the signal, 503 from it (never 200 again) until the exit.
    assert any(s.outcome == 200 for s in readyz if s.ended < signalled)
    after = [s for s in readyz if s.sent > signalled + SIGNAL_SLACK]
    assert all(s.outcome in (503, REFUSED) for s in after), after[:10]
    first_503 = min((s.sent for s in readyz if s.outcome == 503), default=None)
    if first_503 is not None:
        assert not [s for s in readyz if s.sent > first_503 and s.outcome == 200]
    if drain_seconds:
        assert after, "no probe after the signal"
        assert first_503 is not None, readyz[-20:]
        assert first_503 < signalled + SIGNAL_SLACK, readyz[-20:]
        assert [s for s in livez if s.sent > signalled + SIGNAL_SLACK and s.outcome == 200]
    assert all(s.outcome in (200, REFUSED) for s in livez), [
        s for s in livez if s.outcome not in (200, REFUSED)
    ][:10]

    # No event lost: each committed change is in the database as its events say, and
    # every committed event reaches the broker (the rest published by a relay after).
    async with connection(database_url) as db:
        await check_database(db, record)
        events = await committed_events(db)
        left = await db.fetchval("SELECT count(*) FROM outbox")
    if left:
        await publish_the_rest(database_url, broker)
    messages = await drain(broker.url, broker.counted, {e["event_id"] for e in events}, 60)
    duplicates = check_delivery(events, messages)
    assert_no_personal_data(output)
    after_signal = sum(1 for s in requests if s.sent > signalled)
    summary = (
        f"{record.summary()}; exit 0 {exited - signalled:.1f} s after the signal; "
        f"{after_signal} requests sent after it, {len(answered_after)} answered 2xx; "
        f"{sum(1 for s in requests if s.outcome == REFUSED)} refused connections, "
        f"0 unanswered; {len(events)} events committed ({left} unsent at exit), all "
        f"delivered ({duplicates} duplicates)"
    )
    print("\n" + summary)
    return summary


async def service_env(database_url: str, broker: Broker, drain_seconds: float) -> dict[str, str]:
    await keep_commit_log(database_url)
    return environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_DRAIN_SECONDS=str(drain_seconds),
        **broker.settings(),
    )


@pytest.mark.parametrize(
    ("signals", "drain_seconds"),
    [([signal.SIGTERM, signal.SIGTERM], DRAIN_SECONDS), ([signal.SIGINT], 0.0)],
    ids=["sigterm-twice-drain-3s", "sigint-drain-0"],
)
async def test_uv_run_usersvc_stops_on_group_signals_answering_every_request(
    database_url: str, broker: Broker, signals: list[int], drain_seconds: float
):
    env = await service_env(database_url, broker, drain_seconds)
    service = Group.uv_run_usersvc(env)
    try:
        await stop_under_load(service, database_url, broker, signals, drain_seconds)
    finally:
        service.close()


@pytest.mark.parametrize(
    ("signals", "drain_seconds"),
    [([signal.SIGTERM, signal.SIGTERM], DRAIN_SECONDS), ([signal.SIGINT], DRAIN_SECONDS)],
    ids=["sigterm-twice", "sigint"],
)
async def test_gunicorn_with_two_workers_stops_on_group_signals_answering_every_request(
    database_url: str, broker: Broker, signals: list[int], drain_seconds: float
):
    env = await service_env(database_url, broker, drain_seconds)
    service = Group.gunicorn(env, workers=2)
    try:
        await stop_under_load(service, database_url, broker, signals, drain_seconds)
    finally:
        service.close()


def wait_for(check, within: float, every: float = 0.1) -> None:
    """Until ``check()`` holds (at most ``within`` seconds)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s"
        time.sleep(every)


def stop_and_expect_0(service: Group, signum: int = signal.SIGTERM) -> str:
    service.signal(signum)
    code = service.process.wait(EXIT_SECONDS)
    output = service.output()
    assert code == 0, output[-5000:]
    return output


def assert_no_traceback(output: str) -> None:
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 1000) : at + 4000]


def test_readyz_is_503_while_the_database_is_down_and_livez_stays_200():
    server = PrivatePostgres()  # of this test's own, to stop and start
    server.start()
    service = None
    try:
        env = environment(USERSVC_DATABASE_URL=server.url)  # migrated by `usersvc serve`
        service = Group.uv_run_usersvc(env, "--no-relay")
        service.wait_ready()
        server.stop("fast")
        wait_for(lambda: probe(service.base + "/readyz")[0] == 503, within=30)
        for _ in range(10):  # each answered within its own bound, never a hang
            status, body = probe(service.base + "/readyz", timeout=READY_WAIT + 3)
            assert status == 503, body
            assert json.loads(body)["error"]["data"]["code"] == "service_unavailable"
            assert probe(service.base + "/livez") == (200, OK)
        server.start()
        wait_for(lambda: probe(service.base + "/readyz") == (200, OK), within=30)
        # (asyncpg's pool logs its reconnection attempts with their tracebacks)
        stop_and_expect_0(service)
    finally:
        if service is not None:
            service.close()
        server.destroy()


async def test_usersvc_relay_serves_its_metrics_and_probes_and_stops_on_group_signals(
    database_url: str, broker: Broker
):
    relay = relay_group(database_url, broker)
    try:
        await asyncio.to_thread(relay.wait_ready)
        assert await asyncio.to_thread(probe, relay.base + "/livez") == (200, OK)
        event_id = uuid4()
        async with connection(database_url) as db:  # an event, committed as a command does
            await db.execute(
                "INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data)"
                " VALUES ($1, 'UserCreated', $2, now(), '{}'::jsonb)",
                event_id,
                uuid4(),
            )
        messages = await drain(broker.url, broker.counted, {event_id}, within=30)
        assert [m["message_id"] for m in messages] == [event_id]

        def published() -> bool:
            status, body = probe(relay.base + "/metrics")
            assert status == 200
            text = body.decode()
            return 'usersvc_relay_events_published_total{event="UserCreated"} 1.0' in text

        await asyncio.to_thread(wait_for, published, 10)
        _, body = await asyncio.to_thread(probe, relay.base + "/metrics")
        text = body.decode()
        for line in (
            "usersvc_relay_leader 1.0",
            "usersvc_relay_broker_connected 1.0",
            "usersvc_outbox_backlog 0.0",
            "usersvc_relay_publish_failures_total 0.0",
        ):
            assert line in text, text
        assert "usersvc_db_pool_size" in text
        relay.signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        output = await asyncio.to_thread(stop_and_expect_0, relay)
        assert_no_traceback(output)
        assert "outbox relay: stopped" in output
    finally:
        relay.close()


def test_a_connection_accepted_before_the_listener_closed_gets_to_send_its_request(
    database_url: str,
):
    """aiohttp closes such connections at once; here each is answered (Connection:
    close), the one that was idle between two requests and the one that had sent
    nothing yet."""
    env = environment(USERSVC_DATABASE_URL=database_url)
    service = Group.uv_run_usersvc(env, "--no-relay")
    try:
        service.wait_ready()
        fresh = socket.create_connection(("127.0.0.1", service.port))  # nothing sent yet
        between = socket.create_connection(("127.0.0.1", service.port))
        between.sendall(raw_get("/livez"))
        assert read_answer(between).startswith(b"HTTP/1.1 200")  # kept alive
        service.signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(service.port), within=10, every=0.01)
        for sock in (fresh, between):
            sock.sendall(raw_get("/livez"))
            answer = read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert b"Connection: close" in answer, answer
            sock.close()
        assert service.process.wait(EXIT_SECONDS) == 0, service.output()[-5000:]
    finally:
        service.close()


def raw_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (its head and its Content-Length of body)."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return data


def refuses_connections(port: int) -> bool:
    """The listener is closed: a new connection is refused (while the service still
    accepts what was queued, an attempt is dropped and times out: not yet)."""
    with socket.socket() as attempt:
        attempt.settimeout(0.2)
        try:
            attempt.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False


def test_ctrl_c_under_uv_run_with_the_embedded_postgresql_exits_0_without_a_traceback(
    tmp_path: Path,
):
    tmp_path.chmod(0o755)  # the embedded server runs as its own system user when we are root
    service = Group.uv_run_usersvc(environment(), "--no-relay", cwd=tmp_path)
    try:
        service.wait_ready()
        output = stop_and_expect_0(service, signal.SIGINT)
        assert_no_traceback(output)
        assert "embedded development PostgreSQL" in output
    finally:
        service.close()
    assert not postgres_running_on(tmp_path / ".pgdata"), "the embedded PostgreSQL still runs"


def postgres_running_on(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
