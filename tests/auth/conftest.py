"""Fixtures for the caller tests: a provider of the test's own, and the service checking
its tokens, on the test's own database."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.auth.openid_provider import issuer, served
from tests.auth.support import AUDIENCE, Key, Provider
from tests.relay.conftest import broker, consumer, names, settings
from usersvc.http.app import create_app
from usersvc.http.auth import Tokens
from usersvc.http.keys import SigningKeys


@pytest.fixture
async def provider(aiohttp_server) -> Provider:
    found = Provider()
    server = await aiohttp_server(found.app)
    found.issuer = str(server.make_url("")).rstrip("/")
    return found


@pytest.fixture
def key(provider: Provider) -> Key:
    """The provider's signing key (RSA, RS256)."""
    made = Key("RSA", "k1")
    provider.keys.append(made)
    return made


type Service = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def service(aiohttp_client, database_url: str, provider: Provider) -> Service:
    """``await service(**app_options)``: the API checking the provider's tokens."""

    async def start(
        *,
        refetch_every: float = 30.0,
        jwks_url: str | None = None,
        issuer: str | None = None,
        **options: Any,
    ) -> TestClient:
        keys = SigningKeys(issuer or provider.issuer, jwks_url, refetch_every=refetch_every)
        app = create_app(database_url, tokens=Tokens(keys, AUDIENCE), **options)
        return await aiohttp_client(app)

    return start


@pytest.fixture
async def api(service: Service, key: Key) -> TestClient:
    return await service()


__all__ = ["broker", "consumer", "issuer", "names", "served", "settings"]
