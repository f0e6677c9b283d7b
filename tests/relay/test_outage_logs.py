"""What an operator reads while RabbitMQ is away: one WARNING when an outage begins,
one INFO when the relay is connected again, nothing at ERROR and no traceback, however
many reconnection attempts fail in between."""

import asyncio
import logging
import socket

import pytest

from tests.relay.support import Proxy, StartRelay, eventually

RELAY_LOGGER = "usersvc.amqp.relay"


def _shown(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What a service at the default INFO level prints, from the relay and its client."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith(("usersvc.amqp", "aiormq"))
    ]


def _attempts(caplog: pytest.LogCaptureFixture) -> int:
    """Failed reconnection attempts after the first (logged at DEBUG only)."""
    return sum("still out" in r.getMessage() for r in caplog.records)


def _lines(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.levelname} {r.name} {r.getMessage()}" for r in records]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    # Then DEBUG for the relay alone (the capturing handler takes the last level set).
    caplog.set_level(logging.DEBUG, logger=RELAY_LOGGER)  # to count the attempts
    return caplog


async def test_no_broker_at_all_is_one_warning_and_no_error_or_traceback(
    start_relay: StartRelay, capture: pytest.LogCaptureFixture
) -> None:
    # A first local run with no RabbitMQ: the connection is refused, attempt after attempt.
    relay, _ = await start_relay(amqp_url=f"amqp://guest:guest@127.0.0.1:{_closed_port()}/")
    await asyncio.sleep(2.0)
    assert relay.health().broker == "disconnected"
    assert _attempts(capture) >= 3, "several attempts must fail for this test to mean much"
    shown = _shown(capture)
    assert [r.levelno for r in shown] == [logging.WARNING], _lines(shown)
    (warning,) = shown
    assert "events wait in the outbox" in warning.getMessage()
    assert warning.exc_info is None


async def test_a_broker_outage_logs_one_warning_then_one_info_and_no_traceback(
    start_relay: StartRelay, proxy: Proxy, capture: pytest.LogCaptureFixture
) -> None:
    relay, _ = await start_relay(amqp_url=proxy.url)
    await eventually(lambda: relay.health().leader)
    capture.clear()

    proxy.cut()  # the link drops while the relay leads, and new ones are refused
    await asyncio.sleep(2.0)
    assert relay.health().broker == "disconnected"
    proxy.restore()
    await eventually(lambda: relay.health().leader)

    assert _attempts(capture) >= 3, "several attempts must fail for this test to mean much"
    shown = _shown(capture)
    assert [r.levelno for r in shown] == [logging.WARNING, logging.INFO], _lines(shown)
    warning, info = shown
    assert "events wait in the outbox" in warning.getMessage()
    assert "connected again after" in info.getMessage()
    assert not [r for r in shown if r.exc_info], _lines(shown)
