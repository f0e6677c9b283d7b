"""The aiohttp application: routes, middleware, and what lives as long as the app."""

import asyncio
import contextlib
import functools
import re
import types
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from aiohttp import web, web_response
from aiohttp.web_urldispatcher import AbstractRoute
from aiohttp_apigami import request_schema
from aiohttp_apigami.constants import SWAGGER_DICT
from attrs import frozen

from usersvc.amqp import Relay, RelaySettings
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.users import Users
from usersvc.domain import failures as F  # noqa: N812 - reads as a table of failure names
from usersvc.http import openapi, probes, schemas
from usersvc.http.auth import ERASE, LIST, READ, WRITE, Tokens
from usersvc.http.callers import Access, Gate
from usersvc.http.failures import (
    FAILURES,
    IDEMPOTENT,
    INSUFFICIENT_SCOPE,
    INTERNAL_ERROR,
    KEYS_UNAVAILABLE,
    METHOD_NOT_ALLOWED,
    NOT_MIGRATED,
    SERVICE_UNAVAILABLE,
    SHUTTING_DOWN,
    TOO_MANY_REQUESTS,
    UNAUTHENTICATED,
    ErrorInfo,
)
from usersvc.http.handlers import (
    POOL,
    QUERIES,
    RELAY,
    USERS,
    Handler,
    command_handler,
    find_users,
    get_user,
    healthcheck,
)
from usersvc.http.middleware import DEFAULT_LIMIT, DEFAULT_WAIT, middleware
from usersvc.http.openapi import (
    ANY_REQUEST,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    IF_NONE_MATCH,
    REPLAYED,
    WITH_A_BODY,
    Answer,
    documented,
    responses,
)
from usersvc.http.quotas import Budget, Quotas
from usersvc.http.shutdown import SHUTDOWN, Shutdown
from usersvc.telemetry import metrics

API = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
RELAY_CLOSE_SECONDS = 10.0  # beyond the confirm timeout, to close its connections
# How the server runs the app (``web.run_app``/``AppRunner`` keywords). A connection
# that has not sent a whole request's headers within the keep-alive timeout is
# closed, so a client trickling its headers holds nothing for long (its body has
# the read timeout in ``validation``, and the rest of an unread body is waited for
# only briefly after the answer).
SERVER_OPTIONS = {"keepalive_timeout": 10.0, "lingering_time": 2.0}

# The Server header of every answer, aiohttp's own too (a parser's refusal, a 500 it makes
# itself): its default, "Python/3.13 aiohttp/3.x.y", tells a scanner which known flaws to
# try. aiohttp fills the header in from this module global when it prepares a response
# (``setdefault``), so it is set once here and costs nothing per request;
# tests/api/test_wire.py and test_malformed_requests.py fail if aiohttp stops reading it.
SERVER = "usersvc"
web_response.SERVER_SOFTWARE = SERVER

type Context = Callable[[web.Application], AsyncIterator[None]]


@frozen
class Command:
    """A command's route and what its documentation says of it (contract §3)."""

    operation_id: str  # the contract's name for it, and the generated clients'
    method: str
    path: str
    body: type[schemas.Body]
    summary: str
    failures: tuple[type, ...]  # the domain failures it may answer, in the contract's order


