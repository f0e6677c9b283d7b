"""The aiohttp application: routes, middleware, and what lives as long as the app."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp_apispec import docs, request_schema, setup_aiohttp_apispec

from usersvc.amqp import Relay, RelaySettings
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.users import Users
from usersvc.domain import failures as F  # noqa: N812 - reads as a table of failure names
from usersvc.http import schemas
from usersvc.http.failures import FAILURES
from usersvc.http.handlers import (
    POOL,
    QUERIES,
    RELAY,
    USERS,
    command_handler,
    get_user,
    healthcheck,
)
from usersvc.http.middleware import envelopes
from usersvc.http.overload import DEFAULT_LIMIT, DEFAULT_WAIT, overload_limit

API = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
# How the server runs the app (``web.run_app``/``AppRunner`` keywords). A connection
# that has not sent a whole request's headers within the keep-alive timeout is
# closed, so a client trickling its headers holds nothing for long (its body has
# the read timeout in ``validation``, and the rest of an unread body is waited for
# only briefly after the answer).
SERVER_OPTIONS = {"keepalive_timeout": 10.0, "lingering_time": 2.0}

type Context = Callable[[web.Application], AsyncIterator[None]]

# Commands: method, path, body, summary, and the failures it may answer (contract §3).
COMMANDS: tuple[tuple[str, str, type[schemas.Body], str, tuple[type, ...]], ...] = (
    (
        "POST",
        "/users/create_user",
        schemas.CreateUserBody,
        "Create a user",
        (F.InvalidFullname, F.InvalidContacts, F.UserAlreadyExists),
    ),
    (
        "PUT",
        "/users/recovery-user",
        schemas.RecoverUserBody,
        "Recover a temporarily deleted user",
        (F.UserNotFound, F.UserAlreadyActive),
    ),
    (
        "DELETE",
        "/users/delete-user-permanently",
        schemas.DeleteUserPermanentlyBody,
        "Delete a user and their linked accounts for good",
        (F.UserNotFound,),
    ),
    (
        "DELETE",
        "/users/delete-user-temporarily",
        schemas.DeleteUserTemporarilyBody,
        "Delete a user until recovered",
        (F.UserNotFound, F.UserAlreadyDeleted),
    ),
    (
        "PUT",
        "/users/change-fullname",
        schemas.ChangeFullnameBody,
        "Change the fullname",
        (F.UserNotFound, F.UserDeleted, F.InvalidFullname),
    ),
    (
        "PUT",
        "/users/change-contacts",
        schemas.ChangeContactsBody,
        "Replace email and phone (null clears)",
        (F.UserNotFound, F.UserDeleted, F.InvalidContacts, F.UserAlreadyExists),
    ),
    (
        "POST",
        "/users/link-social-network",
        schemas.LinkSocialNetworkBody,
        "Link a social-network account",
        (
            F.UserNotFound,
            F.UserDeleted,
            F.LinkNotOfSocialNetwork,
            F.InvalidConnectionReason,
            F.LinkedAccountAlreadyExists,
        ),
    ),
    (
        "DELETE",
        "/users/unlink-social-network",
        schemas.UnlinkSocialNetworkBody,
        "Unlink a social-network account",
        (F.UserNotFound, F.UserDeleted, F.LinkedAccountNotFound),
    ),
    (
        "PUT",
        "/users/change-social-network-connection-reason",
        schemas.ChangeConnectionReasonBody,
        "Change why an account is linked",
        (F.UserNotFound, F.UserDeleted, F.LinkedAccountNotFound, F.InvalidConnectionReason),
    ),
)
CREATES = (schemas.CreateUserBody, schemas.LinkSocialNetworkBody)

# GET /users/{user_id}, where {user_id} is anything but a command's name: a wrong method
# on a command is then a 405 whose Allow names that command's method only (not GET),
# while any other text still reaches the handler and its 422 for a malformed UUID.
_COMMAND_NAMES = "|".join(
    re.escape(path.removeprefix("/users/"))
    for _, path, *_ in COMMANDS
    if path.startswith("/users/")
)
USER_PATH = f"/users/{{user_id:(?!(?:{_COMMAND_NAMES})$)[^/]+}}"


def _responses(success: tuple[int, str], failures: tuple[type, ...]) -> dict[int, dict[str, str]]:
    """An endpoint's OpenAPI responses, written from the one failure table."""
    described: dict[int, list[str]] = {422: ["request validation: a `detail` list"]}
    for failure in failures:
        info = FAILURES[failure]
        described.setdefault(info.status, []).append(f"`{info.code}`: {info.message}")
    status, text = success
    return {status: {"description": text}} | {
        code: {"description": "; ".join(texts)} for code, texts in sorted(described.items())
    }


def add_routes(app: web.Application) -> None:
    for method, path, body, summary, failures in COMMANDS:
        success = (201, "the new id") if body in CREATES else (200, "done")
        described = docs(tags=["users"], summary=summary, responses=_responses(success, failures))
        handler = described(request_schema(body, required=True)(command_handler(body())))
        app.router.add_route(method, API + path, handler)
    user_docs = docs(
        tags=["users"],
        summary="A user, every field",
        responses=_responses((200, "the user"), (F.UserNotFound,)),
    )
    app.router.add_get(API + USER_PATH, user_docs(get_user))
    health_docs = docs(
        tags=["health"],
        summary="Is the service up",
        responses={200: {"description": "OK"}, 503: {"description": "database unreachable"}},
    )
    app.router.add_post(API + "/healthcheck", health_docs(healthcheck))


def _database(database_url: str, pool_min_size: int) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(database_url, min_size=pool_min_size)
        app[POOL] = pool
        app[USERS] = Users(pool, app[QUERIES])
        yield
        await pool.close()

    return context


def _relay(database_url: str, settings: RelaySettings) -> Context:
    """The outbox relay beside the API; it stops before the pool closes."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        relay = Relay(app[POOL], database_url, app[QUERIES], settings)
        app[RELAY] = relay
        task = asyncio.create_task(relay.run(), name="outbox-relay")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def create_app(
    database_url: str,
    *,
    relay: RelaySettings | None = None,
    pool_min_size: int = 2,
    max_concurrency: int = DEFAULT_LIMIT,
    queue_wait: float = DEFAULT_WAIT,
) -> web.Application:
    """The API; with ``relay`` settings the outbox relay runs in this process too.
    At most ``max_concurrency`` requests run at once; others wait up to ``queue_wait``
    seconds, then get 503."""
    overload = overload_limit(max_concurrency, queue_wait, frozenset({API + "/healthcheck"}))
    app = web.Application(middlewares=[envelopes, overload], client_max_size=MAX_BODY_BYTES)
    app[QUERIES] = load()
    app.cleanup_ctx.append(_database(database_url, pool_min_size))
    if relay is not None:
        app.cleanup_ctx.append(_relay(database_url, relay))
    add_routes(app)
    # Swagger 2.0: the library writes request bodies in that version's form.
    setup_aiohttp_apispec(
        app,
        title="usersvc",
        version="1",
        url="/api/docs/swagger.json",
        swagger_path="/api/docs",
        static_path="/api/docs/static",
        in_place=True,
    )
    return app
