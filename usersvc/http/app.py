"""The aiohttp application: routes, middleware, and what lives as long as the app."""

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp_apispec import docs, request_schema, setup_aiohttp_apispec

from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.users import Users
from usersvc.http import schemas
from usersvc.http.handlers import USERS, command_handler, get_user, healthcheck
from usersvc.http.middleware import envelopes

API = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024

# Commands: method, path, body, summary. Each failure it may answer is in the contract §3.
COMMANDS: tuple[tuple[str, str, type[schemas.Body], str], ...] = (
    ("POST", "/users/create_user", schemas.CreateUserBody, "Create a user"),
    ("PUT", "/users/recovery-user", schemas.RecoverUserBody, "Recover a deleted user"),
    (
        "DELETE",
        "/users/delete-user-permanently",
        schemas.DeleteUserPermanentlyBody,
        "Delete a user and their linked accounts for good",
    ),
    (
        "DELETE",
        "/users/delete-user-temporarily",
        schemas.DeleteUserTemporarilyBody,
        "Delete a user until recovered",
    ),
    ("PUT", "/users/change-fullname", schemas.ChangeFullnameBody, "Change the fullname"),
    ("PUT", "/users/change-contacts", schemas.ChangeContactsBody, "Replace email and phone"),
    (
        "POST",
        "/users/link-social-network",
        schemas.LinkSocialNetworkBody,
        "Link a social-network account",
    ),
    (
        "DELETE",
        "/users/unlink-social-network",
        schemas.UnlinkSocialNetworkBody,
        "Unlink a social-network account",
    ),
    (
        "PUT",
        "/users/change-social-network-connection-reason",
        schemas.ChangeConnectionReasonBody,
        "Change why an account is linked",
    ),
)


def add_routes(app: web.Application) -> None:
    for method, path, body, summary in COMMANDS:
        handler = command_handler(body())
        handler = docs(tags=["users"], summary=summary)(request_schema(body)(handler))
        app.router.add_route(method, API + path, handler)
    app.router.add_get(
        API + "/users/{user_id}", docs(tags=["users"], summary="A user, every field")(get_user)
    )
    app.router.add_post(
        API + "/healthcheck", docs(tags=["health"], summary="Is the service up")(healthcheck)
    )


def _users(
    database_url: str, pool_min_size: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(database_url, min_size=pool_min_size)
        app[USERS] = Users(pool, load())
        yield
        await pool.close()

    return context


def create_app(database_url: str, *, pool_min_size: int = 2) -> web.Application:
    app = web.Application(middlewares=[envelopes], client_max_size=MAX_BODY_BYTES)
    app.cleanup_ctx.append(_users(database_url, pool_min_size))
    add_routes(app)
    setup_aiohttp_apispec(
        app,
        title="usersvc",
        version="1",
        url="/api/docs/swagger.json",
        swagger_path="/api/docs",
        static_path="/api/docs/static",
        openapi_version="3.0.2",
        in_place=True,
    )
    return app
