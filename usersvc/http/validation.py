"""Reading a request into a domain command, or into the contract's ``detail`` list."""

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from marshmallow import Schema, ValidationError
from returns.result import Failure, Result, Success

from usersvc.http.schemas import ERROR_TYPES

type Detail = list[dict[str, object]]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Result[Any, Detail]:
    try:
        return Success(orjson.loads(raw))
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson refuses integers beyond 64 bits, which are still JSON: let the rules judge them.
        return Success(json.loads(raw, parse_constant=_reject_constant))
    except (ValueError, RecursionError) as error:  # nesting deeper than Python recurses
        return Failure(
            [{"loc": ["body"], "msg": f"JSON decode error: {error}", "type": "json_invalid"}]
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


async def read_body(request: web.Request, schema: Schema) -> Result[Any, Detail]:
    """The body as the schema's command. A body over the size limit raises 413 here."""
    raw = await request.read()
    return parse_json(raw).bind(lambda data: load(schema, data, "body"))
