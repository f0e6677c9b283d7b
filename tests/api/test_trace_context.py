"""The request's W3C trace context goes with its event; anything else stays behind."""

import re

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.support import API, user_body

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WELL_FORMED = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


async def _headers_of_the_only_event(pool: asyncpg.Pool) -> dict[str, str]:
    [row] = await pool.fetch("SELECT headers FROM outbox")
    return row["headers"]


async def test_a_well_formed_traceparent_and_tracestate_are_kept_for_the_event(
    api: TestClient, pool: asyncpg.Pool
) -> None:
    response = await api.post(
        f"{API}/users/create_user",
        json=user_body(),
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc", "x-other": "no"},
    )
    assert response.status == 201
    assert await _headers_of_the_only_event(pool) == {
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=abc",
    }


async def test_a_malformed_traceparent_is_not_passed_on_and_the_command_still_succeeds(
    api: TestClient, pool: asyncpg.Pool
) -> None:
    response = await api.post(
        f"{API}/users/create_user",
        json=user_body(),
        headers={"traceparent": "00-not-a-trace-01; drop table users", "tracestate": "a=b"},
    )
    assert response.status == 201
    # The event carries the request's own new trace instead (the one its log lines show).
    headers = await _headers_of_the_only_event(pool)
    assert set(headers) == {"traceparent"}
    assert WELL_FORMED.fullmatch(headers["traceparent"])
    assert "not-a-trace" not in headers["traceparent"]
