"""The endpoints (§3): read the body into a command, run it, answer in an envelope."""

import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
from aiohttp import web
from attrs import evolve
from returns.pipeline import is_successful
from returns.result import Failure, Success

from usersvc.amqp import Relay, outbox_backlog
from usersvc.db.idempotency import (
    Fresh,
    IdempotencyKey,
    InProgress,
    KeyReused,
    Replayed,
    StoredResponse,
)
from usersvc.db.queries import Queries
from usersvc.db.users import Row, Users
from usersvc.domain import events
from usersvc.domain.commands import Change, CreateUser, Decision, IfMatch
from usersvc.domain.failures import DomainFailure, UserNotFound
from usersvc.domain.values import LINK_MAX_LENGTH, parse_connection_link
from usersvc.http import cursors
from usersvc.http.callers import CALLER
from usersvc.http.failures import IDEMPOTENCY_KEY_REUSED, REQUEST_IN_PROGRESS, describe
from usersvc.http.presenters import etag, present_row
from usersvc.http.responses import answer, error, invalid, success
from usersvc.http.schemas import CURSOR, Body, UserPath, UsersQuery, parse_uuid
from usersvc.http.validation import Detail, load, parse_json, read_body
from usersvc.telemetry import metrics
from usersvc.telemetry.tracing import trace_headers

POOL = web.AppKey("pool", asyncpg.Pool)
QUERIES = web.AppKey("queries", Queries)
USERS = web.AppKey("users", Users)
RELAY = web.AppKey("relay", Relay)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _done(change: Change) -> web.Response:
    """201 with the new id for what creates something, 200 otherwise; with the user's
    new version as ETag while the user exists, for the client's next If-Match."""
    new_id = _created_id(change.event)
    headers = None if change.user is None else etag(change.user.version)
    return success(headers=headers) if new_id is None else success(new_id, 201, headers)


_ENTITY_TAG = re.compile(r'\s*"([0-9]{1,18})"\s*')


def if_match(header: str | None) -> IfMatch:
    """The versions an ``If-Match`` header accepts: None for no header or ``*`` (any
    existing user). A weak or malformed tag is kept as a tag that names no version,
    so it never matches (RFC 9110 compares If-Match strongly)."""
    if header is None or header.strip() == "*":
        return None
    return frozenset(
        int(found[1]) for tag in header.split(",") if (found := _ENTITY_TAG.fullmatch(tag))
    )


def render(decision: Decision) -> web.Response:
    # A match, not .map().alt() and unwrap: no intermediate containers on every request.
    match decision:
        case Success(change):
            return _done(change)
        case Failure(failure):
            return failed(failure)
    raise AssertionError("a Result is a Success or a Failure")


@functools.cache
def _command_name(kind: type) -> str:
    """``ChangeFullname`` -> ``change_fullname``, the name the metrics use."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def count_command(command: object, decision: Decision) -> None:
    """The domain-outcome counter: ``ok`` or the failure's contract code."""
    outcome = "ok" if isinstance(decision, Success) else describe(decision.failure())[0].code
    metrics.count_command(_command_name(type(command)), outcome)


IDEMPOTENCY_KEY = "Idempotency-Key"
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]{1,255}")
KEY_RULE = "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)"


def idempotency_key(request: web.Request) -> tuple[str | None, Detail]:
    """The request's key (None without the header), or the ``detail`` that refuses it:
    empty, longer than 255, a character outside 0x21..0x7E, or the header twice."""
    found = request.headers.getall(IDEMPOTENCY_KEY, [])
    if not found:
        return None, []
    if len(found) == 1 and _VISIBLE_ASCII.fullmatch(found[0]):
        return found[0], []
    msg = KEY_RULE if len(found) == 1 else f"{IDEMPOTENCY_KEY} must be sent once"
    return None, [{"loc": ["header", IDEMPOTENCY_KEY], "msg": msg, "type": "value_error"}]


async def request_hash(request: web.Request) -> bytes:
    """What makes a repeat the same request: the body as JSON, whatever its keys' order
    and spacing, and If-Match. Called on a body that was read and parsed already."""
    parsed = parse_json(await request.read()).unwrap()
    canonical = json.dumps(
        [parsed, request.headers.get("If-Match")], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).digest()


def stored(response: web.Response) -> StoredResponse:
    assert isinstance(response.body, bytes)
    return StoredResponse(response.status, response.body, response.headers.get("ETag"))


def _respond(response: StoredResponse, replayed: bool) -> web.Response:
    headers = {} if response.etag is None else {"ETag": response.etag}
    if replayed:
        headers["Idempotent-Replayed"] = "true"  # as Stripe marks a replay
    return web.Response(
        body=response.body,
        status=response.status,
        content_type="application/json",
        headers=headers,
    )


def _render_stored(decision: Decision) -> StoredResponse:
    return stored(render(decision))


