"""Helpers of the relay tests: commands, a consumer, a TCP proxy to cut, waiting."""

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from aiormq.abc import DeliveredMessage
from returns.result import Success

from usersvc.amqp import Relay
from usersvc.db.users import Command, Users
from usersvc.domain import commands
from usersvc.domain.model import SocialNetwork

# Brisk timings, so an outage or a takeover costs the suite fractions of a second.
FAST = {
    "poll_interval": 1.0,
    "backoff_initial": 0.05,
    "backoff_max": 0.5,
    "lock_retry_interval": 0.1,
    "confirm_timeout": 10.0,
    "connect_timeout": 2.0,
}


def traceparent() -> str:
    return f"00-{uuid4().hex}-{uuid4().hex[:16]}-01"


_phones = itertools.count(int(uuid4().int % 10**8))


def create_user(**overrides: Any) -> commands.CreateUser:
    """A valid new user with a unique email and phone."""
    fields = {
        "firstname": "Ivan",
        "lastname": "Petrov",
        "middlename": "Sergeevich",
        "email": f"ivan.{uuid4().hex[:12]}@example.com",
        # +7 9XX XXX XX XX: a possible Russian mobile number.
        "phone": 79_000_000_000 + next(_phones) % 10**9,
    }
    return commands.CreateUser(**(fields | overrides))


ACTOR = "relay-tests"  # the client id every command here is asked by


async def succeed(users: Users, command: Command, headers: dict[str, str] | None = None) -> Any:
    """Run a command that must succeed (asked by :data:`ACTOR`); its event."""
    decision = await users.execute(command, headers, actor=ACTOR)
    assert isinstance(decision, Success), decision
    return decision.unwrap().event


async def every_event(run: Callable[[Command], Awaitable[Any]]) -> UUID:
    """One command of each kind on a new user, through ``run``, ending with its
    permanent deletion; the user's id."""
    created = await run(create_user())
    user_id = created.user_id
    await run(commands.ChangeFullname(user_id, "Petr", "Sidorov", None))
    await run(commands.ChangeContacts(user_id, f"p.{uuid4().hex[:8]}@example.org", None))
    link = f"https://vk.com/id{uuid4().hex[:10]}"
    linked = await run(commands.LinkSocialNetwork(user_id, SocialNetwork.VK, link, "work"))
    await run(commands.ChangeConnectionReason(user_id, linked.linked_account_id, "friends"))
    await run(commands.UnlinkSocialNetwork(user_id, linked.linked_account_id))
    await run(commands.DeleteUserTemporarily(user_id))
    await run(commands.RecoverUser(user_id))
    link = f"https://t.me/u{uuid4().hex[:10]}"
    await run(commands.LinkSocialNetwork(user_id, SocialNetwork.TELEGRAM, link, None))
    await run(commands.DeleteUserPermanently(user_id))
    return user_id


class Consumer:
    """Everything the test's queue receives, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[DeliveredMessage] = []
        self._seen: set[str] = set()
        self._arrived = asyncio.Event()

    async def _on_message(self, message: DeliveredMessage) -> None:
        self.messages.append(message)
        self._seen.add(message.header.properties.message_id)
        self._arrived.set()

    def ids(self) -> list[str]:
        return [m.header.properties.message_id for m in self.messages]

    async def wait_for(self, event_ids: Iterable[UUID | str], within: float = 20.0) -> None:
        """Until every one of these events has arrived at least once."""
        wanted = {str(e) for e in event_ids}
        async with asyncio.timeout(within):
            while not wanted <= self._seen:
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_count(self, count: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()


type StartRelay = Callable[..., Awaitable[tuple[Relay, asyncio.Task[None]]]]


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Polls: what the tests wait for (health, counts) has no event to await."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def eventually_equal(
    read: Callable[[], Awaitable[object]], expected: object, within: float = 10.0
) -> None:
    async with asyncio.timeout(within):
        while True:
            if await read() == expected:
                return
            await asyncio.sleep(0.05)


class Proxy:
    """A TCP proxy to RabbitMQ that a test can cut: open links are dropped and new
    ones closed at once, as when the network to the broker fails."""

    def __init__(self, target_url: str) -> None:
        self._target = urlsplit(target_url)
        self._host, self._port = self._target.hostname or "127.0.0.1", self._target.port or 5672
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.up = True

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        credentials, _, _ = self._target.netloc.rpartition("@")
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        return self._target._replace(netloc=netloc).geturl()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.up = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._links.discard(end)
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side gone: the other goes too
