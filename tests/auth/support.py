"""Keys the tests make, tokens signed with them, and a provider that serves them over
HTTP (discovery and a JWK Set), whose answers a test can change while the service runs."""

import asyncio
import json
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

AUDIENCE = "usersvc"
ALL_SCOPES = "users:read users:list users:write users:erase"


class Key:
    """A private key of the tests, its ``kid``, and its public half as a JWK."""

    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            public = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        elif kind == "EC":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            public = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        elif kind == "OKP":
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.alg = "EdDSA"
            public = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        else:
            raise ValueError(kind)
        self.jwk = {**public, "kid": kid, "use": "sig"}


class Provider:
    """An OpenID provider's two documents, served by an aiohttp server of the test."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.issuer = ""  # known once served
        self.down = False  # answer 503 to everything
        self.delay = 0.0  # seconds before every answer
        self.cache_control: str | None = None
        self.fetches = 0  # of the key set
        self.app = web.Application()
        self.app.router.add_get("/.well-known/openid-configuration", self._discovery)
        self.app.router.add_get("/jwks", self._jwks)

    async def _answer(self, document: dict[str, Any], headers: dict[str, str]) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            return web.Response(status=503, text="down")
        return web.json_response(document, headers=headers)

    async def _discovery(self, _: web.Request) -> web.Response:
        return await self._answer(
            {
                "issuer": self.issuer,
                "jwks_uri": self.issuer + "/jwks",
                "token_endpoint": self.issuer + "/token",
            },
            {},
        )

    async def _jwks(self, _: web.Request) -> web.Response:
        self.fetches += 1
        headers = {} if self.cache_control is None else {"Cache-Control": self.cache_control}
        return await self._answer({"keys": [key.jwk for key in self.keys]}, headers)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for ``issuer`` (given as ``iss``), every scope, ten minutes long."""
    now = int(time.time())
    found = {
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "client_id": "billing",
        "sub": "billing",
        "scope": ALL_SCOPES,
        "jti": f"{time.monotonic_ns()}",
    }
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not None}


def sign(key: Key, payload: dict[str, Any], **header: Any) -> str:
    """``payload`` as a JWS by ``key`` (its ``kid`` and algorithm unless ``header`` says)."""
    alg = header.pop("alg", key.alg)
    return jwt.encode(payload, key.private, algorithm=alg, headers={"kid": key.kid, **header})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
