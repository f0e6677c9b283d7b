"""Who is calling (§5 of docs/api.md): OAuth 2.0 bearer tokens (RFC 6750), JWT access
tokens in the style of RFC 9068, checked here against the provider's signing keys.

A token is accepted when it is a JWS signed with an asymmetric algorithm by a key of
the provider's set whose ``kid`` it names and whose type fits the algorithm, ``iss``
is the issuer, ``aud`` holds the audience, ``exp`` is there and not past, and
``nbf``/``iat``, when there, are not in the future (60 s of leeway). Its caller is
remembered until ``exp``: verifying a signature costs as much as answering a GET,
so each token is verified once, not on every request.
"""

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import jwt
from attrs import frozen

from usersvc.http.keys import ALGORITHMS, KeysUnavailableError, SigningKeys

log = logging.getLogger(__name__)

READ = "users:read"
LIST = "users:list"
WRITE = "users:write"
ERASE = "users:erase"
SCOPES = (READ, LIST, WRITE, ERASE)

REALM = "usersvc"
LEEWAY = 60  # seconds a provider's clock may run ahead of ours (nbf, iat)
CACHE_SIZE = 10_000  # tokens remembered; beyond it the oldest is forgotten
REFUSED_CACHE_SIZE = 1_000


@frozen
class Caller:
    """Who asks and what they may do; ``actor`` goes to the access log and the events."""

    actor: str | None
    scopes: frozenset[str]
    expires: float  # epoch seconds: the token's exp


# With USERSVC_AUTH=none: no identity, every scope.
ANYONE = Caller(None, frozenset(SCOPES), math.inf)


@frozen
class Refusal:
    """Why a token was not accepted (for the log, never the body)."""

    reason: str
    token_sent: bool = True  # False: no bearer token at all
    lasting: bool = True  # False: the same token may pass later (a new key, its nbf reached)


@frozen
class Unavailable:
    """The keys to check the token with cannot be fetched now (503)."""


NO_TOKEN = Refusal("no bearer token", token_sent=False)

type Checked = Caller | Refusal | Unavailable


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme's name in
    any case, RFC 9110), else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def actor_of(claims: Mapping[str, Any]) -> str | None:
    """The calling client: ``client_id``, else ``azp``, else ``sub``."""
    for name in ("client_id", "azp", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """The granted scopes: ``scope`` (space-separated) or ``scp`` (a list, or a string)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()


def challenge(refusal: Refusal) -> str:
    """RFC 6750 §3: the ``WWW-Authenticate`` of a 401."""
    if refusal.token_sent:
        return f'Bearer realm="{REALM}", error="invalid_token"'
    return f'Bearer realm="{REALM}"'


def scope_challenge(scope: str) -> str:
    """RFC 6750 §3: the ``WWW-Authenticate`` of a 403 naming the scope needed."""
    return f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'


class Tokens:
    """Checks bearer tokens against one issuer's keys, remembering each verdict."""

    def __init__(self, keys: SigningKeys, audience: str) -> None:
        self.keys = keys
        self.audience = audience
        self._accepted: dict[str, Caller] = {}
        self._refused: dict[str, Refusal] = {}

    def remembered(self, token: str) -> Caller | None:
        """The caller of a token verified before and not expired since: the path of
        every request but a token's first."""
        caller = self._accepted.get(token)
        if caller is not None and caller.expires > time.time():
            return caller
        return None

    async def check(self, token: str) -> Checked:
        caller = self.remembered(token)
        if caller is not None:
            return caller
        refused = self._refused.get(token)
        if refused is not None:
            return refused
        checked = await self._verify(token)
        if isinstance(checked, Caller):
            _remember(self._accepted, token, checked, CACHE_SIZE)
        elif isinstance(checked, Refusal) and checked.lasting:
            # A token refused once for good is refused again without its signature
            # checked anew: a client repeating a bad token costs no verification.
            _remember(self._refused, token, checked, REFUSED_CACHE_SIZE)
        return checked

    async def _verify(self, token: str) -> Checked:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return Refusal("not a JWS")
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            return Refusal("not an asymmetric signature algorithm")
        if not isinstance(kid, str):
            return Refusal("no kid")
        try:
            key = await self.keys.find(kid)
        except KeysUnavailableError:
            return Unavailable()
        if key is None:
            return Refusal("unknown key", lasting=False)
        if not key.fits(alg):
            return Refusal("the key does not fit the algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.keys.issuer,
                leeway=LEEWAY,
                # exp is checked below, without the leeway: it must not be past.
                options={"require": ["exp", "iss", "aud"], "verify_exp": False},
            )
        except jwt.ImmatureSignatureError:
            return Refusal("not valid yet", lasting=False)
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            return Refusal(type(error).__name__)
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= time.time():
            return Refusal("expired")
        actor = actor_of(claims)
        if actor is None:
            return Refusal("no client_id, azp or sub")
        return Caller(actor, scopes_of(claims), float(exp))


def _remember[V](found: dict[str, V], token: str, verdict: V, size: int) -> None:
    if len(found) >= size:
        del found[next(iter(found))]  # the oldest: dicts keep their order
    found[token] = verdict
