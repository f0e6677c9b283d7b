"""The log lines: their shape, the scrubbing of asyncpg's errors, the start-up lines."""

import asyncio
import io
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from tests.telemetry.processes import REPO, environment, json_lines
from tests.test_migrations import MIGRATION_IDS
from usersvc.telemetry.logs import _TurnBuffered, configure_logging, reset_logging

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_a_standard_library_line_is_one_json_object_with_time_level_logger_message(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    logging.getLogger("aiormq.connection").warning("broker %s is slow", "x")
    [line] = log_lines()
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert RFC3339_UTC.fullmatch(line["time"])
    assert line["level"] == "warning"
    assert line["logger"] == "aiormq.connection"
    assert line["message"] == "broker x is slow"


async def test_a_unique_violation_logged_with_its_traceback_does_not_quote_the_row(
    pool: asyncpg.Pool, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    email = "conflict.secret@example.com"
    insert = (
        "INSERT INTO users (user_id, firstname, lastname, email, status, created_at)"
        " VALUES (gen_random_uuid(), 'Ivan', 'Petrov', $1, 'active', now())"
    )
    await pool.execute(insert, email)
    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await pool.execute(insert, email)
    assert email in str(raised.value)  # what asyncpg would have put in the log
    logging.getLogger("usersvc.test").error("the insert failed", exc_info=raised.value)
    [line] = log_lines()
    assert email not in repr(line)
    assert "Traceback (most recent call last)" in line["exception"]
    assert "UniqueViolationError" in line["exception"]
    assert "constraint_name=users_email_key" in line["exception"]


def test_an_amqp_frame_logged_at_debug_shows_its_size_not_its_body(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    body = b'{"data": {"email": "frame.secret@example.com", "phone": 79161234567}}'
    frame = ChannelFrame(payload=b"\x01\x00\x01" + body + b"\xce", should_close=False)
    # As aiormq's writer and reader log them (aiormq/connection.py).
    logging.getLogger("aiormq.connection").debug("Prepare to send %r", frame)
    logging.getLogger("aiormq.connection").debug("Sending %r to %s", body, "amqp://broker/")
    logging.getLogger("pamqp.frame").debug("%(body)s", {"body": body})
    [prepared, sending, mapped] = log_lines()
    for line in (prepared, sending, mapped):
        assert "frame.secret" not in repr(line)
        assert "79161234567" not in repr(line)
    size = len(frame.payload)
    assert prepared["message"] == (
        f"Prepare to send ChannelFrame(payload=<{size} bytes>, should_close=False, "
        "drain_future=None)"
    )
    assert sending["message"] == f"Sending <{len(body)} bytes> to amqp://broker/"
    assert mapped["message"] == f"<{len(body)} bytes>"


def test_a_returned_message_logged_by_aiormq_shows_its_delivery_not_its_body(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    body = b'{"firstname": "Returnedname"}'
    delivery = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="users")
    header = ContentHeader(body_size=len(body), properties=Basic.Properties(message_id="m1"))
    message = DeliveredMessage(delivery=delivery, header=header, body=body, channel=None)
    logging.getLogger("aiormq.channel").error("Unhandled message %r returning", message)
    [line] = log_lines()
    assert "Returnedname" not in repr(line)
    assert f"body=<{len(body)} bytes>" in line["message"]
    assert "Basic.Return" in line["message"]


def test_lines_of_other_loggers_and_arguments_without_bytes_are_left_as_they_are(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    logging.getLogger("aiormq.connection").debug("Connecting to: %s", "amqp://broker/")
    logging.getLogger("aiormq.connection").debug("Received frame %r on %d", Basic.Ack(), 1)
    logging.getLogger("yoyo.migrations").debug(" - executing %r", b"CREATE TABLE users ()")
    connecting, received, migration = log_lines()
    assert connecting["message"] == "Connecting to: amqp://broker/"
    assert received["message"].startswith("Received frame <Basic.Ack object at ")
    # The migrations' SQL is the schema, no one's data: shown whole.
    assert migration["message"] == " - executing b'CREATE TABLE users ()'"


def test_console_format_is_readable_text() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream)
    try:
        logging.getLogger("usersvc").info("hello %s", "there")
    finally:
        reset_logging()
    text = stream.getvalue()
    assert "hello there" in text
    assert not text.lstrip().startswith("{")


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="USERSVC_LOG_FORMAT"):
        configure_logging("INFO", "xml", io.StringIO())  # type: ignore[arg-type]


def test_migrate_says_one_line_per_migration_and_nothing_else(empty_database_url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "usersvc", "migrate"],
        cwd=REPO,
        env=environment(USERSVC_DATABASE_URL=empty_database_url),
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stderr == ""
    assert [line["message"] for line in json_lines(run.stdout)] == [
        *(f"migration {name} applied" for name in MIGRATION_IDS),
        f"{len(MIGRATION_IDS)} migration(s) applied",
    ]


def test_a_line_left_pending_by_a_loop_that_never_turns_again_is_not_lost() -> None:
    # Lines logged in a loop's turn are written at the end of it; a loop stopped within
    # that turn (a start-up loop; the parent's loop in a forked gunicorn worker) never
    # gets there, and the lines of every later loop must not queue up behind it.
    out = io.BytesIO()
    buffered = _TurnBuffered(out)
    stopped = asyncio.new_event_loop()

    async def log_and_stop() -> None:
        buffered.msg(b"first")
        stopped.stop()
        await asyncio.sleep(3600)

    with pytest.raises(RuntimeError, match="stopped before"):
        stopped.run_until_complete(log_and_stop())

    async def log_once() -> None:
        buffered.msg(b"second")
        await asyncio.sleep(0)

    asyncio.run(log_once())
    assert out.getvalue() == b"first\nsecond\n"
    for task in asyncio.all_tasks(stopped):
        task.cancel()
    stopped.run_until_complete(asyncio.sleep(0))
    stopped.close()
