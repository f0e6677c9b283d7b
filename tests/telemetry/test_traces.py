"""Spans of a request, read back from the in-memory collector, and their ids in the
logs and in the event's ``traceparent``."""

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tests.api.support import API, user_body
from tests.relay.support import eventually
from usersvc.amqp import Relay, RelaySettings
from usersvc.db.queries import Queries

CREATE_ROUTE = API + "/users/create_user"


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def _named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def _wait_for(spans: list[ReadableSpan], name: str, within: float = 20.0) -> ReadableSpan:
    await eventually(lambda: any(span.name == name for span in spans), within)
    return _named(spans, name)


async def test_a_command_makes_a_server_span_with_sql_and_decision_children_and_a_publish_span(
    api: TestClient,
    spans: list[ReadableSpan],
    pool: asyncpg.Pool,
    database_url: str,
    queries: Queries,
    settings: RelaySettings,
) -> None:
    body = user_body()
    response = await api.post(CREATE_ROUTE, json=body)
    assert response.status == 201

    server = _named(spans, f"POST {CREATE_ROUTE}")
    assert server.kind is SpanKind.SERVER
    assert server.attributes["http.route"] == CREATE_ROUTE
    status = server.attributes.get("http.response.status_code") or server.attributes.get(
        "http.status_code"
    )
    assert status == 201
    trace_id = server.context.trace_id
    for name in ("decide", "create_user"):
        child = _named(spans, name)
        assert child.context.trace_id == trace_id
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
    insert = _named(spans, "create_user")  # the user and its event: one statement
    assert insert.kind is SpanKind.CLIENT
    assert insert.attributes["db.query.summary"] == "create_user"
    # No parameter values on any span: they hold personal data.
    for span in spans:
        shown = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
        assert body["email"] not in shown, span.name
        assert str(body["phone"]) not in shown, span.name

    relay = Relay(pool, database_url, queries, settings)
    task = asyncio.create_task(relay.run())
    try:
        publish = await _wait_for(spans, f"publish {settings.exchange}")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert publish.kind is SpanKind.PRODUCER
    assert publish.context.trace_id == trace_id
    assert publish.parent is not None
    assert publish.parent.span_id == server.context.span_id
    assert publish.attributes["usersvc.event.name"] == "UserCreated"


async def test_a_request_log_line_its_span_and_its_events_traceparent_share_one_trace_id(
    api: TestClient,
    spans: list[ReadableSpan],
    pool: asyncpg.Pool,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    response = await api.post(CREATE_ROUTE, json=user_body(), headers={"X-Request-ID": "trace-1"})
    assert response.status == 201
    server = _named(spans, f"POST {CREATE_ROUTE}")
    [line] = [line for line in log_lines() if line.get("request_id") == "trace-1"]
    assert line["logger"] == "usersvc.access"
    assert line["route"] == CREATE_ROUTE
    assert line["status"] == 201
    assert line["trace_id"] == _hex(server.context.trace_id, 32)
    assert line["span_id"] == _hex(server.context.span_id, 16)
    [row] = await pool.fetch("SELECT headers FROM outbox")
    _version, trace_id, parent_id, _flags = row["headers"]["traceparent"].split("-")
    assert trace_id == line["trace_id"]
    assert parent_id == line["span_id"]


async def test_an_untraced_request_still_has_ids_in_its_log_line_and_its_event(
    api: TestClient, pool: asyncpg.Pool, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    response = await api.post(CREATE_ROUTE, json=user_body(), headers={"X-Request-ID": "plain-1"})
    assert response.status == 201
    [line] = [line for line in log_lines() if line.get("request_id") == "plain-1"]
    [row] = await pool.fetch("SELECT headers FROM outbox")
    assert row["headers"]["traceparent"].split("-")[1] == line["trace_id"]
