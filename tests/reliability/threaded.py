"""The app on a real socket, served from a thread with its own event loop, for tests
that are synchronous themselves (hypothesis state machines, schemathesis)."""

import asyncio
import threading

from aiohttp import web

from usersvc.http.app import SERVER_OPTIONS, create_app


class Service:
    """The app on a socket of its own, in a thread with its own event loop."""

    def __init__(self, database_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(database_url,), daemon=True)
        self.port = 0

    def _run(self, database_url: str) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(create_app(database_url, pool_min_size=1), **SERVER_OPTIONS)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    def __enter__(self) -> "Service":
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
