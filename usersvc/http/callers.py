"""The checks on the caller before an operation runs (§5 of docs/api.md), in the
contract's order: the route is known (404/405, aiohttp's), then authentication (401),
scope (403), quota (429); request validation (422) and the rest come after, in the
handler. The answers are the failure table's, and the body never says which check
a token failed: the log says it, at INFO, never with the token.
"""

import logging

from aiohttp import web
from attrs import frozen

from usersvc.config import Settings
from usersvc.http.auth import (
    ANYONE,
    NO_TOKEN,
    Caller,
    Refusal,
    Tokens,
    bearer_token,
    challenge,
    scope_challenge,
)
from usersvc.http.failures import (
    INSUFFICIENT_SCOPE,
    KEYS_UNAVAILABLE,
    TOO_MANY_REQUESTS,
    UNAUTHENTICATED,
)
from usersvc.http.keys import SigningKeys
from usersvc.http.quotas import Budget, Quotas, parse_limits, quotas
from usersvc.http.responses import answer
from usersvc.telemetry import metrics
from usersvc.telemetry.requests import Measured

log = logging.getLogger(__name__)

# Asking again after this many seconds may find the key set fetched (the refetch wait).
KEYS_RETRY_AFTER = "30"
# The query keys of the look-ups and the batch get; a GET /users without any of them
# is the listing, which has a scope of its own.
LOOKUP_KEYS = frozenset({"email", "phone", "id", "social_network", "connection_link"})

CALLER = web.RequestKey("caller", Caller)


@frozen
class Access:
    """What an operation asks of its caller: a scope, and the budget it spends from."""

    scope: str
    budget: Budget = Budget.GENERAL
    listing_scope: str | None = None  # GET /users: the listing's scope, when no look-up

    def scope_for(self, request: web.Request) -> str:
        if self.listing_scope is not None and LOOKUP_KEYS.isdisjoint(request.query.keys()):
            return self.listing_scope
        return self.scope


class Gate:
    """``USERSVC_AUTH=jwt``: ``tokens``; ``none``: no tokens, every caller may do
    everything (quotas then count per peer address)."""

    def __init__(self, tokens: Tokens | None, quotas: Quotas | None) -> None:
        self.tokens = tokens
        self.quotas = quotas

    async def admit(
        self, request: web.Request, access: Access, measured: Measured
    ) -> web.Response | None:
        """None when the caller may go on (then ``request[CALLER]`` is theirs), else the
        answer that refuses them."""
        tokens = self.tokens
        if tokens is None:
            caller = ANYONE
        else:
            token = bearer_token(request.headers.get("Authorization"))
            if token is None:
                checked: object = NO_TOKEN
            else:
                checked = tokens.remembered(token) or await tokens.check(token)
            if type(checked) is not Caller:
                return _unauthenticated(checked)
            caller = checked
            measured.client = caller.actor
        scope = access.scope_for(request)
        if scope not in caller.scopes:
            log.info("request refused: insufficient_scope (%s needed)", scope)
            metrics.refused("insufficient_scope")
            return answer(INSUFFICIENT_SCOPE, {"WWW-Authenticate": scope_challenge(scope)})
        quotas = self.quotas
        if quotas is not None:
            wait = await quotas.spend(access.budget, caller.actor or request.remote or "")
            if wait is not None:
                log.info("request refused: too_many_requests (%s budget)", access.budget)
                metrics.refused("too_many_requests")
                return answer(TOO_MANY_REQUESTS, {"Retry-After": str(wait)})
        request[CALLER] = caller
        return None

    async def close(self) -> None:
        if self.tokens is not None:
            await self.tokens.keys.close()
        if self.quotas is not None:
            await self.quotas.close()


def _unauthenticated(checked: object) -> web.Response:
    if isinstance(checked, Refusal):
        log.info("request refused: unauthenticated (%s)", checked.reason)
        metrics.refused("unauthenticated")
        return answer(UNAUTHENTICATED, {"WWW-Authenticate": challenge(checked)})
    log.warning("request refused: the token's signing key cannot be fetched now")
    return answer(KEYS_UNAVAILABLE, {"Retry-After": KEYS_RETRY_AFTER})


def tokens_of(settings: Settings) -> Tokens | None:
    """The token checks ``USERSVC_AUTH=jwt`` asks for; None for ``none`` (or unset)."""
    if settings.auth != "jwt":
        return None
    assert settings.auth_issuer is not None  # the settings require it with jwt
    keys = SigningKeys(settings.auth_issuer, settings.auth_jwks_url)
    return Tokens(keys, settings.auth_audience)


def quotas_of(settings: Settings) -> Quotas:
    limits = parse_limits(settings.rate_limit, settings.rate_limit_lookups)
    return quotas(settings.rate_limit_storage, limits)


def warn_if_open(settings: Settings) -> None:
    """Say at start that every caller may do everything (§5): a WARNING when nobody chose
    it (``USERSVC_AUTH`` unset), a line at INFO when somebody did (``none``)."""
    if settings.auth == "jwt":
        return
    consequence = (
        "every caller may read, change and erase every user, without a token; only the "
        "network keeps others out (USERSVC_AUTH=jwt with USERSVC_AUTH_ISSUER checks tokens)"
    )
    if settings.auth is None:
        log.warning("USERSVC_AUTH is not set, so none: %s", consequence)
    else:
        log.info("USERSVC_AUTH=none: %s", consequence)
