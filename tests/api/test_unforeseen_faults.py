"""A fault no rule foresees: the contract's 500 envelope, nothing changed, and a log line
with the traceback but without the values the error quotes.

The fault is real: a unique index the service does not know of (as a maintainer might
add by hand) makes PostgreSQL refuse a change that every rule of the contract allows.
"""

import logging

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import call, expect_error, expect_result, user_body
from usersvc.telemetry.logs import format_exception


async def test_an_unknown_constraint_answers_500_changes_nothing_and_logs_no_values(
    api: TestClient, pool: asyncpg.Pool, tables, caplog: pytest.LogCaptureFixture
) -> None:
    await pool.execute("CREATE UNIQUE INDEX users_one_per_lastname ON users (lastname)")
    await expect_result(await call(api, "create_user", user_body(lastname="Unforeseen")), 201)
    other = await expect_result(await call(api, "create_user", user_body(lastname="Other")), 201)
    before = await tables()

    with caplog.at_level(logging.ERROR, logger="usersvc.http.middleware"):
        rename = {"user_id": other, "firstname": "A", "lastname": "Unforeseen", "middlename": None}
        response = await call(api, "change_fullname", rename)
        body = await expect_error(response, 500, "internal_error")

    assert body["error"]["data"]["message"] == "Internal server error"
    assert await tables() == before
    [record] = [r for r in caplog.records if r.name == "usersvc.http.middleware"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], asyncpg.UniqueViolationError)
    # The response never carries the error, and the log's own rendering withholds the
    # message, which quotes the conflicting row ("Key (lastname)=(Unforeseen)").
    assert "Unforeseen" not in await response.text()
    rendered = format_exception(record.exc_info[1])
    assert "Traceback" in rendered
    assert "users_one_per_lastname" in rendered
    assert "Unforeseen" not in rendered


async def test_a_create_an_unknown_constraint_refuses_answers_500_and_changes_nothing(
    api: TestClient, pool: asyncpg.Pool, tables, caplog: pytest.LogCaptureFixture
) -> None:
    # create_user inserts with ON CONFLICT DO NOTHING (any unique index): it inserts
    # nothing, finds neither contact taken, and says so rather than answer a 409 that
    # names a contact no one holds.
    await pool.execute("CREATE UNIQUE INDEX users_one_per_lastname ON users (lastname)")
    await expect_result(await call(api, "create_user", user_body(lastname="Unforeseen")), 201)
    before = await tables()

    with caplog.at_level(logging.ERROR, logger="usersvc.http.middleware"):
        response = await call(api, "create_user", user_body(lastname="Unforeseen"))
        await expect_error(response, 500, "internal_error")

    assert await tables() == before
    [record] = [r for r in caplog.records if r.name == "usersvc.http.middleware"]
    assert "no contact is taken" in str(record.exc_info[1])
    assert "Unforeseen" not in format_exception(record.exc_info[1])
