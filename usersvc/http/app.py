"""The aiohttp application: routes, middleware, and what lives as long as the app."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg
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
from usersvc.telemetry import metrics
from usersvc.telemetry.middleware import telemetry

API = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
RELAY_CLOSE_SECONDS = 10.0  # beyond the confirm timeout, to close its connections

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
    app.router.add_get(API + "/users/{user_id}", user_docs(get_user))
    health_docs = docs(
        tags=["health"],
        summary="Is the service up",
        responses={200: {"description": "OK"}, 503: {"description": "database unreachable"}},
    )
    app.router.add_post(API + "/healthcheck", health_docs(healthcheck))


def _database(database_url: str, pool_min_size: int) -> Context:
    async def context(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(database_url, min_size=pool_min_size)
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


def create_app(
    database_url: str, *, relay: RelaySettings | None = None, pool_min_size: int = 2
) -> web.Application:
    """The API; with ``relay`` settings the outbox relay runs in this process too."""
    # The telemetry middleware outside the envelopes: it sees the status the client gets.
    app = web.Application(middlewares=[telemetry, envelopes], client_max_size=MAX_BODY_BYTES)
    app[QUERIES] = load()
    app.router.add_get("/metrics", metrics.metrics_handler(_outbox_stats))
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
