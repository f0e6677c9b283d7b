"""§5: the actor (client_id, else azp, else sub) on every access line as ``client``; the
token itself never in a log line, a span or a metric, and refusals counted by reason."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import ReadableSpan

from tests.api.support import API, user_body
from tests.auth.support import Key, Provider, bearer, claims, sign
from usersvc.telemetry.logs import configure_logging, reset_logging


@pytest.fixture
def lines(tmp_path: Path) -> Iterator[Any]:
    """Every log line at DEBUG as JSON (``lines()``), and the raw text (``lines.text()``)."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        configure_logging("DEBUG", "json", stream)

        class Read:
            def __call__(self) -> list[dict[str, Any]]:
                return [json.loads(line) for line in self.text().splitlines()]

            def text(self) -> str:
                stream.flush()
                return path.read_text()

        try:
            yield Read()
        finally:
            reset_logging()


def _access(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in found if line.get("logger") == "usersvc.access"]


@pytest.mark.parametrize(
    ("named", "actor"),
    [
        ({"client_id": "billing", "azp": "x", "sub": "y"}, "billing"),
        ({"client_id": None, "azp": "ledger", "sub": "y"}, "ledger"),
        ({"client_id": None, "azp": None, "sub": "support-bot"}, "support-bot"),
    ],
    ids=["client_id", "azp", "sub"],
)
async def test_the_access_line_names_the_actor_as_client(
    named: dict, actor: str, api: TestClient, key: Key, provider: Provider, lines
):
    token = sign(key, claims(iss=provider.issuer, **named))
    await api.post(API + "/users/create_user", json=user_body(), headers=bearer(token))
    # refused for its scope: still a known caller
    narrow = sign(key, claims(iss=provider.issuer, scope="users:read", **named))
    await api.post(API + "/users/create_user", json=user_body(), headers=bearer(narrow))
    # no token: nobody known
    await api.post(API + "/users/create_user", json=user_body())
    found = _access(lines())
    assert [(line["status"], line["client"]) for line in found] == [
        (201, actor),
        (403, actor),
        (401, None),
    ]


async def test_no_token_reaches_a_log_line_a_span_or_a_metric(
    api: TestClient,
    key: Key,
    provider: Provider,
    lines,
    spans: list[ReadableSpan],
    monkeypatch: pytest.MonkeyPatch,
):
    # an operator asking spans to carry every request header
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    sent = [
        sign(key, claims(iss=provider.issuer)),
        sign(key, claims(iss=provider.issuer, scope="users:list")),
        sign(key, claims(iss=provider.issuer, aud="other")),
        sign(key, claims(iss=provider.issuer), kid="unknown"),
        "garbage.token.value",
    ]
    for token in sent:
        await api.post(API + "/users/create_user", json=user_body(), headers=bearer(token))
        await api.get(API + "/users?limit=1", headers=bearer(token))
    metrics = await (await api.get("/metrics")).text()
    text = lines.text()
    recorded = [json.dumps(dict(span.attributes or {}), default=str) for span in spans]
    assert recorded, "the spans were recorded"
    assert any("[REDACTED]" in attributes for attributes in recorded)
    for token in sent:
        for part in token.split("."):  # not even the claims or the signature alone
            if len(part) > 8:
                assert part not in text
                assert part not in metrics
                assert all(part not in attributes for attributes in recorded)


async def test_refusals_are_counted_by_reason_without_client_ids(
    api: TestClient, key: Key, provider: Provider
):
    async def count(reason: str) -> float:
        text = await (await api.get("/metrics")).text()
        for line in text.splitlines():
            if line.startswith(f'usersvc_http_requests_refused_total{{reason="{reason}"}}'):
                return float(line.split()[-1])
        raise AssertionError(f"no series for {reason}")

    before = {r: await count(r) for r in ("unauthenticated", "insufficient_scope")}
    await api.get(API + "/users?limit=1")
    narrow = sign(key, claims(iss=provider.issuer, scope="users:read", client_id="narrow"))
    await api.get(API + "/users?limit=1", headers=bearer(narrow))
    assert await count("unauthenticated") == before["unauthenticated"] + 1
    assert await count("insufficient_scope") == before["insufficient_scope"] + 1
    assert "narrow" not in await (await api.get("/metrics")).text()


async def _every_command(api: TestClient, headers: dict[str, str]) -> str:
    """Each command once on a new user, ending with its permanent deletion; its id."""

    async def ok(method: str, path: str, body: dict) -> object:
        response = await api.request(method, API + path, json=body, headers=headers)
        assert response.status in (200, 201), await response.text()
        return (await response.json())["result"]

    user_id = await ok("POST", "/users/create_user", user_body())
    user = {"user_id": user_id}
    await ok("PUT", "/users/change-fullname", {**user, "firstname": "A", "lastname": "B",
                                                "middlename": None})  # fmt: skip
    await ok("PUT", "/users/change-contacts", {**user, **user_body(), **user})
    link = {**user, "social_network": "vk", "connection_link": f"vk.com/{user_id}",
            "connected_for": None}  # fmt: skip
    linked = await ok("POST", "/users/link-social-network", link)
    account = {**user, "linked_account_id": linked}
    await ok("PUT", "/users/change-social-network-connection-reason", {**account, "reason": "x"})
    await ok("DELETE", "/users/unlink-social-network", account)
    await ok("DELETE", "/users/delete-user-temporarily", user)
    await ok("PUT", "/users/recovery-user", user)
    await ok("DELETE", "/users/delete-user-permanently", user)
    return str(user_id)


async def test_every_event_carries_the_actor_who_asked(
    api: TestClient, key: Key, provider: Provider, pool
):
    token = sign(key, claims(iss=provider.issuer, client_id="crm", sub="crm"))
    user_id = await _every_command(api, bearer(token))
    rows = await pool.fetch("SELECT event_name, actor FROM outbox WHERE user_id = $1", user_id)
    assert len(rows) == 9  # one event per command
    assert {row["actor"] for row in rows} == {"crm"}


async def test_without_authentication_the_actor_is_null(aiohttp_client, database_url: str, pool):
    from usersvc.http.app import create_app

    api = await aiohttp_client(create_app(database_url))
    user_id = await _every_command(api, {})
    rows = await pool.fetch("SELECT actor FROM outbox WHERE user_id = $1", user_id)
    assert len(rows) == 9
    assert {row["actor"] for row in rows} == {None}


async def test_a_published_event_names_the_actor_at_the_top_of_its_body(
    service, key: Key, provider: Provider, settings, consumer
):
    api = await service(relay=settings)
    token = sign(key, claims(iss=provider.issuer, client_id="crm"))
    response = await api.post(API + "/users/create_user", json=user_body(), headers=bearer(token))
    assert response.status == 201
    await consumer.wait_count(1)
    body = json.loads(consumer.messages[0].body)
    assert body["actor"] == "crm"
    assert body["user_id"] == (await response.json())["result"]
