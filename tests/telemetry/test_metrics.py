"""``GET /metrics`` after real requests through the app (names from docs/telemetry.md's table).

The registry lives as long as the test process, so the tests compare before and after.
"""

import asyncio
import re
from uuid import uuid4

import asyncpg
from aiohttp.test_utils import TestClient

from tests.api.support import API, user_body
from tests.relay.support import eventually_equal
from tests.telemetry.support import scrape, value
from usersvc.amqp import Relay, RelaySettings
from usersvc.db.queries import Queries
from usersvc.telemetry import metrics

UUID_LIKE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
USER_ROUTE = API + "/users/{user_id}"


async def test_requests_are_counted_by_route_template_never_by_raw_path(api: TestClient) -> None:
    before = await scrape(api)
    for _ in range(3):
        assert (await api.get(f"{API}/users/{uuid4()}")).status == 404
    assert (await api.get(f"/no/such/{uuid4()}")).status == 404
    after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "usersvc_http_requests_total"
    assert grew(requests, method="GET", route=USER_ROUTE, status="404") == 3
    assert grew(requests, method="GET", route="unmatched", status="404") == 1
    durations = "usersvc_http_request_duration_seconds_count"
    assert grew(durations, method="GET", route=USER_ROUTE) == 3
    assert (
        grew(
            "usersvc_http_request_duration_seconds_bucket", method="GET", route=USER_ROUTE, le="5.0"
        )
        == 3
    )
    for _, labels in after:
        assert not any(UUID_LIKE.search(label) for _, label in labels), labels


async def test_a_method_a_path_does_not_have_is_counted_under_that_paths_route(
    api: TestClient,
) -> None:
    before = await scrape(api)
    assert (await api.delete(f"{API}/users/{uuid4()}")).status == 405
    assert (await api.get(f"{API}/users/change-fullname")).status == 405  # a command's path
    assert (await api.put(f"{API}/users")).status == 405
    assert (await api.delete(f"/no/such/{uuid4()}")).status == 404
    after = await scrape(api)

    def grew(**labels: str) -> float:
        name = "usersvc_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(method="DELETE", route=USER_ROUTE, status="405") == 1
    assert grew(method="GET", route=API + "/users/change-fullname", status="405") == 1
    assert grew(method="PUT", route=API + "/users", status="405") == 1
    assert grew(method="DELETE", route="unmatched", status="404") == 1
    assert grew(method="DELETE", route="unmatched", status="405") == 0


async def test_the_domain_outcome_counter_counts_a_409_of_create_user(api: TestClient) -> None:
    body = user_body()
    before = await scrape(api)
    assert (await api.post(f"{API}/users/create_user", json=body)).status == 201
    assert (await api.post(f"{API}/users/create_user", json=body)).status == 409
    after = await scrape(api)
    name = "usersvc_commands_total"
    for outcome in ("ok", "user_already_exists"):
        grown = value(after, name, command="create_user", outcome=outcome) - value(
            before, name, command="create_user", outcome=outcome
        )
        assert grown == 1, outcome


async def test_the_pool_gauges_and_the_acquire_histogram_report_the_pool(api: TestClient) -> None:
    before = await scrape(api)
    assert (await api.get(f"{API}/users/{uuid4()}")).status == 404
    after = await scrape(api)
    assert value(after, "usersvc_db_pool_size") >= 1
    assert value(after, "usersvc_db_pool_connections_in_use") == 0  # all given back
    acquired = "usersvc_db_pool_acquire_seconds_count"
    assert value(after, acquired) > value(before, acquired)


async def test_outbox_gauges_come_from_the_database_and_fall_as_the_relay_publishes(
    api: TestClient,
    pool: asyncpg.Pool,
    database_url: str,
    queries: Queries,
    settings: RelaySettings,
) -> None:
    for _ in range(3):
        assert (await api.post(f"{API}/users/create_user", json=user_body())).status == 201
    await asyncio.sleep(0.05)  # the oldest row ages
    waiting = await scrape(api)
    assert value(waiting, "usersvc_outbox_backlog") == 3
    assert value(waiting, "usersvc_outbox_oldest_age_seconds") > 0
    published = "usersvc_relay_events_published_total"
    before = value(waiting, published, event="UserCreated")

    relay = Relay(pool, database_url, queries, settings, on_published=metrics.published)
    task = asyncio.create_task(relay.run())
    try:

        async def backlog() -> float:
            return value(await scrape(api), "usersvc_outbox_backlog")

        await eventually_equal(backlog, 0)
        done = await scrape(api)
        assert value(done, "usersvc_outbox_oldest_age_seconds") == 0
        assert value(done, published, event="UserCreated") - before == 3
        assert value(done, "usersvc_relay_leader") == 1
        assert value(done, "usersvc_relay_broker_connected") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert value(await scrape(api), "usersvc_relay_leader") == 0


async def test_a_sane_request_id_is_echoed_and_anything_else_is_replaced(api: TestClient) -> None:
    sane = "req-42.abc_DEF:1"
    response = await api.get(f"{API}/users/{uuid4()}", headers={"X-Request-ID": sane})
    assert response.headers["X-Request-ID"] == sane
    for offered in ("has space", "x" * 129, "ünïcode"):
        response = await api.get(f"{API}/users/{uuid4()}", headers={"X-Request-ID": offered})
        generated = response.headers["X-Request-ID"]
        assert generated != offered
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert re.fullmatch(
        r"[0-9a-f]{32}", (await api.get(f"{API}/users/{uuid4()}")).headers["X-Request-ID"]
    )
