"""§5: quotas per caller, with the reads that return personal data by contact or in bulk
on a budget of their own; 429 with Retry-After; a shared storage gives a fleet one budget."""

import asyncio
import random

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse_many

from tests.api.support import API, MISSING_USER, expect_error
from tests.auth.conftest import Service
from tests.auth.support import Key, Provider, bearer, claims, sign
from tests.telemetry.processes import environment, free_port, stop, usersvc, wait_ready
from usersvc.http.app import create_app
from usersvc.http.quotas import Budget, LocalQuotas, lease_size, parse_limits

REDIS_URL = "redis://127.0.0.1:6379/0"
LOOKUP = API + "/users?email=someone@example.com"


async def test_a_caller_over_its_lookup_budget_gets_429_while_another_is_unaffected(
    service: Service, key: Key, provider: Provider
):
    api = await service(quotas=LocalQuotas(parse_limits("1000/second", "5/minute")))
    crawler = bearer(sign(key, claims(iss=provider.issuer, client_id="crawler")))
    billing = bearer(sign(key, claims(iss=provider.issuer, client_id="billing")))
    for _ in range(5):
        assert (await api.get(LOOKUP, headers=crawler)).status == 200
    refused = await api.get(LOOKUP, headers=crawler)
    await expect_error(refused, 429, "too_many_requests")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # the listing spends from the same budget; another caller's budget is its own
    listing = await api.get(API + "/users?limit=1", headers=crawler)
    await expect_error(listing, 429, "too_many_requests")
    for _ in range(5):
        assert (await api.get(LOOKUP, headers=billing)).status == 200
    # the crawler's ordinary reads spend from the general budget, not the exhausted one
    assert (await api.get(f"{API}/users/{MISSING_USER}", headers=crawler)).status == 404


async def test_a_429_comes_before_request_validation(
    service: Service, key: Key, provider: Provider
):
    api = await service(quotas=LocalQuotas(parse_limits("2/minute", "2/minute")))
    token = bearer(sign(key, claims(iss=provider.issuer, client_id="eager")))
    for _ in range(2):
        response = await api.post(API + "/users/create_user", json={}, headers=token)
        assert response.status == 422
    response = await api.post(API + "/users/create_user", json={}, headers=token)
    await expect_error(response, 429, "too_many_requests")


def _loopback() -> str:
    """A loopback address of this test's own, so no other test's counts are its."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


async def test_without_tokens_each_peer_address_has_its_own_budget(
    aiohttp_client, database_url: str
):
    app = create_app(database_url, quotas=LocalQuotas(parse_limits("1000/second", "3/minute")))
    api: TestClient = await aiohttp_client(app)
    url = api.make_url(LOOKUP)
    one, other = _loopback(), _loopback()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(one, 0))) as first,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(other, 0))) as second,
    ):
        for _ in range(3):
            async with first.get(url) as response:
                assert response.status == 200
        async with first.get(url) as response:
            assert response.status == 429
        async with second.get(url) as response:
            assert response.status == 200


async def _lookups(port: int, source: str, times: int) -> list[int]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        found = []
        for _ in range(times):
            async with session.get(f"http://127.0.0.1:{port}{LOOKUP}") as response:
                found.append(response.status)
        return found


@pytest.mark.parametrize(
    ("storage", "shared"), [(REDIS_URL, True), ("memory://", False)], ids=["redis", "memory"]
)
async def test_with_redis_two_processes_share_one_budget(
    storage: str, shared: bool, database_url: str
):
    """Two `usersvc serve` processes, each answering three look-ups of one peer whose budget
    is four a minute: with Redis the fifth is refused wherever it lands; in memory each
    process counts alone."""
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_AUTH="none",
        USERSVC_RATE_LIMIT_LOOKUPS="4/minute",
        USERSVC_RATE_LIMIT_STORAGE=storage,
    )
    ports = [free_port(), free_port()]
    processes = [usersvc("serve", "--no-relay", "--port", str(p), env=env) for p in ports]
    source = _loopback()
    try:
        for process, port in zip(processes, ports, strict=True):
            await asyncio.to_thread(wait_ready, process, port)
        first = await _lookups(ports[0], source, 3)
        second = await _lookups(ports[1], source, 3)
    finally:
        outputs = [stop(process) for process in processes]
        if shared:
            client = redis.Redis.from_url(REDIS_URL)
            for found in client.scan_iter(f"usersvc*{source}*"):
                client.delete(found)
    assert first == [200, 200, 200]
    assert second == ([200, 429, 429] if shared else [200, 200, 200]), outputs


@settings(max_examples=40, deadline=None)
@given(limit=st.integers(min_value=1, max_value=3000))
async def test_leases_keep_a_budget_within_a_hundredth_of_its_limit(limit: int):
    """Within one window a caller gets its limit, less at most a lease, never more."""
    quotas = LocalQuotas(parse_limits(f"{limit}/hour", "1/hour"))
    allowed = 0
    for _ in range(2 * limit + 5):
        if await quotas.spend(Budget.GENERAL, "caller") is None:
            allowed += 1
    assert limit - lease_size(parse_many(f"{limit}/hour")) < allowed <= limit
    # and once refused, refused with the seconds until the window has room
    wait = await quotas.spend(Budget.GENERAL, "caller")
    assert wait is not None
    assert 1 <= wait <= 3600
