"""§5: a token is accepted only when every check holds; every other is a 401 that changes
nothing and emits no event, and says which check failed only in the log."""

import asyncio
import base64
import json
import time
from collections.abc import Callable

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import API, expect_error, snapshot, user_body
from tests.auth.support import Key, Provider, bearer, claims, sign

CREATE = API + "/users/create_user"
CHALLENGE = 'Bearer realm="usersvc"'
INVALID_TOKEN = 'Bearer realm="usersvc", error="invalid_token"'


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(key: Key, issuer: str) -> str:
    """``alg: none``: a header and claims, no signature."""
    header = _b64({"alg": "none", "typ": "JWT", "kid": key.kid})
    return f"{header}.{_b64(claims(iss=issuer))}."


def _hmac_with_public_key(key: Key, issuer: str) -> str:
    """The classic confusion: HS256 keyed with the provider's public key (as PEM)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": key.kid})
    body = _b64(claims(iss=issuer))
    import hashlib
    import hmac

    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def _wrong_signature(key: Key, issuer: str) -> str:
    other = Key("RSA", key.kid)  # another private key claiming the same kid
    return sign(other, claims(iss=issuer))


def _key_of_another_type(key: Key, issuer: str) -> str:
    """ES256 in the header, naming the provider's RSA key: the key does not fit."""
    ec_key = Key("EC", key.kid)
    return sign(ec_key, claims(iss=issuer))


def _tampered(key: Key, issuer: str) -> str:
    """A signed token whose claims were changed afterwards (another client_id)."""
    header, _, signature = sign(key, claims(iss=issuer)).split(".")
    return f"{header}.{_b64(claims(iss=issuer, client_id='admin'))}.{signature}"


# Each way a token can be wrong, made from the provider's key and issuer.
WRONG: dict[str, Callable[[Key, str], str]] = {
    "alg none": _unsigned,
    "HS256 signed with the public key": _hmac_with_public_key,
    "a wrong signature": _wrong_signature,
    "a wrong iss": lambda key, issuer: sign(key, claims(iss=issuer + "/other")),
    "a wrong aud": lambda key, issuer: sign(key, claims(iss=issuer, aud="billing")),
    "no aud": lambda key, issuer: sign(key, claims(iss=issuer, aud=None)),
    "expired": lambda key, issuer: sign(key, claims(iss=issuer, exp=int(time.time()) - 5)),
    "no exp": lambda key, issuer: sign(key, claims(iss=issuer, exp=None)),
    "nbf in the future": lambda key, issuer: sign(
        key, claims(iss=issuer, nbf=int(time.time()) + 300)
    ),
    "iat in the future": lambda key, issuer: sign(
        key, claims(iss=issuer, iat=int(time.time()) + 300)
    ),
    "an unknown kid": lambda key, issuer: sign(key, claims(iss=issuer), kid="nobody"),
    "no kid": lambda key, issuer: jwt.encode(claims(iss=issuer), key.private, algorithm="RS256"),
    "a key of another type": _key_of_another_type,
    "no caller": lambda key, issuer: sign(
        key, claims(iss=issuer, client_id=None, sub=None, azp=None)
    ),
    "garbage": lambda key, issuer: "not.a.token",
    "a tampered payload": lambda key, issuer: _tampered(key, issuer),
}


@pytest.mark.parametrize("wrong", WRONG, ids=list(WRONG))
async def test_a_wrong_token_is_401_and_changes_nothing(
    wrong: str, api: TestClient, key: Key, provider: Provider, pool: asyncpg.Pool
):
    before = await snapshot(pool)
    token = WRONG[wrong](key, provider.issuer)
    response = await api.post(CREATE, json=user_body(), headers=bearer(token))
    await expect_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert await snapshot(pool) == before  # no user, no outbox row: no event


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer a b"],
    ids=["none", "empty", "Basic", "Bearer alone", "Bearer and a space", "Token", "two words"],
)
async def test_no_bearer_token_is_401_with_the_plain_challenge(
    authorization: str | None, api: TestClient, pool: asyncpg.Pool
):
    before = await snapshot(pool)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.post(CREATE, json=user_body(), headers=headers)
    await expect_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert await snapshot(pool) == before


