"""Reading a request into a domain command, or into the contract's ``detail`` list."""

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from marshmallow import Schema, ValidationError
from returns.result import Failure, Result, Success

from usersvc.http.schemas import ERROR_TYPES, Body, Int, Network, Str, Uuid, parse_uuid

type Detail = list[dict[str, object]]


# A client that sends its body slower than this is cut off (408), so one slow
# client cannot hold a connection and a handler for long.
BODY_READ_TIMEOUT = 10.0


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class DuplicateKeyError(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: a repeated key is ambiguous, refused."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DuplicateKeyError(f"the key {repeated!r} is repeated")
    return found


def parse_json(raw: bytes) -> Result[Any, Detail]:
    """Strict JSON in UTF-8: no NaN or Infinity, no repeated keys; integers of any size
    (the rules judge them). A flat object (a command's body) is read by orjson when
    that is sure to give what the standard library's scanner would; anything else, by
    that scanner (``tests/api/test_plain_bodies.py`` holds the two together)."""
    flat = _flat_object(raw)
    return Success(flat) if flat is not None else strict_json(raw)


_SCALARS = (int, bool, type(None))


def _flat_object(raw: bytes) -> dict[str, Any] | None:
    """The object, if ``raw`` is one whose values are strings, integers, booleans or
    null and whose keys are all different; None when not sure (then the strict
    scanner reads it).

    orjson keeps the last of repeated keys, and writes an integer beyond 64 bits as a
    float: floats are left to the scanner. Each string in the raw text, keys
    included, puts two quotes there, and an escaped quote one more: when the raw text
    holds just as many as the object's own keys and strings need, no key was repeated.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    quotes = 2 * len(value)
    for item in value.values():
        kind = type(item)
        if kind is str:
            quotes += 2
        elif kind not in _SCALARS:
            return None
    return value if raw.count(b'"') == quotes else None


def strict_json(raw: bytes) -> Result[Any, Detail]:
    """Any JSON, by one pass of the standard library's C scanner."""
    try:
        return Success(
            json.loads(
                raw.decode("utf-8"), object_pairs_hook=_object, parse_constant=_reject_constant
            )
        )
    except (ValueError, RecursionError) as error:  # nesting deeper than Python recurses
        return Failure(
            [{"loc": ["body"], "msg": f"JSON decode error: {error}", "type": "json_invalid"}]
        )


def is_json(content_type: str | None) -> bool:
    """``application/json``, any ``application/*+json``, or no Content-Type at all."""
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def details(messages: Mapping[str, Any], where: str) -> Detail:
    """marshmallow's ``{field: [message]}`` as FastAPI's ``[{loc, msg, type}]``."""
    found: Detail = []
    for field, field_messages in messages.items():
        loc = [where] if field == "_schema" else [where, field]
        listed = field_messages if isinstance(field_messages, list) else [str(field_messages)]
        found.extend(
            {"loc": loc, "msg": msg, "type": ERROR_TYPES.get(msg, "value_error")} for msg in listed
        )
    return found


def load(schema: Schema, data: Any, where: str) -> Result[Any, Detail]:
    try:
        return Success(schema.load(data))
    except ValidationError as error:
        messages = error.messages
        if not isinstance(messages, dict):
            messages = {"_schema": messages}
        return Failure(details(messages, where))


type PlainLoader = Callable[[Any], Any]

# A field's kind for the plain loader: what its value must be to need no judging.
_STR, _INT, _UUID, _NETWORK = range(4)
_KINDS = ((Str, _STR), (Int, _INT), (Uuid, _UUID), (Network, _NETWORK))


def plain_loader(schema: Body) -> PlainLoader:
    """A function that makes the schema's command from a body in which every field holds
    a value of exactly its type (or null where it may), as the schema's load would, and
    returns None for any other body: the schema judges and words those.

    The schema's load was the largest part of a command's own time before the database;
    this one goes through the fields once. ``tests/api/test_plain_bodies.py`` holds it
    to the schema for every body."""
    plan: list[tuple[str, int, bool]] = []
    for name, field in schema.fields.items():
        kind = next((k for cls, k in _KINDS if isinstance(field, cls)), None)
        plain = kind is not None and not field.validators and field.data_key is None
        if not plain or field.attribute is not None:
            return lambda _: None  # a field it does not know: the schema, always
        plan.append((name, kind, field.allow_none))
    network = Network().enum
    make = schema.command
    fields = tuple(plan)

    def load_plain(data: Any) -> Any:
        if type(data) is not dict:
            return None
        values: dict[str, Any] = {}
        for name, kind, nullable in fields:
            if name not in data:
                return None
            value = data[name]
            if value is None:
                if not nullable:
                    return None
            elif kind == _STR:
                if type(value) is not str:
                    return None
            elif kind == _INT:
                if type(value) is not int:
                    return None
            elif kind == _UUID:
                if type(value) is not str:
                    return None
                try:
                    value = parse_uuid(value)
                except ValueError:
                    return None
            else:  # a network, by its value
                if type(value) is not str:
                    return None
                try:
                    value = network(value)
                except ValueError:
                    return None
            values[name] = value
        return make(**values)

    return load_plain


_plain: dict[Body, PlainLoader] = {}


def load_body(schema: Body, data: Any) -> Result[Any, Detail]:
    """The body's command: made directly when every field is plainly valid, else by the
    schema (with its wording of each error)."""
    plain = _plain.get(schema)
    if plain is None:
        plain = _plain[schema] = plain_loader(schema)
    command = plain(data)
    return load(schema, data, "body") if command is None else Success(command)


async def read_body(request: web.Request, schema: Body) -> Result[Any, Detail]:
    """The body as the schema's command. A body that is not JSON raises 415 before it
    is read, one over the size limit 413, one that comes too slowly 408."""
    if not is_json(request.headers.get("Content-Type")):
        raise web.HTTPUnsupportedMediaType
    return parse_json(await read_in_time(request)).bind(lambda data: load_body(schema, data))


async def read_in_time(request: web.Request) -> bytes:
    """The whole body (read once: aiohttp keeps it), within the size limit (413) and
    :data:`BODY_READ_TIMEOUT` (408). The middleware reads it before the request takes
    a turn, so a client sending its body slowly holds no turn while it does."""
    if request.content.is_eof():
        # All of it has arrived (a small body comes with the headers): nothing to wait
        # for, so no timer to set and cancel.
        return await request.read()
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(headers={"Connection": "close"}) from None
