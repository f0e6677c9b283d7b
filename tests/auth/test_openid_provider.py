"""§5 against a real OpenID provider: oidc-provider (a certified implementation, on the
machine's Node) issues JWT access tokens by the client credentials grant; `usersvc serve`
runs as a process with USERSVC_AUTH=jwt and finds the provider's keys through discovery.
Every operation is called with tokens got over HTTP: the scopes decide 2xx versus 403."""

import base64

import aiohttp

from tests.api.support import API, user_body

CLIENT = ("usersvc-tests", "usersvc-tests-secret")


def _basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: the client's id and secret as HTTP Basic."""
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def _token(session: aiohttp.ClientSession, issuer: str, scope: str) -> str:
    async with session.get(issuer + "/.well-known/openid-configuration") as response:
        token_url = (await response.json())["token_endpoint"]
    async with session.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": scope},
        headers=_basic(*CLIENT),
    ) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["access_token"]


async def test_every_operation_with_tokens_of_a_real_provider(issuer: str, served: str):
    async with aiohttp.ClientSession() as session:
        scopes = ("users:read", "users:list", "users:write", "users:erase")
        tokens = {s: await _token(session, issuer, s) for s in scopes}

        async def call(scope: str, method: str, path: str, body: object = None) -> tuple:
            headers = {"Authorization": f"Bearer {tokens[scope]}"}
            async with session.request(
                method, served + API + path, json=body, headers=headers
            ) as response:
                return response.status, await response.json()

        async def only(needed: str, method: str, path: str, body: object = None) -> object:
            """Call with each scope's token: 403 but for the one it needs; its result."""
            result = None
            for scope in scopes:
                status, answer = await call(scope, method, path, body)
                if scope == needed:
                    assert status in (200, 201), (path, answer)
                    result = answer["result"]
                else:
                    assert status == 403, (path, scope, answer)
                    assert answer["error"]["data"]["code"] == "insufficient_scope"
            return result

        body = user_body()
        user_id = await only("users:write", "POST", "/users/create_user", body)
        user = {"user_id": user_id}
        await only("users:read", "GET", f"/users/{user_id}")
        await only("users:read", "GET", f"/users?email={body['email']}")
        await only("users:read", "GET", f"/users?phone={body['phone']}")
        await only("users:list", "GET", "/users?limit=10")
        names = {"firstname": "Anna", "lastname": "Orlova", "middlename": None}
        await only("users:write", "PUT", "/users/change-fullname", {**user, **names})
        contacts = {"email": f"new.{body['email']}", "phone": None}
        await only("users:write", "PUT", "/users/change-contacts", {**user, **contacts})
        account = {
            **user,
            "social_network": "telegram",
            "connection_link": f"https://t.me/{user_id}",
            "connected_for": None,
        }
        linked = await only("users:write", "POST", "/users/link-social-network", account)
        reason = {**user, "linked_account_id": linked, "reason": "support"}
        path = "/users/change-social-network-connection-reason"
        await only("users:write", "PUT", path, reason)
        unlink = {**user, "linked_account_id": linked}
        await only("users:write", "DELETE", "/users/unlink-social-network", unlink)
        await only("users:write", "DELETE", "/users/delete-user-temporarily", user)
        await only("users:write", "PUT", "/users/recovery-user", user)
        await only("users:erase", "DELETE", "/users/delete-user-permanently", user)
        status, _ = await call("users:read", "GET", f"/users/{user_id}")
        assert status == 404


async def test_a_client_gets_only_the_scopes_the_provider_grants_it(issuer: str, served: str):
    async with aiohttp.ClientSession() as session:
        async with session.post(
            issuer + "/token",
            data={"grant_type": "client_credentials", "scope": "users:write"},
            headers=_basic("reader", "reader-secret"),
        ) as response:
            assert response.status == 400  # invalid_scope: no token to try at all
        async with session.post(
            issuer + "/token",
            data={"grant_type": "client_credentials", "scope": "users:read"},
            headers=_basic("reader", "reader-secret"),
        ) as response:
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(
            served + API + "/users/create_user", json=user_body(), headers=headers
        ) as response:
            assert response.status == 403
        async with session.get(served + API + "/users?limit=1", headers=headers) as response:
            assert response.status == 403  # the listing is users:list's
