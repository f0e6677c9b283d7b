"""§5: the provider's keys are fetched without blocking requests, kept while the provider
is down, fetched again for an unknown kid at most once every interval, and again when
their max-age runs out; start-up never waits for the provider."""

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import API, expect_error, user_body
from tests.auth.conftest import Service
from tests.auth.support import Key, Provider, bearer, claims, sign
from usersvc.http import keys

LISTING = API + "/users?limit=1"


async def _get(api: TestClient, token: str) -> int:
    response = await api.get(LISTING, headers=bearer(token))
    return response.status


async def test_a_key_published_while_the_service_runs_is_accepted_without_a_restart(
    service: Service, key: Key, provider: Provider
):
    api = await service(refetch_every=0.2)
    assert await _get(api, sign(key, claims(iss=provider.issuer))) == 200
    rotated = Key("RSA", "k2")
    provider.keys = [rotated]  # the old key retired, the new one published
    await asyncio.sleep(0.3)
    assert await _get(api, sign(rotated, claims(iss=provider.issuer))) == 200


async def test_an_unknown_kid_fetches_the_key_set_at_most_once_per_interval(
    service: Service, key: Key, provider: Provider
):
    api = await service()  # the contract's 30 s
    assert await _get(api, sign(key, claims(iss=provider.issuer))) == 200
    fetched = provider.fetches
    for n in range(20):
        made_up = sign(key, claims(iss=provider.issuer), kid=f"made-up-{n}")
        assert await _get(api, made_up) == 401
    assert provider.fetches - fetched <= 1


async def test_while_the_provider_is_down_a_known_key_still_verifies(
    service: Service, key: Key, provider: Provider
):
    api = await service(refetch_every=0.1)
    token = sign(key, claims(iss=provider.issuer))
    assert await _get(api, token) == 200
    provider.down = True
    await asyncio.sleep(0.2)
    # an unknown kid makes the service ask, and fail: the kept keys stay
    assert await _get(api, sign(key, claims(iss=provider.issuer), kid="k9")) == 503
    assert await _get(api, sign(key, claims(iss=provider.issuer, jti="another"))) == 200


async def test_while_the_provider_is_down_an_unknown_key_is_503_with_retry_after(
    service: Service, key: Key, provider: Provider
):
    api = await service(refetch_every=0.1)
    assert await _get(api, sign(key, claims(iss=provider.issuer))) == 200
    provider.down = True
    await asyncio.sleep(0.2)
    response = await api.get(
        LISTING, headers=bearer(sign(key, claims(iss=provider.issuer), kid="new"))
    )
    await expect_error(response, 503, "service_unavailable")
    assert int(response.headers["Retry-After"]) > 0


async def test_start_up_does_not_wait_for_a_provider_that_is_down(
    service: Service, key: Key, provider: Provider
):
    provider.down = True
    api = await service(refetch_every=0.1)  # starts: the app's start-up did not fail
    token = sign(key, claims(iss=provider.issuer))
    assert await _get(api, token) == 503
    provider.down = False
    await asyncio.sleep(0.2)
    assert await _get(api, token) == 200


async def test_a_slow_provider_never_delays_a_request_whose_key_is_known(
    service: Service, key: Key, provider: Provider
):
    api = await service(refetch_every=0.1)
    token = sign(key, claims(iss=provider.issuer))
    assert await _get(api, token) == 200
    provider.delay = 2.0  # every answer of the provider now takes 2 s (4 s a fetch)
    await asyncio.sleep(0.2)
    # a token naming an unknown key sets a fetch going (and waits for it) ...
    waiting = asyncio.create_task(_get(api, sign(key, claims(iss=provider.issuer), kid="k7")))
    await asyncio.sleep(0.2)
    # ... while requests with the known key are answered at once, the fetch or not
    for _ in range(5):
        started = time.monotonic()
        fresh = sign(key, claims(iss=provider.issuer, jti=str(time.monotonic_ns())))
        assert await _get(api, fresh) == 200
        assert time.monotonic() - started < 1.0
    assert not waiting.done()
    assert await waiting == 401  # the set came, without k7


async def test_the_key_set_is_fetched_again_when_its_max_age_runs_out(
    service: Service, key: Key, provider: Provider, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(keys, "MAX_AGE_BOUNDS", (0.1, 3600.0))
    provider.cache_control = "public, max-age=0.3"
    await service()
    await asyncio.sleep(1.5)
    assert provider.fetches >= 3


async def test_a_key_set_whose_max_age_has_not_run_out_is_not_fetched_again(
    service: Service, key: Key, provider: Provider, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(keys, "MAX_AGE_BOUNDS", (0.1, 3600.0))
    provider.cache_control = "max-age=600"
    api = await service()
    assert await _get(api, sign(key, claims(iss=provider.issuer))) == 200
    await asyncio.sleep(1.0)
    assert provider.fetches == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, keys.DEFAULT_MAX_AGE),
        ("max-age=600", 600.0),
        ("public, max-age=3600, must-revalidate", 3600.0),
        ('max-age="120"', 120.0),
        ("no-cache", keys.DEFAULT_MAX_AGE),
        ("max-age=1", keys.MAX_AGE_BOUNDS[0]),
        ("max-age=99999999", keys.MAX_AGE_BOUNDS[1]),
        ("s-maxage=10", keys.DEFAULT_MAX_AGE),
    ],
)
def test_max_age_is_read_from_cache_control_within_bounds(header: str | None, seconds: float):
    assert keys.max_age(header) == seconds


async def test_an_explicit_jwks_url_needs_no_discovery(
    service: Service, key: Key, provider: Provider
):
    api = await service(jwks_url=provider.issuer + "/jwks")
    response = await api.post(
        API + "/users/create_user",
        json=user_body(),
        headers=bearer(sign(key, claims(iss=provider.issuer))),
    )
    assert response.status == 201


async def test_a_discovery_document_of_another_issuer_is_not_trusted(
    service: Service, key: Key, provider: Provider
):
    real = provider.issuer
    provider.issuer = "https://impostor.example"  # what its discovery document says
    api = await service(issuer=real)
    assert await _get(api, sign(key, claims(iss=real))) == 503


def test_private_keys_encryption_keys_and_keys_without_kid_are_left_out():
    signing = Key("RSA", "sig")
    private = {**signing.jwk, "kid": "private", "d": "AQAB"}
    encryption = {**signing.jwk, "kid": "enc", "use": "enc"}
    nameless = {k: v for k, v in signing.jwk.items() if k != "kid"}
    unknown = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
    found = keys.usable_keys({"keys": [signing.jwk, private, encryption, nameless, unknown]})
    assert set(found) == {"sig"}
