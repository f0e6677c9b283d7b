"""A TCP proxy between the service and PostgreSQL that breaks connections on cue:
when a given message passes in either direction, or all at once, or every new one."""

import asyncio
import contextlib
import struct
from collections.abc import Callable

type Direction = str  # "to_server" or "to_client"


def _fatal(code: str, message: str) -> bytes:
    """A FATAL ErrorResponse, as PostgreSQL sends before it closes a session."""
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


# What pg_terminate_backend makes the server say.
TERMINATED = _fatal("57P01", "terminating connection due to administrator command")


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut: tuple[Direction, bytes, bool, bytes | None] | None = None
        self.cut_done = asyncio.Event()
        self.refuse = False  # close every new connection at once
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_when(
        self,
        direction: Direction,
        pattern: bytes,
        *,
        forward: bool = False,
        last_words: bytes | None = None,
    ) -> None:
        """Once: when a chunk going ``direction`` holds ``pattern``, close both sides of
        that connection, after passing the chunk on (``forward``) or instead of it. With
        ``last_words`` the client is first told them (a server's FATAL error), and the
        connection closes a moment later, as a terminated backend's does."""
        self.cut_done.clear()
        self._cut = (direction, pattern, forward, last_words)

    def cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        if self.refuse:
            client.transport.abort()
            return
        try:
            server_reader, server = await asyncio.open_connection(*self._target)
        except OSError:
            client.transport.abort()
            return
        pair = {client, server}
        self._writers |= pair

        def abort() -> None:
            for writer in pair:
                writer.transport.abort()
            self._writers.difference_update(pair)

        await asyncio.gather(
            self._pipe(client_reader, server, "to_server", abort, client),
            self._pipe(server_reader, client, "to_client", abort, client),
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
        abort: Callable[[], None],
        client: asyncio.StreamWriter,
    ) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while chunk := await reader.read(65536):
                cut = self._cut
                if cut is not None and cut[0] == direction and cut[1] in chunk:
                    self._cut = None
                    self.cut_done.set()
                    _, _, forward, last_words = cut
                    if forward:
                        writer.write(chunk)
                        with contextlib.suppress(OSError):
                            await writer.drain()
                    if last_words is not None:
                        client.write(last_words)
                        with contextlib.suppress(OSError):
                            await client.drain()
                        await asyncio.sleep(0.05)
                    abort()
                    return
                writer.write(chunk)
                await writer.drain()
        abort()