COMMANDS: tuple[Command, ...] = (
    Command(
        "create_user",
        "POST",
        "/users/create_user",
        schemas.CreateUserBody,
        "Create a user",
        (F.InvalidFullname, F.InvalidContacts, F.UserAlreadyExists),
    ),
    Command(
        "recover_user",
        "PUT",
        "/users/recovery-user",
        schemas.RecoverUserBody,
        "Recover a temporarily deleted user",
        (F.UserNotFound, F.PreconditionFailed, F.UserAlreadyActive),
    ),
    Command(
        "delete_user_permanently",
        "DELETE",
        "/users/delete-user-permanently",
        schemas.DeleteUserPermanentlyBody,
        "Delete a user and their linked accounts for good (any status)",
        (F.UserNotFound, F.PreconditionFailed),
    ),
    Command(
        "delete_user_temporarily",
        "DELETE",
        "/users/delete-user-temporarily",
        schemas.DeleteUserTemporarilyBody,
        "Delete a user until recovered",
        (F.UserNotFound, F.PreconditionFailed, F.UserAlreadyDeleted),
    ),
    Command(
        "change_fullname",
        "PUT",
        "/users/change-fullname",
        schemas.ChangeFullnameBody,
        "Change the fullname",
        (F.UserNotFound, F.PreconditionFailed, F.UserDeleted, F.InvalidFullname),
    ),
    Command(
        "change_contacts",
        "PUT",
        "/users/change-contacts",
        schemas.ChangeContactsBody,
        "Replace email and phone (null clears; at least one stays)",
        (
            F.UserNotFound,
            F.PreconditionFailed,
            F.UserDeleted,
            F.InvalidContacts,
            F.UserAlreadyExists,
        ),
    ),
    Command(
        "link_social_network",
        "POST",
        "/users/link-social-network",
        schemas.LinkSocialNetworkBody,
        "Link a social-network account",
        (
            F.UserNotFound,
            F.PreconditionFailed,
            F.UserDeleted,
            F.LinkNotOfSocialNetwork,
            F.InvalidConnectionReason,
            F.LinkedAccountAlreadyExists,
        ),
    ),
    Command(
        "unlink_social_network",
        "DELETE",
        "/users/unlink-social-network",
        schemas.UnlinkSocialNetworkBody,
        "Unlink a social-network account",
        (F.UserNotFound, F.PreconditionFailed, F.UserDeleted, F.LinkedAccountNotFound),
    ),
    Command(
        "change_social_network_connection_reason",
        "PUT",
        "/users/change-social-network-connection-reason",
        schemas.ChangeConnectionReasonBody,
        "Change why an account is linked (connected_for)",
        (
            F.UserNotFound,
            F.PreconditionFailed,
            F.UserDeleted,
            F.LinkedAccountNotFound,
            F.InvalidConnectionReason,
        ),
    ),
)
CREATES = (schemas.CreateUserBody, schemas.LinkSocialNetworkBody)

# Who may call what (§5): the scope each operation needs and the budget it spends,
# beside the route table; the middleware checks them, the OpenAPI document lists them.
# The operations not here (the health check, probes, /metrics, the documents) are open.
ACCESS: Mapping[str, Access] = {
    "create_user": Access(WRITE),
    "recover_user": Access(WRITE),
    "delete_user_permanently": Access(ERASE),
    "delete_user_temporarily": Access(WRITE),
    "change_fullname": Access(WRITE),
    "change_contacts": Access(WRITE),
    "link_social_network": Access(WRITE),
    "unlink_social_network": Access(WRITE),
    "change_social_network_connection_reason": Access(WRITE),
    "get_user": Access(READ),
    # Look-ups and batch gets need users:read, the listing users:list; both spend from
    # the smaller budget of reads that return personal data by contact or in bulk.
    "find_users": Access(READ, Budget.LOOKUPS, listing_scope=LIST),
}
# The failures decided by the user's status, checked after If-Match (contract §3).
STATUS_RULES = (F.UserAlreadyActive, F.UserAlreadyDeleted, F.UserDeleted)


def _checks(command: Command, etag: bool) -> str:
    """What the command checks, in order, from the failures it may answer."""
    steps = [
        "the body and `Idempotency-Key` (422 `detail`)",
        "a live `Idempotency-Key` (its stored answer, or 422 `idempotency_key_reused`, "
        "or 409 `request_in_progress`)",
    ]
    own: list[str] = []
    for failure in command.failures:
        info = FAILURES[failure]
        if failure is F.UserNotFound:
            steps.append("the user exists (404)")
        elif failure is F.PreconditionFailed:
            steps.append("`If-Match` names the user's version (412)")
        elif failure in STATUS_RULES:
            steps.append(f"the user's status ({info.status} `{info.code}`)")
        else:
            own.append(f"{info.status} `{info.code}`")
    if own:
        steps.append(f"the command's own rules ({', '.join(own)})")
    text = "Checks, in order: " + "; then ".join(steps) + "."
    if etag:
        text += " A success carries the user's new version as `ETag`."
    return text


