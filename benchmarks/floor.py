"""The floor of the load benchmark: usersvc's SQL with nothing around it.

    python benchmarks/floor.py PORT DATABASE_URL

A bare aiohttp + asyncpg app that answers the benchmark's five requests with the
very statements usersvc runs (read by name from ``sql/``), in the same transaction
shape and round trips, and no validation, envelopes, domain records, metrics,
logs or tracing. Whatever usersvc costs beyond this is the price of its Python.
Only the benchmark's well-formed bodies are expected: bad input is not handled.
"""

import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import orjson
import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from usersvc.db.queries import load

Q = load()
POOL = web.AppKey("pool", asyncpg.Pool)


def _default(value: object) -> str:
    if isinstance(value, UUID | datetime):
        return str(value)
    raise TypeError(type(value).__name__)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload, default=_default),
        status=status,
        content_type="application/json",
    )


async def _init(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Nothing to undo: no statement here leaves session state behind."""


async def get_user(request: web.Request) -> web.Response:
    row = await request.app[POOL].fetchrow(Q.load_user, UUID(request.match_info["user_id"]))
    if row is None:
        return _json({"status": 404}, 404)
    user = dict(row)
    user["linked_accounts"] = [dict(a) for a in user["linked_accounts"]]
    return _json({"status": 200, "result": user})


def _user(row: asyncpg.Record) -> dict:
    user = dict(row)
    user["linked_accounts"] = [dict(a) for a in user["linked_accounts"] or ()]
    return user


async def find_users(request: web.Request) -> web.Response:
    """The batch get (``?id=…&id=…``) only."""
    ids = list(dict.fromkeys(UUID(i) for i in request.query.getall("id")))
    rows = await request.app[POOL].fetch(Q.load_users, ids)
    users = [_user(row) for row in rows]
    return _json({"status": 200, "result": {"users": users, "next_cursor": None}})


async def create_user(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    user_id, now = uuid4(), datetime.now(UTC)
    data = {k: body[k] for k in ("firstname", "lastname", "middlename", "email", "phone")}
    data |= {"status": "active", "version": 1}
    async with request.app[POOL].acquire() as connection:
        await connection.execute(
            Q.create_user,
            *(uuid4(), "UserCreated", user_id, now, data, {}, None),  # no actor
            *(body["firstname"], body["lastname"], body["middlename"]),
            *(body["email"], body["phone"], "active", now, 1),
        )
    return _json({"status": 201, "result": user_id}, 201)


async def _change(
    request: web.Request, event_name: str, update: str, fields: tuple, lock_contacts: bool = False
) -> web.Response:
    body = orjson.loads(await request.read())
    user_id = UUID(body["user_id"])
    values = [body[f] for f in fields]
    async with request.app[POOL].acquire() as connection, connection.transaction():
        if lock_contacts:  # as usersvc locks the contacts a change of contacts asks for
            user = await connection.fetchrow(Q.lock_user_and_contacts, user_id, *values)
        else:
            user = await connection.fetchrow(Q.lock_user, user_id)
        version = user["version"] + 1
        event = dict(zip(fields, values, strict=True)) | {"version": version}
        await connection.execute(
            update,
            uuid4(),
            event_name,
            user_id,
            datetime.now(UTC),
            event,
            {},
            None,
            *values,
            version,
        )
    return _json({"status": 200, "result": None})


async def change_fullname(request: web.Request) -> web.Response:
    fields = ("firstname", "lastname", "middlename")
    return await _change(request, "FullnameChanged", Q.change_fullname, fields)


async def change_contacts(request: web.Request) -> web.Response:
    return await _change(
        request, "ContactsChanged", Q.change_contacts, ("email", "phone"), lock_contacts=True
    )


async def _pool(app: web.Application):
    app[POOL] = await asyncpg.create_pool(
        sys.argv[2], min_size=2, max_size=10, init=_init, reset=_no_reset
    )
    yield
    await app[POOL].close()


def main() -> None:
    app = web.Application()
    app.cleanup_ctx.append(_pool)
    app.router.add_get("/api/v1/users/{user_id}", get_user)
    app.router.add_get("/api/v1/users", find_users)
    app.router.add_post("/api/v1/users/create_user", create_user)
    app.router.add_put("/api/v1/users/change-fullname", change_fullname)
    app.router.add_put("/api/v1/users/change-contacts", change_contacts)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
