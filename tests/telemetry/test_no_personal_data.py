"""No output of the service holds personal data, at any level: the API suite runs again
with every log line (at DEBUG, every logger) and every request it sent captured, each
test's events published by the relay to the real broker (aiormq's frames, which carry
them, logged at DEBUG), and each email, phone, name, link and connection reason it sent
is searched for in the log and in all the run's output; ``usersvc serve`` at DEBUG with
its relay is searched the same way.

The fuzz test is left out: its random strings are too short and arbitrary to search
for without false hits; every other API test runs (each failure path, conflicts with
their asyncpg errors, a lost database, malformed bodies).
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import aiormq

from tests.personal_data import finder, sent_values
from tests.telemetry.processes import (
    REPO,
    environment,
    free_port,
    json_lines,
    request,
    stop,
    usersvc,
    wait_ready,
)

# yoyo logs the migrations' SQL at DEBUG: a connection reason such as "work" that is
# a word of that text is no one's personal data there.
SCHEMA_WORDS = {
    word
    for path in (REPO / "migrations").glob("*.sql")
    for word in re.findall(r"[A-Za-z_]+", path.read_text())
}
SOURCE_FILE = re.compile(r'File "[^"]*"')
# Written by us, never from a request body: ids and times, which hold random hex digits.
GENERATED = ("time", "trace_id", "span_id", "request_id", "duration_ms", "pid", "size")


def _leaks(lines: list[dict], any_value: re.Pattern[str]) -> list[tuple[str, str]]:
    leaks = []
    for line in lines:
        shown = {k: v for k, v in line.items() if k not in GENERATED}
        if "exception" in shown:  # the source files' paths ("/work/...") are not sent data
            shown["exception"] = SOURCE_FILE.sub("File", shown["exception"])
        text = json.dumps(shown, ensure_ascii=False)
        leaks.extend((found, text) for found in any_value.findall(text))
    return leaks


def _frame_lines(lines: list[dict]) -> list[dict]:
    """aiormq's DEBUG lines of the frames it wrote: the relay's publishes among them."""
    return [
        line
        for line in lines
        if line.get("logger") == "aiormq.connection"
        and line["message"].startswith("Prepare to send ChannelFrame(payload=<")
    ]


def test_no_output_of_the_api_suite_and_its_relay_holds_an_email_phone_name_link_or_reason(
    tmp_path: Path, amqp_url: str
) -> None:
    name = f"users.privacy.{uuid4().hex[:12]}"  # the exchange and queue the relay publishes to
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/api",
                "--ignore=tests/api/test_fuzz.py",
                "-q",
                "-p",
                "no:cacheprovider",
            ],
            cwd=REPO,
            env={
                **os.environ,
                "USERSVC_TEST_CAPTURE_DIR": str(tmp_path),
                "USERSVC_TEST_CAPTURE_NAME": name,
            },
            capture_output=True,
            text=True,
            # A guard against a hang, not a measure: the suite, each test's events relayed
            # after it (about 0.2 s a test), on a machine other runs share.
            timeout=1800,
        )
    finally:
        published = asyncio.run(_take_all(amqp_url, name))
    assert run.returncode == 0, run.stdout[-3000:]

    values = sent_values(tmp_path, SCHEMA_WORDS)
    assert len(values) > 300, "the suite sent too few personal values to prove anything"
    assert any("@" in v for v in values)
    assert any(v.startswith("https://") for v in values)
    any_value = finder(values)

    # The relay published the suite's events, personal data and all, to the broker, ...
    assert len(published) > 1000, "too few events published: did the relay run?"
    carried = {found for body in published for found in any_value.findall(body)}
    assert len(carried) > 300, "the published events hold too few of the values sent"

    # ... and none of it is in the log, ...
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) > 1000, "too few log lines: was the capture on?"
    assert any("exception" in line for line in lines), "no error was logged: a weak sample"
    leaks = _leaks(lines, any_value)
    assert not leaks, leaks[:5]
    # Nor anything else the run printed, on stdout or stderr.
    for stream in (run.stdout, run.stderr):
        found = any_value.findall(stream)
        assert not found, found[:5]
    # ... though aiormq logged each frame it wrote (by size), the publishes among them.
    assert len(_frame_lines(lines)) > 1000


def test_usersvc_serve_at_debug_with_its_relay_prints_no_personal_data(
    database_url: str, amqp_url: str
) -> None:
    port = free_port()
    name = f"users.privacy.{uuid4().hex[:12]}"
    process = usersvc(
        "serve",
        env=environment(
            USERSVC_DATABASE_URL=database_url,
            USERSVC_AMQP_URL=amqp_url,
            USERSVC_AMQP_EXCHANGE=name,
            USERSVC_AMQP_QUEUE=name,
            USERSVC_LOG_LEVEL="DEBUG",
            USERSVC_PORT=str(port),
        ),
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_ready(process, port)
        user_id, values = _every_command(api)
        # Published before the erasure, which would take the personal data out of the
        # events still waiting in the outbox.
        _until_published(api)
        status, body = request(
            f"{api}/users/delete-user-permanently", {"user_id": user_id}, "DELETE"
        )
        assert status == 200, body
        _until_published(api)
    finally:
        output = stop(process)
        published = asyncio.run(_take_all(amqp_url, name))

    # Every value went out in the events, on the connection whose frames were logged.
    assert len(published) == 10
    assert all(any(v in body for body in published) for v in values), (values, published)
    lines = json_lines(output)
    leaks = _leaks(lines, finder(values))
    assert not leaks, leaks[:5]
    assert not finder(values).findall(output)
    # Logged at DEBUG all the same: aiormq's frames, by size.
    assert len(_frame_lines(lines)) >= 10


def _until_published(api: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        _, body = request(f"{api}/healthcheck", method="POST")
        if json.loads(body)["result"]["outbox_backlog"] == 0:
            return
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _every_command(api: str) -> tuple[str, set[str]]:
    """A command of each kind but the permanent deletion (nine events), and a conflict;
    the user's id and the personal values sent."""
    tag = uuid4().hex[:10]
    phone = 79_000_000_000 + uuid4().int % 10**9
    user = {
        "phone": phone,
        "email": f"serve.{tag}@example.com",
        "firstname": f"Firstname{tag}",
        "lastname": f"Lastname{tag}",
        "middlename": f"Middlename{tag}",
    }
    renamed = {"firstname": f"Renamed{tag}", "lastname": f"Lastname{tag}", "middlename": None}
    contacts = {"email": f"moved.{tag}@example.com", "phone": phone + 1}
    link = f"https://vk.com/id{tag}"

    def call(method: str, command: str, body: dict) -> object:
        status, answer = request(f"{api}/users/{command}", body, method)
        assert status in (200, 201), (command, answer)
        return json.loads(answer)["result"]

    user_id = call("POST", "create_user", user)
    status, _ = request(f"{api}/users/create_user", user)  # the same contacts: a conflict
    assert status == 409
    call("PUT", "change-fullname", {"user_id": user_id, **renamed})
    call("PUT", "change-contacts", {"user_id": user_id, **contacts})
    account = {"user_id": user_id}
    account["linked_account_id"] = call(
        "POST",
        "link-social-network",
        {**account, "social_network": "vk", "connection_link": link, "connected_for": "x" + tag},
    )
    call("PUT", "change-social-network-connection-reason", {**account, "reason": "y" + tag})
    call("DELETE", "unlink-social-network", account)
    call("DELETE", "delete-user-temporarily", {"user_id": user_id})
    call("PUT", "recovery-user", {"user_id": user_id})
    call("PUT", "change-fullname", {"user_id": user_id, **renamed, "firstname": "Again" + tag})
    sent = (*user.values(), *renamed.values(), *contacts.values(), link, "x" + tag, "y" + tag)
    return str(user_id), {str(v) for v in sent if v is not None} | {"Again" + tag}


async def _take_all(amqp_url: str, name: str) -> list[str]:
    """The bodies in the queue (none if it was never declared), then the exchange and
    queue deleted."""
    bodies = []
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        if await _exists(connection, name):
            while (message := await channel.basic_get(name, no_ack=True)).delivery_tag:
                bodies.append(message.body.decode())
        await channel.queue_delete(name)
        await channel.exchange_delete(name)
    return bodies


async def _exists(connection: aiormq.abc.AbstractConnection, queue: str) -> bool:
    """A passive declare, on a channel of its own (a missing queue closes it)."""
    try:
        await (await connection.channel()).queue_declare(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    return True
