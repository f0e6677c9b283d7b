"""A stream of commands from several clients, recording every answer, and the checks
that hold whatever happened to the service meanwhile."""

import asyncio
import itertools
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import attrs

from tests.api.support import API, COMMANDS, assert_envelope

_numbers = itertools.count(uuid4().int % 10**8)

type Send = Callable[[str, str, Any], Awaitable[tuple[int, Any, dict[str, str]]]]

REQUEST_LIMIT = 30.0  # seconds: a request still unanswered by then is a hang


@attrs.define
class Record:
    answers: Counter[int] = attrs.field(factory=Counter)
    succeeded: int = 0  # commands answered 2xx: each has exactly one event
    unknown: int = 0  # commands answered 503 or not at all: zero or one event each
    refused: int = 0  # commands the service refused (4xx): no event
    created: set[UUID] = attrs.field(factory=set)  # users whose creation succeeded
    problems: list[str] = attrs.field(factory=list)

    def summary(self) -> str:
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(self.answers.items()))
        return f"{sum(self.answers.values())} requests ({answers}), {len(self.created)} users"


# What new_user_body puts in emails, phones and last names, to look for in logs.
PERSONAL_DATA = re.compile(r"@example\.com|\b7\d{10}\b|Load\d+")


def assert_no_personal_data(log: str) -> None:
    found = PERSONAL_DATA.search(log)
    assert found is None, (
        f"personal data in the log: ...{log[max(0, found.start() - 200) : found.end()]}"
    )


def new_user_body() -> dict[str, Any]:
    n = next(_numbers)
    return {
        "phone": 79_000_000_000 + n % 10**9,
        "email": f"load{n}.{uuid4().hex[:8]}@example.com",
        "firstname": "Ivan",
        "lastname": f"Load{n}",
        "middlename": None,
    }


async def _command(send: Send, record: Record, name: str, body: Any) -> Any:
    method, path = COMMANDS[name]
    try:
        status, answer, headers = await asyncio.wait_for(
            send(method, API + path, body), REQUEST_LIMIT
        )
    except TimeoutError:
        record.problems.append(f"{name}: no answer in {REQUEST_LIMIT} s")
        record.unknown += 1
        return None
    except (OSError, aiohttp.ClientConnectionError):  # refused or dropped: outcome unknown
        record.answers[0] += 1
        record.unknown += 1
        return None
    record.answers[status] += 1
    try:
        assert_envelope(status, answer)
    except AssertionError as error:
        record.problems.append(f"{name}: {status} not in the contract's shape: {error}")
    if status >= 500:
        if status != 503 or "Retry-After" not in headers:
            record.problems.append(f"{name}: {status} {answer} {headers}")
        record.unknown += 1
        return None
    if status >= 400:
        record.refused += 1
        return None
    record.succeeded += 1
    return answer["result"]


async def client(send: Send, record: Record, stop: asyncio.Event, seed: int) -> None:
    """Creates users and runs commands on them until ``stop``."""
    rng = random.Random(seed)
    mine: list[str] = []
    while not stop.is_set():
        if not mine or rng.random() < 0.3:
            user_id = await _command(send, record, "create_user", new_user_body())
            if user_id is not None:
                mine.append(user_id)
                record.created.add(UUID(user_id))
            continue
        user_id = rng.choice(mine)
        fullname = {"firstname": "Petr", "lastname": f"N{rng.randrange(99)}", "middlename": None}
        name, body = rng.choice(
            [
                ("change_fullname", fullname),
                ("delete_temporarily", {}),
                ("recovery_user", {}),
                ("change_contacts", {"email": new_user_body()["email"], "phone": None}),
            ]
        )
        await _command(send, record, name, {"user_id": user_id} | body)


async def run_load(
    send: Send, clients: int, stop: asyncio.Event, record: Record | None = None
) -> Record:
    record = record or Record()
    await asyncio.gather(*(client(send, record, stop, seed) for seed in range(clients)))
    return record


# The relay deletes an outbox row once its event is sent; these tests keep their own
# copy of every committed event, written by a trigger in the command's transaction (so
# a rolled-back command leaves none), in their own database only.
COMMIT_LOG = """
CREATE TABLE test_commit_log (
    position   bigint PRIMARY KEY,
    event_id   uuid NOT NULL,
    event_name text NOT NULL,
    user_id    uuid NOT NULL,
    data       jsonb NOT NULL
);
CREATE FUNCTION test_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_commit_log
    VALUES (NEW.position, NEW.event_id, NEW.event_name, NEW.user_id, NEW.data);
    RETURN NULL;
END;
$$;
CREATE TRIGGER test_log_commit AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION test_log_commit();
"""


async def keep_commit_log(database_url: str) -> None:
    """From now on, every event committed to this (migrated) database is logged."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(COMMIT_LOG)
    finally:
        await connection.close()


async def committed_events(connection: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every event committed since :func:`keep_commit_log`, in commit order (the outbox's
    position), sent or not."""
    rows = await connection.fetch(
        "SELECT event_id, event_name, user_id, data FROM test_commit_log ORDER BY position"
    )
    return [dict(row) for row in rows]


async def check_database(connection: asyncpg.Connection, record: Record) -> list[dict[str, Any]]:
    """No change half-applied, none lost: each user row has its creation event and its
    state is the one its last events say; one event per successful command, none per
    refused one. The committed events (:func:`keep_commit_log`), in commit order."""
    events = await committed_events(connection)
    users = {row["user_id"]: dict(row) for row in await connection.fetch("SELECT * FROM users")}
    created = {e["user_id"] for e in events if e["event_name"] == "UserCreated"}
    assert set(users) == created, "a user without its creation event, or the reverse"
    assert record.created <= set(users), "a user whose creation succeeded is missing"
    status: dict[UUID, str] = {}
    email: dict[UUID, Any] = {}
    lastname: dict[UUID, Any] = {}
    for event in events:
        uid, name, data = event["user_id"], event["event_name"], event["data"]
        if name == "UserCreated":
            status[uid], email[uid], lastname[uid] = "active", data["email"], data["lastname"]
        elif name == "UserTemporarilyDeleted":
            status[uid] = "deleted"
        elif name == "UserRecovered":
            status[uid] = "active"
        elif name == "ContactsChanged":
            email[uid] = data["email"]
        elif name == "FullnameChanged":
            lastname[uid] = data["lastname"]
    for uid, user in users.items():
        assert user["status"] == status[uid], (user, "status differs from its events")
        assert user["email"] == email[uid], (user, "email differs from its events")
        assert user["lastname"] == lastname[uid], (user, "name differs from its events")
    assert record.succeeded <= len(events) <= record.succeeded + record.unknown, (
        len(events),
        record,
    )
    return events