# GET /users/{user_id}, where {user_id} is anything but a command's name: a wrong method
# on a command is then a 405 whose Allow names that command's method only (not GET),
# while any other text still reaches the handler and its 422 for a malformed UUID.
_COMMAND_NAMES = "|".join(
    re.escape(command.path.removeprefix("/users/"))
    for command in COMMANDS
    if command.path.startswith("/users/")
)
USER_PATH = f"/users/{{user_id:(?!(?:{_COMMAND_NAMES})$)[^/]+}}"


LOOK_UPS = (
    "One of: `?email=` or `?phone=`, the user with that contact (email "
    "case-insensitively); `?id=…&id=…`, the users of those ids (1 to 100) in the order "
    "asked, each once, unknown ids left out; `?social_network=&connection_link=`, the "
    "user who linked that account (links compared as the same account: scheme, `www.`, "
    "the host's case, query, fragment and a trailing `/` ignored). A look-up answers a "
    "list of the users found. Otherwise a listing, oldest first: `status` (default "
    "all), `limit` 1..100 (default 20) and `cursor` (the previous page's "
    "`next_cursor`). Keyset pagination on (created_at, user_id): a user that exists "
    "throughout a walk appears exactly once, whatever is added or deleted meanwhile. "
    "Keys of two of these families together are a 422 `detail`."
)
GET_USER = (
    "Every field, also while the user is temporarily deleted, with the user's version "
    "as `ETag`. With `If-None-Match` naming that version the answer is 304 with no body. "
    "A `user_id` that is a command's name (`create_user`, `change-fullname`, …) is that "
    "command's path: 405, with its method in `Allow`."
)


def _own(handler: Handler) -> Handler:
    """A handler of this app's own: the documentation decorators write onto the function,
    and every app (tests make many) writes its document afresh. A copy of the function,
    not a wrapper around it: no extra call on every request."""
    assert isinstance(handler, types.FunctionType)
    copy = types.FunctionType(
        handler.__code__,
        handler.__globals__,
        handler.__name__,
        handler.__defaults__,
        handler.__closure__,
    )
    return functools.update_wrapper(copy, handler, updated=())


def add_routes(
    app: web.Application,
    access: dict[AbstractRoute, Access],
    refusals: Sequence[ErrorInfo] = (),
) -> None:
    """The operations; ``access`` gets each guarded route's :data:`ACCESS`, and their
    documents the ``refusals`` the caller's checks may answer (401, 403, 429, 503)."""
    for command in COMMANDS:
        # No user left to tag after a permanent deletion.
        etag = command.operation_id != "delete_user_permanently"
        headers = ("ETag", REPLAYED) if etag else (REPLAYED,)
        if command.body in CREATES:
            success = Answer(201, "created: `result` is the new id", schemas.CREATED, headers)
        else:
            success = Answer(200, "done: `result` is null", schemas.DONE, headers)
        creates_user = command.operation_id == "create_user"
        handler = request_schema(command.body, required=True)(
            command_handler(command.body(), command.operation_id)
        )
        decided = [FAILURES[failure] for failure in command.failures]
        handler = documented(
            handler,
            tags=["users"],
            summary=command.summary,
            description=_checks(command, etag),
            operation_id=command.operation_id,
            parameters=[IDEMPOTENCY_KEY] if creates_user else [IF_MATCH, IDEMPOTENCY_KEY],
            responses=responses(
                [success],
                [*decided, *IDEMPOTENT, *WITH_A_BODY, *ANY_REQUEST, *refusals],
                replayed=decided,  # stored with the key, answered again to its repeats
            ),
        )
        route = app.router.add_route(command.method, API + command.path, handler)
        access[route] = ACCESS[command.operation_id]
    user = request_schema(schemas.UserPath, location="match_info")(_own(get_user))
    user = documented(
        user,
        tags=["users"],
        summary="A user, every field (also while temporarily deleted)",
        description=GET_USER,
        operation_id="get_user",
        parameters=[IF_NONE_MATCH],
        responses=responses(
            [
                Answer(200, "the user", schemas.USER_FOUND, ("ETag",)),
                Answer(304, "`If-None-Match` names the user's current version", None, ("ETag",)),
            ],
            [FAILURES[F.UserNotFound], METHOD_NOT_ALLOWED, *ANY_REQUEST, *refusals],
        ),
    )
    # No HEAD beside GET: the contract has none, and the document lists only the contract.
    access[app.router.add_get(API + USER_PATH, user, allow_head=False)] = ACCESS["get_user"]
    found = request_schema(schemas.UsersQuery, location="querystring")(_own(find_users))
    found = documented(
        found,
        tags=["users"],
        summary="Look users up by email, phone, ids or linked account, or list them a page "
        "at a time",
        description=LOOK_UPS,
        operation_id="find_users",
        responses=responses(
            [Answer(200, "the users found", schemas.USERS_FOUND)], [*ANY_REQUEST, *refusals]
        ),
    )
    access[app.router.add_get(API + "/users", found, allow_head=False)] = ACCESS["find_users"]
    health = documented(
        _own(healthcheck),
        tags=["health"],
        summary="Is the service up: 200 while the database answers, else 503",
        operation_id="healthcheck",
        # It never waits its turn (so never "busy"), and takes no input to refuse.
        responses=responses(
            [Answer(200, "the service is up", schemas.HEALTHY)],
            (INTERNAL_ERROR, SERVICE_UNAVAILABLE),
            validated=False,
        ),
    )
    app.router.add_post(API + "/healthcheck", health)
    add_probes(app)


