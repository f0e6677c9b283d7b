"""A process keeps at most so many connections open per peer address and in all: past a
bound a new connection gets a 503 envelope at once and is closed, while those already
open, and other peers, are served as before."""

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.api.support import API, assert_error_shape
from usersvc.http.app import SERVER_OPTIONS, create_app
from usersvc.http.connections import Connections
from usersvc.http.server import Runner


@pytest.fixture
async def port(database_url: str) -> AsyncIterator[int]:
    """The service with bounds of 3 connections per peer and 5 in all."""
    runner = Runner(create_app(database_url), connections=Connections(3, 5), **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _open(port: int, source: str = "127.0.0.1") -> tuple:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _refused(port: int, source: str = "127.0.0.1") -> None:
    reader, writer = await _open(port, source)
    answer = await asyncio.wait_for(reader.read(), 5)  # then closed: read to the end
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert b"Retry-After: 1" in head
    assert_error_shape(json.loads(body), 503)
    assert json.loads(body)["error"]["data"]["code"] == "service_unavailable"


async def _served(port: int, connection: tuple) -> None:
    reader, writer = connection
    writer.write(
        f"POST {API}/healthcheck HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    )
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"HTTP/1.1 200"), line


async def test_past_the_bound_per_peer_a_new_connection_is_refused_and_others_are_served(
    port: int,
):
    held = [await _open(port) for _ in range(3)]  # idle: no request sent yet
    await _refused(port)
    other = await _open(port, "127.0.0.2")  # another peer has its own count
    await _served(port, other)
    for connection in held:  # those already open are served as before
        await _served(port, connection)
    held[0][1].close()
    await held[0][1].wait_closed()
    await asyncio.sleep(0.1)
    await _served(port, await _open(port))  # a closed one frees its place


async def test_past_the_total_bound_every_peer_is_refused(port: int):
    held = [await _open(port, f"127.0.0.{n}") for n in range(10, 15)]
    await _refused(port, "127.0.0.20")
    assert len(held) == 5


async def test_refusals_are_counted_by_bound(port: int):
    async with aiohttp.ClientSession() as session:

        async def refused(bound: str) -> float:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                if line.startswith(f'usersvc_http_connections_refused_total{{bound="{bound}"}}'):
                    return float(line.split()[-1])
            raise AssertionError(bound)

        before = await refused("per_peer")
        held = [await _open(port, "127.0.0.30") for _ in range(3)]
        await _refused(port, "127.0.0.30")
        assert await refused("per_peer") == before + 1
        assert len(held) == 3
