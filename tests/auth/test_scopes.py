"""§5: each scope opens exactly its operations; the checks come in the contract's order,
route → authentication (401) → scope (403) → quota (429) → request validation (422)."""

import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import API, MISSING_USER, expect_error, user_body
from tests.auth.support import Key, Provider, bearer, claims, sign
from usersvc.http.app import ACCESS
from usersvc.http.auth import ERASE, LIST, READ, SCOPES, WRITE

# Every guarded operation as a request, with the one scope that opens it.
A_USER = {"user_id": MISSING_USER}
OPERATIONS: list[tuple[str, str, str, dict | None, str]] = [
    ("create_user", "POST", "/users/create_user", user_body(), WRITE),
    ("recover_user", "PUT", "/users/recovery-user", A_USER, WRITE),
    ("delete_user_permanently", "DELETE", "/users/delete-user-permanently", A_USER, ERASE),
    ("delete_user_temporarily", "DELETE", "/users/delete-user-temporarily", A_USER, WRITE),
    (
        "change_fullname",
        "PUT",
        "/users/change-fullname",
        {**A_USER, "firstname": "A", "lastname": "B", "middlename": None},
        WRITE,
    ),
    (
        "change_contacts",
        "PUT",
        "/users/change-contacts",
        {**A_USER, "email": "a@example.com", "phone": None},
        WRITE,
    ),
    (
        "link_social_network",
        "POST",
        "/users/link-social-network",
        {
            **A_USER,
            "social_network": "vk",
            "connection_link": "https://vk.com/id1",
            "connected_for": None,
        },
        WRITE,
    ),
    (
        "unlink_social_network",
        "DELETE",
        "/users/unlink-social-network",
        {**A_USER, "linked_account_id": MISSING_USER},
        WRITE,
    ),
    (
        "change_social_network_connection_reason",
        "PUT",
        "/users/change-social-network-connection-reason",
        {**A_USER, "linked_account_id": MISSING_USER, "reason": None},
        WRITE,
    ),
    ("get_user", "GET", f"/users/{MISSING_USER}", None, READ),
    ("find_users", "GET", "/users?email=someone@example.com", None, READ),
    ("find_users", "GET", "/users?phone=79161234567", None, READ),
    ("find_users", "GET", "/users?limit=5", None, LIST),
    ("find_users", "GET", "/users?status=active", None, LIST),
    ("find_users", "GET", "/users", None, LIST),
]


def test_the_table_covers_every_guarded_operation():
    assert {operation for operation, *_ in OPERATIONS} == set(ACCESS)


@pytest.mark.parametrize("scope", SCOPES)
async def test_each_scope_opens_exactly_its_operations(
    scope: str, api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer, scope=scope))
    for operation, method, path, body, needed in OPERATIONS:
        response = await api.request(method, API + path, json=body, headers=bearer(token))
        if needed == scope:
            assert response.status not in (401, 403), (operation, path, await response.text())
        else:
            await expect_error(response, 403, "insufficient_scope")
            assert response.headers["WWW-Authenticate"] == (
                f'Bearer realm="usersvc", error="insufficient_scope", scope="{needed}"'
            ), (operation, path)


async def test_scopes_may_come_as_an_scp_list(api: TestClient, key: Key, provider: Provider):
    token = sign(key, claims(iss=provider.issuer, scope=None, scp=["users:read", "users:list"]))
    assert (await api.get(API + "/users?limit=1", headers=bearer(token))).status == 200
    response = await api.post(API + "/users/create_user", json=user_body(), headers=bearer(token))
    await expect_error(response, 403, "insufficient_scope")


async def test_a_bad_body_without_a_token_is_401_not_422(api: TestClient):
    response = await api.post(API + "/users/create_user", json={"phone": "not a number"})
    await expect_error(response, 401, "unauthenticated")


async def test_a_bad_body_with_a_token_lacking_the_scope_is_403_not_422(
    api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer, scope=READ))
    response = await api.post(
        API + "/users/create_user", json={"phone": "not a number"}, headers=bearer(token)
    )
    await expect_error(response, 403, "insufficient_scope")


async def test_a_malformed_user_id_without_a_token_is_401_not_422(api: TestClient):
    response = await api.get(API + "/users/not-a-uuid")
    await expect_error(response, 401, "unauthenticated")


async def test_an_unknown_route_or_a_wrong_method_comes_before_authentication(api: TestClient):
    await expect_error(await api.get(API + "/nothing-here"), 404, "not_found")
    wrong_method = await api.get(API + "/users/create_user")
    await expect_error(wrong_method, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", API + "/healthcheck"),
        ("GET", "/metrics"),
        ("GET", "/livez"),
        ("GET", "/readyz"),
        ("GET", "/api/docs"),
        ("GET", "/api/docs/openapi.json"),
    ],
)
async def test_health_probes_metrics_and_documents_need_no_token(
    method: str, path: str, api: TestClient
):
    response = await api.request(method, path)
    assert response.status == 200, await response.text()
