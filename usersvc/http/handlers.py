"""The endpoints (§3): read the body into a command, run it, answer in an envelope."""

import re
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import asyncpg
from aiohttp import web
from returns.result import Failure, Success

from usersvc.amqp import Relay, outbox_backlog
from usersvc.db.queries import Queries
from usersvc.db.users import Users
from usersvc.domain import events
from usersvc.domain.commands import Decision, existing
from usersvc.domain.failures import DomainFailure
from usersvc.http.failures import describe
from usersvc.http.presenters import present_user
from usersvc.http.responses import error, invalid, success
from usersvc.http.schemas import Body, UserPath
from usersvc.http.validation import load, read_body

POOL = web.AppKey("pool", asyncpg.Pool)
QUERIES = web.AppKey("queries", Queries)
USERS = web.AppKey("users", Users)
RELAY = web.AppKey("relay", Relay)

# W3C trace context travels from the request into the event's message headers;
# only well-formed values go on, so a hostile header never reaches the broker.
TRACE_HEADERS = {
    "traceparent": re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"),
    "tracestate": re.compile(r"[\x20-\x7e]{1,512}"),
}

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trace_headers(request: web.Request) -> Mapping[str, str]:
    return {
        name: value
        for name, pattern in TRACE_HEADERS.items()
        if (value := request.headers.get(name)) is not None and pattern.fullmatch(value)
    }


def _created_id(event: events.Event) -> UUID | None:
    match event:
        case (
            events.UserCreated(user_id=new_id)
            | events.LinkedAccountCreated(linked_account_id=new_id)
        ):
            return new_id
        case _:
            return None


def failed(failure: DomainFailure) -> web.Response:
    info, message = describe(failure)
    return error(info.status, info.code, message)


def render(decision: Decision) -> web.Response:
    """201 with the new id for what creates something, 200 otherwise, or the failure's error."""
    match decision:
        case Success(change):
            new_id = _created_id(change.event)
            return success() if new_id is None else success(new_id, 201)
        case Failure(failure):
            return failed(failure)
    raise AssertionError("a Result is a Success or a Failure")


def command_handler(schema: Body) -> Handler:
    """One handler shape for every command; only the body schema differs."""

    async def handle(request: web.Request) -> web.Response:
        match await read_body(request, schema):
            case Failure(detail):
                return invalid(detail)
            case Success(command):
                decision = await request.app[USERS].execute(command, _trace_headers(request))
                return render(decision)
        raise AssertionError("a Result is a Success or a Failure")

    return handle


_user_path = UserPath()


async def get_user(request: web.Request) -> web.Response:
    match load(_user_path, dict(request.match_info), "path"):
        case Failure(detail):
            return invalid(detail)
        case Success(path):
            user = await request.app[USERS].get(path["user_id"])
            match existing(user, path["user_id"]):
                case Success(found):
                    return success(present_user(found))
                case Failure(failure):
                    return failed(failure)
    raise AssertionError("a Result is a Success or a Failure")


async def healthcheck(request: web.Request) -> web.Response:
    """200 while the database answers (else 503, by the middleware), with the relay's
    view of the broker and the events still waiting in the outbox."""
    app = request.app
    await app[USERS].ping()
    result: dict[str, object] = {"status": "OK", "database": "up"}
    relay = app.get(RELAY)
    if relay is not None:
        health = relay.health()
        result |= {
            "broker": health.broker,
            "outbox_backlog": await outbox_backlog(app[POOL], app[QUERIES]),
            "relay_leader": health.leader,
            "relay_last_error": health.last_error,
        }
    return success(result)