async def test_a_valid_token_is_accepted_and_the_scheme_name_is_any_case(
    api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer))
    response = await api.post(
        CREATE, json=user_body(), headers={"Authorization": "bEaReR " + token}
    )
    assert response.status == 201, await response.text()


@pytest.mark.parametrize("kind", ["RSA", "EC", "OKP"])
async def test_each_asymmetric_key_type_verifies_its_own_algorithm(
    kind: str, service, provider: Provider
):
    signer = Key(kind, f"{kind}-1")
    provider.keys.append(signer)
    api = await service()
    response = await api.post(
        CREATE, json=user_body(), headers=bearer(sign(signer, claims(iss=provider.issuer)))
    )
    assert response.status == 201, await response.text()


async def test_ps256_and_an_audience_list_are_accepted(
    api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer, aud=["ledger", "usersvc"]), alg="PS256")
    response = await api.post(CREATE, json=user_body(), headers=bearer(token))
    assert response.status == 201, await response.text()


async def test_the_body_never_says_which_check_failed(
    api: TestClient, key: Key, provider: Provider
):
    bodies = set()
    for make in WRONG.values():
        response = await api.post(
            CREATE, json=user_body(), headers=bearer(make(key, provider.issuer))
        )
        bodies.add(await response.text())
    assert len(bodies) == 1


async def test_a_token_refused_once_is_refused_again_without_a_new_verification(
    api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer, exp=int(time.time()) - 5))
    for _ in range(3):
        response = await api.post(CREATE, json=user_body(), headers=bearer(token))
        assert response.status == 401


async def test_a_token_is_accepted_until_its_exp_and_refused_after(
    api: TestClient, key: Key, provider: Provider
):
    token = sign(key, claims(iss=provider.issuer, exp=int(time.time()) + 2))
    first = await api.get(API + "/users?limit=1", headers=bearer(token))
    assert first.status == 200
    deadline = time.time() + 10
    while time.time() < deadline:
        response = await api.get(API + "/users?limit=1", headers=bearer(token))
        if response.status == 401:
            return
        assert response.status == 200
        await asyncio.sleep(0.25)
    raise AssertionError("the remembered token was still accepted after its exp")


REASONS = {
    "alg none": "not an asymmetric signature algorithm",
    "HS256 signed with the public key": "not an asymmetric signature algorithm",
    "a wrong signature": "InvalidSignatureError",
    "a wrong iss": "InvalidIssuerError",
    "a wrong aud": "InvalidAudienceError",
    "no aud": "MissingRequiredClaimError",
    "expired": "expired",
    "no exp": "MissingRequiredClaimError",
    "nbf in the future": "not valid yet",
    "iat in the future": "not valid yet",
    "an unknown kid": "unknown key",
    "no kid": "no kid",
    "a key of another type": "the key does not fit the algorithm",
    "no caller": "no client_id, azp or sub",
    "garbage": "not a JWS",
    "a tampered payload": "InvalidSignatureError",
}


async def test_each_wrong_token_is_refused_by_its_own_check_and_the_log_says_which(
    api: TestClient, key: Key, provider: Provider, caplog: pytest.LogCaptureFixture
):
    assert REASONS.keys() == WRONG.keys()
    for wrong, make in WRONG.items():
        token = make(key, provider.issuer)
        caplog.clear()
        with caplog.at_level("INFO", logger="usersvc.http.callers"):
            response = await api.post(CREATE, json=user_body(), headers=bearer(token))
        assert response.status == 401, wrong
        said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert said == [f"request refused: unauthenticated ({REASONS[wrong]})"], wrong
        assert all(token not in r.getMessage() for r in caplog.records)
