"""The OpenID provider's signing keys (its JWK Set), fetched over HTTP and kept in memory.

Found through the issuer's discovery document (``/.well-known/openid-configuration``,
its ``jwks_uri``) unless a JWK Set URL is given. Fetched in the background: at start,
again when the answer's ``Cache-Control: max-age`` runs out, and when a token names a
key the set does not have, at most once every 30 s (so tokens naming made-up keys
cannot make the service hammer its provider). A set once fetched is kept while the
provider is down. A request whose key is known never waits for the provider.
"""

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from attrs import frozen
from jwt import PyJWK
from jwt.exceptions import PyJWKError

log = logging.getLogger(__name__)

REFETCH_EVERY = 30.0  # seconds at least between two fetches for an unknown key
FETCH_TIMEOUT = 5.0  # seconds for discovery and the key set together
DEFAULT_MAX_AGE = 300.0  # when the provider says nothing of caching
MAX_AGE_BOUNDS = (REFETCH_EVERY, 86_400.0)
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after failed background fetches, then the last
DISCOVERY_PATH = "/.well-known/openid-configuration"

# What each algorithm verifies with (RFC 7518): the key type and, for EC, the curve.
# Asymmetric only: never "none", never HS* (a public key used as an HMAC secret).
ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),  # Ed25519 or Ed448, by the key's own curve
}

ASYMMETRIC = frozenset(kty for kty, _ in ALGORITHMS.values())

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class KeysUnavailableError(Exception):
    """The key set could not be fetched and no kept key has the ``kid``."""


@frozen
class SigningKey:
    """One key of the set, with what it may verify."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own ``alg``, when it names one
    key: Any  # the cryptography public key PyJWT verifies with

    def fits(self, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be verified by this key."""
        wanted = ALGORITHMS.get(alg)
        if wanted is None or (self.alg is not None and self.alg != alg):
            return False
        kty, crv = wanted
        return self.kty == kty and (crv is None or self.crv == crv)


def max_age(cache_control: str | None) -> float:
    """How long the answer may be kept, within bounds: ``max-age``, else the default."""
    found = _MAX_AGE.search(cache_control or "")
    seconds = float(found[1]) if found else DEFAULT_MAX_AGE
    low, high = MAX_AGE_BOUNDS
    return min(max(seconds, low), high)


def usable_keys(document: object) -> dict[str, SigningKey]:
    """The signature keys of a JWK Set document, by ``kid``: keys without a ``kid``, for
    encryption, private, or of a type this service cannot verify with are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set: no 'keys' list")
    found: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or "d" in jwk:  # a private key has no business here
            continue
        if jwk.get("kty") not in ASYMMETRIC:  # an "oct" key is a shared secret
            continue
        try:
            parsed = PyJWK(jwk)
        except (PyJWKError, ValueError, TypeError, KeyError):
            continue
        alg = jwk.get("alg")
        found[jwk["kid"]] = SigningKey(
            kid=jwk["kid"],
            kty=str(jwk.get("kty")),
            crv=jwk.get("crv"),
            alg=alg if isinstance(alg, str) else None,
            key=parsed.key,
        )
    return found


class SigningKeys:
    """The provider's key set; :meth:`start` in the app's start-up, :meth:`close` after."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        refetch_every: float = REFETCH_EVERY,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.token_url: str | None = None  # from discovery, for the OpenAPI document
        # Told the token URL when discovery finds it (or finds it changed).
        self.on_token_url: Callable[[str], None] | None = None
        self._refetch_every = refetch_every
        self._timeout = timeout
        self._keys: dict[str, SigningKey] = {}
        self._last_attempt = -math.inf
        self._failing = True  # until a fetch succeeds: no key set to speak of
        self._fetching: asyncio.Task[float | None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def known(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    async def find(self, kid: str) -> SigningKey | None:
        """The key named ``kid``: None when the provider's set has no such key; raises
        :class:`KeysUnavailableError` when the set cannot be fetched and no kept key has it.
        An unknown ``kid`` fetches the set again, at most once every ``refetch_every``."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        fetching = self._fetching
        if fetching is None and time.monotonic() - self._last_attempt >= self._refetch_every:
            fetching = self._fetch_once()
        if fetching is not None:
            # Shielded: a request that gives up must not cancel the fetch for the others.
            await asyncio.shield(fetching)
        key = self._keys.get(kid)
        if key is None and self._failing:
            raise KeysUnavailableError(kid)
        return key

    async def start(self) -> None:
        """Begin fetching in the background: start-up does not wait for the provider."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"Accept": "application/json"},
        )
        self._refresher = asyncio.create_task(self._refresh(), name="signing-keys")

    async def close(self) -> None:
        for task in (self._refresher, self._fetching):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()

    async def _refresh(self) -> None:
        """Fetch now, then again when the set's max-age runs out; after a failure, soon."""
        failures = 0
        while True:
            fetching = self._fetching or self._fetch_once()
            kept_for = await asyncio.shield(fetching)
            if kept_for is None:
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1
            else:
                failures = 0
                await asyncio.sleep(kept_for)

    def _fetch_once(self) -> "asyncio.Task[float | None]":
        self._last_attempt = time.monotonic()
        task = asyncio.create_task(self._fetch(), name="signing-keys-fetch")
        self._fetching = task
        task.add_done_callback(self._fetched)
        return task

    def _fetched(self, task: "asyncio.Task[float | None]") -> None:
        if self._fetching is task:
            self._fetching = None

    async def _fetch(self) -> float | None:
        """Fetch the set; how long to keep it, or None when it could not be fetched."""
        assert self._session is not None, "start() first"
        url = self.jwks_url
        try:
            async with asyncio.timeout(self._timeout):
                if url is None:
                    url = await self._discover(self._session)
                async with self._session.get(url) as response:
                    response.raise_for_status()
                    document = await response.json(content_type=None)
                    kept_for = max_age(response.headers.get("Cache-Control"))
            keys = usable_keys(document)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._failing = True
            # The type only: a provider's error text is not ours to repeat.
            log.warning(
                "the token signing keys could not be fetched from %s (%s); %d kept",
                url or self.issuer + DISCOVERY_PATH,
                type(error).__name__,
                len(self._keys),
            )
            return None
        if not keys:
            log.warning("the key set at %s has no usable signing key", url)
        elif self._keys.keys() != keys.keys():
            log.info("token signing keys fetched from %s: %s", url, ", ".join(sorted(keys)))
        self._keys = keys
        self._failing = False
        return kept_for

    async def _discover(self, session: aiohttp.ClientSession) -> str:
        """The ``jwks_uri`` of the issuer's discovery document (and its token endpoint)."""
        async with session.get(self.issuer.rstrip("/") + DISCOVERY_PATH) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise ValueError("the discovery document names no jwks_uri")
        # OpenID Connect Discovery §4.3: the document must be the issuer's own.
        if document.get("issuer") != self.issuer:
            raise ValueError("the discovery document is of another issuer")
        token_url = document.get("token_endpoint")
        if isinstance(token_url, str) and token_url != self.token_url:
            self.token_url = token_url
            if self.on_token_url is not None:
                self.on_token_url(token_url)
        return document["jwks_uri"]