def add_probes(app: web.Application) -> None:
    """GET /livez and /readyz (§6), at the root as Kubernetes names them; no input to
    refuse, never a turn to wait for, and nothing that fails but what readyz reports."""
    livez = documented(
        _own(probes.livez),
        tags=["health"],
        summary="Liveness: 200 while the process serves (the database is not asked)",
        operation_id="livez",
        responses=responses(
            [Answer(200, "the process serves", schemas.PROBE_OK)], (), validated=False
        ),
    )
    app.router.add_get(probes.LIVEZ, livez, allow_head=False)
    readyz = documented(
        _own(probes.readyz),
        tags=["health"],
        summary="Readiness: 200 when the database answers, every migration is applied and "
        "the process is not shutting down; else 503",
        operation_id="readyz",
        responses=responses(
            [Answer(200, "send this process requests", schemas.PROBE_OK)],
            (SERVICE_UNAVAILABLE, SHUTTING_DOWN, NOT_MIGRATED),
            validated=False,
        ),
    )
    app.router.add_get(probes.READYZ, readyz, allow_head=False)


def _database(database_url: str, pool_min_size: int, statement_cache: int | None) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(
            database_url, min_size=pool_min_size, statement_cache=statement_cache
        )
        metrics.track_pool(pool)
        app[POOL] = pool
        app[USERS] = Users(pool, app[QUERIES])
        yield
        await pool.close()

    return context


def _relay(database_url: str, settings: RelaySettings) -> Context:
    """The outbox relay beside the API; it stops before the pool closes."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        relay = Relay(
            app[POOL], database_url, app[QUERIES], settings, on_published=metrics.published
        )
        app[RELAY] = relay
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        # After its current confirms (bounded): rows published but not yet marked
        # would be sent again by the next leader.
        relay.stop()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, settings.confirm_timeout + RELAY_CLOSE_SECONDS)

    return context


async def _outbox_stats(request: web.Request) -> tuple[int, float] | None:
    """Backlog and oldest age for ``/metrics``; None while the database does not answer."""
    app = request.app
    try:
        async with asyncio.timeout(2):  # the wait for a connection too
            row = await app[POOL].fetchrow(app[QUERIES].relay_outbox_stats)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    return row["backlog"], row["oldest_age"]


def scopes_of_operations() -> dict[str, tuple[str, ...]]:
    """The scopes each guarded operation accepts, for the OpenAPI document."""
    return {
        operation: (rule.scope,) if rule.listing_scope is None else (rule.scope, rule.listing_scope)
        for operation, rule in ACCESS.items()
    }


def _callers(gate: Gate) -> Context:
    """The provider's keys fetched in the background from start-up (which never waits
    for them), and the quota storage's connections closed at the end. Once discovery
    names the provider's token URL, the document offers OAuth 2.0's client credentials."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if gate.tokens is not None:
            keys = gate.tokens.keys
            scopes = scopes_of_operations()
            keys.on_token_url = lambda url: openapi.secure(app[SWAGGER_DICT], scopes, url)
            await keys.start()
        yield
        await gate.close()

    return context


