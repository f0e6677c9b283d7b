"""An OpenID issuer for the benchmarks (not a test): a key of its own, its discovery
document and JWK Set served over HTTP, and a token signed with it that holds every
scope. What ``USERSVC_AUTH=jwt`` needs to be measured: the service fetches the keys at
start as it would from a real provider, and checks the token on every request."""

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "usersvc"
SCOPES = "users:read users:list users:write users:erase"
KID = "bench"


class Issuer:
    """RS256, as most providers sign by default; the token lasts ``lifetime`` seconds."""

    def __init__(self, port: int, lifetime: int = 3600) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        self._jwks = {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
            "client_id": "benchmark",
            "scope": SCOPES,
        }
        self.token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": KID})
        self.authorization = f"Bearer {self.token}"

    def settings(self) -> dict[str, str]:
        """The service's settings that make it check this issuer's tokens."""
        return {"USERSVC_AUTH": "jwt", "USERSVC_AUTH_ISSUER": self.url}

    def _app(self) -> web.Application:
        async def discovery(_: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": self.url + "/jwks"})

        async def jwks(_: web.Request) -> web.Response:
            return web.json_response(self._jwks, headers={"Cache-Control": "max-age=3600"})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        return app

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator["Issuer"]:
        """Served on this event loop while the block runs."""
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()

    @contextlib.contextmanager
    def serving_in_thread(self) -> Iterator["Issuer"]:
        """Served from a thread of its own, for a caller without an event loop."""
        import asyncio

        loop = asyncio.new_event_loop()
        up = threading.Event()
        stop = asyncio.Event()

        async def serve() -> None:
            async with self.serving():
                up.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        if not up.wait(30):
            raise RuntimeError("the benchmark's issuer did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