def command_handler(schema: Body, endpoint: str) -> Handler:
    """One handler shape for every command; only the body schema differs. With an
    Idempotency-Key the command runs at most once per key on this ``endpoint``."""

    async def handle(request: web.Request) -> web.Response:
        key, refused = idempotency_key(request)
        command = await read_body(request, schema)
        if refused or not is_successful(command):
            return invalid(refused + ([] if is_successful(command) else command.failure()))
        users = request.app[USERS]
        decided = command.unwrap()
        if not isinstance(decided, CreateUser):
            decided = evolve(decided, if_match=if_match(request.headers.get("If-Match")))
        actor = request[CALLER].actor if CALLER in request else None
        if key is None:
            decision = await users.execute(decided, trace_headers(request.headers), actor=actor)
            count_command(decided, decision)
            return render(decision)
        keyed = IdempotencyKey(endpoint, key, await request_hash(request))
        match await users.execute_once(
            decided, trace_headers(request.headers), keyed, _render_stored, actor=actor
        ):
            case Fresh(decision, response):
                count_command(decided, decision)
                return _respond(response, replayed=False)
            case Replayed(response):
                metrics.IDEMPOTENT_REPLAYS.inc()
                return _respond(response, replayed=True)
            case KeyReused():
                return answer(IDEMPOTENCY_KEY_REUSED)
            case InProgress():
                return answer(REQUEST_IN_PROGRESS)
        raise AssertionError("unreachable")

    return handle


_user_path = UserPath()


async def get_user(request: web.Request) -> web.Response:
    raw = request.match_info["user_id"]
    try:
        # What the schema's Uuid field does with a string, without a schema load per
        # request; the schema still judges (and words) whatever this refuses.
        user_id = parse_uuid(raw)
    except ValueError:
        path = load(_user_path, {"user_id": raw}, "path")
        if not is_successful(path):
            return invalid(path.failure())
        user_id = path.unwrap()["user_id"]
    row = await request.app[USERS].get_row(user_id)
    if row is None:
        return failed(UserNotFound(user_id))
    version = row["version"]
    seen = request.headers.get("If-None-Match")
    if seen is not None and none_match(seen, version):
        return web.Response(status=304, headers=etag(version))
    return success(present_row(row), headers=etag(version))


_WEAK_OR_STRONG_TAG = re.compile(r'\s*(?:W/)?"([0-9]{1,18})"\s*')


def none_match(header: str, version: int) -> bool:
    """Whether an ``If-None-Match`` header names this version: ``*``, or one of its
    entity tags. Compared weakly, as RFC 9110 says for If-None-Match (``W/"3"`` names
    version 3 too); a malformed tag names nothing."""
    if header.strip() == "*":
        return True
    return any(
        (found := _WEAK_OR_STRONG_TAG.fullmatch(tag)) is not None and int(found[1]) == version
        for tag in header.split(",")
    )


_users_query = UsersQuery()
# What no stored contact or link can be is found without asking the database, which
# would refuse it (a bigint out of range, a NUL or a lone surrogate in text): E.164 has
# at most 15 digits, an email at most 254 characters.
MAX_PHONE = 999_999_999_999_999


def _storable(text: str, longest: int = 254) -> bool:
    if len(text) > longest or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


DEFAULT_LIMIT = 20


async def find_users(request: web.Request) -> web.Response:
    """A look-up (by email, phone, ids or linked account), else one page of the listing.
    The query string holds personal data: nothing here logs it, and the telemetry sees
    only the route."""
    given = request.query
    data = dict(given)
    if "id" in data:
        data["id"] = given.getall("id")
    query = load(_users_query, data, "query")
    if not is_successful(query):
        return invalid(query.failure())
    asked = query.unwrap()
    users = request.app[USERS]
    if "id" in asked:
        return _page(await users.get_rows(asked["id"]), None)
    if "email" in asked:
        email = asked["email"]
        return _page(await users.find_by_email(email) if _storable(email) else [], None)
    if "phone" in asked:
        phone = asked["phone"]
        return _page(await users.find_by_phone(phone) if phone <= MAX_PHONE else [], None)
    if "social_network" in asked:
        network = asked["social_network"]
        # The link as the domain reads one, to its key; one that no account of this
        # network can have (another network's, not a link at all) finds no one.
        link = parse_connection_link(network, asked["connection_link"])
        if not is_successful(link) or not _storable(link.unwrap().key, LINK_MAX_LENGTH):
            return _page([], None)
        return _page(await users.find_by_linked_account(network, link.unwrap()), None)
    after = None
    if "cursor" in asked:
        after = cursors.decode(asked["cursor"])
        if after is None:
            return invalid([{"loc": ["query", "cursor"], "msg": CURSOR, "type": "value_error"}])
    limit = asked.get("limit", DEFAULT_LIMIT)
    # One more than the page: whether a next page exists, in the same query.
    found = await users.page(asked.get("status"), after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    if not more:
        return _page(page, None)
    last = page[-1]
    return _page(page, cursors.encode((last["created_at"], last["user_id"])))


def _page(found: list[Row], next_cursor: str | None) -> web.Response:
    return success({"users": [present_row(row) for row in found], "next_cursor": next_cursor})


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
