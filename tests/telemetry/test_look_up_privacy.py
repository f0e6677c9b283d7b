"""A look-up's query string holds personal data (GET /users?email=…&phone=…): it
reaches no log line, no metric label and no span attribute."""

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import ReadableSpan

from tests.api.support import API, create_user, user_body

ROUTE = API + "/users"


async def test_a_look_ups_email_and_phone_are_in_no_log_line_span_attribute_or_metric(
    api: TestClient,
    spans: list[ReadableSpan],
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    body = user_body(email="Private.Person@Example.org")
    await create_user(api, **body)
    queries = [
        {"email": "private.person@example.org"},
        {"phone": str(body["phone"])},
        {"email": "private.person@example.org", "phone": str(body["phone"])},  # a 422
        {"phone": "7916nonsense"},  # a 422 too
    ]
    for query in queries:
        response = await api.get(ROUTE, params=query)
        assert response.status in (200, 422)
    metrics = await (await api.get("/metrics")).text()

    secrets = ["private.person", "Private.Person", str(body["phone"]), "7916nonsense"]
    servers = [s for s in spans if s.name == f"GET {ROUTE}"]
    assert len(servers) == len(queries), [s.name for s in spans]
    shown_spans = repr([(s.name, dict(s.attributes or {}), s.events) for s in spans])
    lines = log_lines()
    assert any(line.get("route") == ROUTE for line in lines), lines
    shown_logs = repr(lines)
    for secret in secrets:
        assert secret not in shown_spans, secret
        assert secret not in shown_logs, secret
        assert secret not in metrics, secret
    # The URL attributes stay, without their query string.
    for server in servers:
        for key in ("http.target", "http.url", "url.full"):
            value = (server.attributes or {}).get(key)
            assert value is None or "?" not in str(value), (key, value)
