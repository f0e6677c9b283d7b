"""§5 in the OpenAPI document: with tokens checked, every guarded operation declares its
scheme and scopes and every refusal it may answer (401, 403, 429, 503) with the headers
those carry; OAuth 2.0's client credentials once discovery names the token URL; none of
it without tokens."""

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.support import API, MISSING_USER, user_body
from tests.auth.conftest import Service
from tests.auth.support import Key, Provider, bearer, claims, sign
from tests.auth.test_scopes import OPERATIONS
from usersvc.http.app import ACCESS, create_app
from usersvc.http.quotas import LocalQuotas, parse_limits

HTTP_OWN = {"content-type", "content-length", "date", "server", "connection"}


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for methods in document["paths"].values()
        for operation in methods.values()
    }


async def _document(api: TestClient) -> dict[str, Any]:
    return await (await api.get("/api/docs/openapi.json")).json()


async def test_every_refusal_sent_is_declared_with_its_headers(
    service: Service, key: Key, provider: Provider
):
    api = await service(refetch_every=0.05, quotas=LocalQuotas(parse_limits("1/hour", "1/hour")))
    operations = _operations(await _document(api))
    sent: dict[tuple[str, int], set[str]] = {}

    async def drive(n: int, operation: str, method: str, path: str, body: Any, **headers: str):
        response = await api.request(method, API + path, json=body, headers=headers)
        await response.read()
        names = {name.lower() for name in response.headers} - HTTP_OWN
        sent.setdefault((operation, response.status), set()).update(names)
        return response.status

    for n, (operation, method, path, body, needed) in enumerate(OPERATIONS):
        assert await drive(n, operation, method, path, body) == 401
        other = "users:erase" if needed != "users:erase" else "users:read"
        narrow = sign(key, claims(iss=provider.issuer, scope=other, client_id=f"narrow{n}"))
        assert await drive(n, operation, method, path, body, **bearer(narrow)) == 403
        fresh = sign(key, claims(iss=provider.issuer, client_id=f"client{n}"))
        await drive(n, operation, method, path, body, **bearer(fresh))  # spends the budget
        assert await drive(n, operation, method, path, body, **bearer(fresh)) == 429
    provider.down = True
    await asyncio.sleep(0.1)
    for operation, method, path, body, _ in OPERATIONS:
        unknown = sign(key, claims(iss=provider.issuer), kid="rotated-away")
        assert await drive(0, operation, method, path, body, **bearer(unknown)) == 503

    for (operation, status), names in sent.items():
        if status not in (401, 403, 429, 503):
            continue
        declared = operations[operation]["responses"][str(status)]["headers"]
        assert names <= {name.lower() for name in declared}, (operation, status, names)
        assert {"www-authenticate", "retry-after"} & names, (operation, status)


async def test_guarded_operations_name_the_bearer_scheme_and_their_scopes(
    service: Service, key: Key, provider: Provider
):
    provider.down = True  # no discovery yet: no token URL known
    api = await service()
    document = await _document(api)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    for name, operation in _operations(document).items():
        if name in ACCESS:
            assert operation["security"] == [{"bearer": []}], name
            rule = ACCESS[name]
            assert f"`{rule.scope}`" in operation["description"], name
            assert {"401", "403", "503"} <= set(operation["responses"]), name
        else:  # the health check, the probes: open to all
            assert "security" not in operation, name
    assert document["security"] == []


async def test_once_discovery_names_the_token_url_the_document_offers_client_credentials(
    service: Service, key: Key, provider: Provider
):
    api = await service()
    token = bearer(sign(key, claims(iss=provider.issuer)))
    assert (await api.get(f"{API}/users/{MISSING_USER}", headers=token)).status == 404
    document = await _document(api)
    scheme = document["components"]["securitySchemes"]["oauth2"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == provider.issuer + "/token"
    assert set(flow["scopes"]) == {"users:read", "users:list", "users:write", "users:erase"}
    operations = _operations(document)
    assert operations["create_user"]["security"] == [{"oauth2": ["users:write"]}]
    assert operations["delete_user_permanently"]["security"] == [{"oauth2": ["users:erase"]}]
    assert operations["find_users"]["security"] == [
        {"oauth2": ["users:read"]},
        {"oauth2": ["users:list"]},
    ]
    assert operations["create_user"]["description"].count("Needs a bearer token") == 1


async def test_without_tokens_no_operation_asks_for_credentials(aiohttp_client, database_url: str):
    api = await aiohttp_client(create_app(database_url))
    document = await _document(api)
    assert "securitySchemes" not in document.get("components", {})
    assert document["security"] == []
    for operation in _operations(document).values():
        assert "security" not in operation
        assert not {"401", "403"} & set(operation["responses"])
    created = await api.post(API + "/users/create_user", json=user_body())
    assert created.status == 201