def create_app(
    database_url: str,
    *,
    relay: RelaySettings | None = None,
    pool_min_size: int = 2,
    max_concurrency: int = DEFAULT_LIMIT,
    queue_wait: float = DEFAULT_WAIT,
    relay_database_url: str | None = None,
    statement_cache: int | None = None,
    tokens: Tokens | None = None,
    quotas: Quotas | None = None,
) -> web.Application:
    """The API; with ``relay`` settings the outbox relay runs in this process too, its
    session on ``relay_database_url`` (a direct connection; default ``database_url``).
    At most ``max_concurrency`` requests run at once; others wait up to ``queue_wait``
    seconds, then get 503 (the health check, the probes and /metrics never wait).
    ``statement_cache``: prepared statements a pool connection keeps (0: none).

    ``tokens``: callers must show a bearer token with the operation's scope
    (``USERSVC_AUTH=jwt``); without, every caller may do everything. ``quotas``: each
    caller's budgets (none: no limit)."""
    shutdown = Shutdown()
    gate = Gate(tokens, quotas)
    access: dict[AbstractRoute, Access] = {}
    exempt = frozenset({API + "/healthcheck", "/metrics", *probes.PATHS})
    edge = middleware(max_concurrency, queue_wait, exempt, shutdown, gate=gate, access=access)
    app = web.Application(middlewares=[edge], client_max_size=MAX_BODY_BYTES)
    app[SHUTDOWN] = shutdown
    app[QUERIES] = load()
    app.router.add_get("/metrics", metrics.metrics_handler(_outbox_stats))
    app.cleanup_ctx.append(_callers(gate))
    app.cleanup_ctx.append(_database(database_url, pool_min_size, statement_cache))
    if relay is not None:
        app.cleanup_ctx.append(_relay(relay_database_url or database_url, relay))
    refusals = [TOO_MANY_REQUESTS] if quotas is not None else []
    if tokens is not None:
        refusals += [UNAUTHENTICATED, INSUFFICIENT_SCOPE, KEYS_UNAVAILABLE]
    add_routes(app, access, refusals)
    openapi.setup(app, scopes_of_operations() if tokens is not None else None)
    return app


def create_relay_app(pool: asyncpg.Pool, shutdown: Shutdown) -> web.Application:
    """What ``usersvc relay`` serves on its own port: /metrics (the relay's series and
    the outbox's) and the probes, on the relay's pool."""
    exempt = frozenset({"/metrics", *probes.PATHS})
    app = web.Application(middlewares=[middleware(exempt=exempt, shutdown=shutdown)])
    app[QUERIES] = load()
    app[POOL] = pool
    app[SHUTDOWN] = shutdown
    app.router.add_get("/metrics", metrics.metrics_handler(_outbox_stats))
    app.router.add_get(probes.LIVEZ, probes.livez, allow_head=False)
    app.router.add_get(probes.READYZ, probes.readyz, allow_head=False)
    return app


def openapi_document(tokens: Tokens | None = None, quotas: Quotas | None = None) -> dict[str, Any]:
    """The OpenAPI document the app serves at ``/api/docs/openapi.json``, written without
    a database (the app connects only when it starts) nor the provider (its token URL
    comes with discovery, once the app runs)."""
    app = create_app(
        "postgresql://localhost/never-connected", pool_min_size=0, tokens=tokens, quotas=quotas
    )
    return app[SWAGGER_DICT]
