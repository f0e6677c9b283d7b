"""A client that sends its headers or body byte by byte is cut off, and meanwhile
holds nothing the others need."""

import asyncio
import json

import aiohttp
from aiohttp import web

from tests.api.support import API, assert_error_shape, user_body
from usersvc.config import Settings
from usersvc.http.app import SERVER_OPTIONS, create_app
from usersvc.http.connections import Connections
from usersvc.http.failures import HEADERS_TOO_LARGE
from usersvc.http.server import Runner
from usersvc.http.validation import BODY_READ_TIMEOUT

HEADER_TIMEOUT = SERVER_OPTIONS["keepalive_timeout"]
TRICKLE_PAUSE = 0.25  # seconds between two bytes
SLOW_CLIENTS = 20


async def _trickle(writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event) -> None:
    for byte in data:
        if stop.is_set() or writer.is_closing():
            return
        writer.write(bytes([byte]))
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(TRICKLE_PAUSE)


async def _slow_client(port: int, head: bytes, body: bytes) -> tuple[float, bytes]:
    """Sends ``head`` at once, then trickles ``body``; the seconds until the server
    answered or closed, and what it sent."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = loop.time()
    stop = asyncio.Event()
    writer.write(head)
    trickling = asyncio.create_task(_trickle(writer, body, stop))
    try:
        # the first bytes of the answer, or b"" when the server closed without one
        received = await asyncio.wait_for(reader.read(65536), HEADER_TIMEOUT + BODY_READ_TIMEOUT)
    finally:
        stop.set()
        await trickling
        writer.close()
    return loop.time() - started, received


async def test_slow_headers_and_slow_bodies_are_cut_off_and_hold_up_no_one(database_url: str):
    # served as `usersvc serve` serves it
    runner = Runner(create_app(database_url), **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        client = aiohttp.ClientSession(base)
        body = json.dumps(user_body()).encode()
        request_line = f"POST {API}/users/create_user HTTP/1.1\r\n".encode()
        headers = f"Host: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        full_head = request_line + headers.encode() + b"\r\n"
        header_hogs = [_slow_client(port, b"", full_head + body) for _ in range(SLOW_CLIENTS // 2)]
        body_hogs = [_slow_client(port, full_head, body) for _ in range(SLOW_CLIENTS // 2)]
        hogs = asyncio.gather(*header_hogs, *body_hogs)
        await asyncio.sleep(1)

        # Meanwhile everyone else is served at once.
        loop = asyncio.get_running_loop()
        for _ in range(5):
            started = loop.time()
            response = await client.post(f"{API}/healthcheck")
            assert response.status == 200
            response = await client.post(f"{API}/users/create_user", json=user_body())
            assert response.status == 201
            assert loop.time() - started < 2

        results = await hogs
        await client.close()
    finally:
        await runner.cleanup()

    for seconds, received in results[: SLOW_CLIENTS // 2]:
        # never a whole request: closed without an answer, after the header timeout
        assert received == b"", received
        assert seconds < HEADER_TIMEOUT + 3, seconds
    for seconds, received in results[SLOW_CLIENTS // 2 :]:
        head, _, payload = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), received
        assert_error_shape(json.loads(payload), 408)
        assert json.loads(payload)["error"]["data"]["code"] == "request_timeout"
        assert BODY_READ_TIMEOUT - 1 < seconds < BODY_READ_TIMEOUT + 3, seconds


async def test_thousands_of_headers_or_a_huge_one_are_a_431_envelope_and_the_server_goes_on(
    database_url: str,
):
    """Refused by the HTTP parser, before any handler, and answered by the server in the
    contract's envelope (``usersvc.http.server``; every kind of refusal, on both real
    servers, in ``test_malformed_requests``): the connection closed, the next client
    served."""
    runner = Runner(create_app(database_url), **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        floods = [
            "".join(f"X-H{i}: v\r\n" for i in range(4000)),
            "X-Big: " + "a" * 50_000 + "\r\n",
        ]
        for flood in floods:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"POST {API}/healthcheck HTTP/1.1\r\nHost: x\r\n{flood}"
                "Content-Length: 0\r\n\r\n".encode()
            )
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 431"), answer
            assert b"Content-Type: application/json" in head, answer
            assert_error_shape(json.loads(payload), 431)
            assert json.loads(payload)["error"]["data"]["code"] == HEADERS_TOO_LARGE.code
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as client:
            response = await client.post(f"{API}/healthcheck")
            assert response.status == 200
    finally:
        await runner.cleanup()


HELD = 200  # connections that sent their headers and one byte of a body, then nothing


async def _held_body(port: int, head: bytes, first: bytes) -> tuple[float, bytes]:
    """Headers and the body's first byte, then nothing: the seconds until the server
    answered or closed, and what it sent."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = loop.time()
    writer.write(head + first)
    try:
        received = await asyncio.wait_for(reader.read(65536), BODY_READ_TIMEOUT + 20)
    finally:
        writer.close()
    return loop.time() - started, received


async def _ordinary(client: aiohttp.ClientSession, n: int) -> list[tuple[int, float]]:
    """``n`` create_user requests, 20 at a time: each one's status and seconds."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(20)

    async def one() -> tuple[int, float]:
        async with limit:
            started = loop.time()
            async with client.post(f"{API}/users/create_user", json=user_body()) as response:
                await response.read()
                return response.status, loop.time() - started

    return await asyncio.gather(*(one() for _ in range(n)))


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


async def test_bodies_held_open_take_no_turn_and_everyone_else_is_served_meanwhile(
    database_url: str,
):
    """Before the body was read ahead of a turn, 70 such connections held every turn for
    the body timeout and everyone else got 503. Served with the production's bounds on
    open connections (256 per peer: the held ones and the pool of 20 fit)."""
    defaults = Settings.from_env({})
    bounds = Connections(defaults.max_connections_per_peer, defaults.max_connections)
    runner = Runner(create_app(database_url), connections=bounds, **SERVER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    body = json.dumps(user_body()).encode()
    head = (
        f"POST {API}/users/create_user HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        connector = aiohttp.TCPConnector(limit=20)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as client:
            usual = await _ordinary(client, HELD)  # their usual time, before anyone holds on
            held = [asyncio.create_task(_held_body(port, head, body[:1])) for _ in range(HELD)]
            await asyncio.sleep(1)
            meanwhile = await _ordinary(client, HELD)
            assert not any(task.done() for task in held), "the held bodies were still open"
            results = await asyncio.gather(*held)
    finally:
        await runner.cleanup()

    assert {status for status, _ in usual} == {201}
    assert [status for status, _ in meanwhile] == [201] * HELD
    assert _median([s for _, s in meanwhile]) < 3 * _median([s for _, s in usual]) + 0.5
    for seconds, received in results:
        head_line, _, payload = received.partition(b"\r\n\r\n")
        assert head_line.startswith(b"HTTP/1.1 408"), received
        assert json.loads(payload)["error"]["data"]["code"] == "request_timeout"
        assert seconds >= BODY_READ_TIMEOUT - 1
