"""Request bodies and response envelopes as marshmallow schemas.

The bodies check types, build the domain's command records, and feed the OpenAPI
document (aiohttp-apigami). Only types are checked here; value rules (names,
contacts, links) are the domain's. Each field's error messages are the FastAPI
wording of the contract, and :data:`ERROR_TYPES` gives each message its contract
``type``.

The response schemas only describe: the handlers write the envelopes
(``responses.py``), and the error envelopes' ``code`` enums come from the one
failure table.
"""

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from asyncpg.pgproto import pgproto
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from usersvc.domain import commands
from usersvc.domain.model import SocialNetwork, UserStatus

MISSING = "Field required"
STRING = "Input should be a valid string"
INTEGER = "Input should be a valid integer"
UUID = "Input should be a valid UUID"
ENUM = "Input should be " + ", ".join(f"'{n.value}'" for n in SocialNetwork)
OBJECT = "Input should be a valid dictionary or object"

STATUS = "Input should be " + " or ".join(f"'{s.value}'" for s in UserStatus)
AT_LEAST_1 = "Input should be greater than or equal to 1"
AT_MOST_100 = "Input should be less than or equal to 100"
CURSOR = "Input should be a next_cursor this service gave"
ONE_LOOK_UP = (
    "Give one of: email; phone; id (repeated); social_network with connection_link; "
    "or the listing's status, limit and cursor"
)
MAX_IDS = 100
TOO_MANY_IDS = f"List should have at most {MAX_IDS} items"
ERROR_TYPES: Mapping[str, str] = {
    MISSING: "missing",
    STRING: "string_type",
    INTEGER: "int_type",
    UUID: "uuid_parsing",
    ENUM: "enum",
    OBJECT: "model_attributes_type",
    STATUS: "enum",
    AT_LEAST_1: "greater_than_equal",
    AT_MOST_100: "less_than_equal",
    CURSOR: "value_error",
    ONE_LOOK_UP: "value_error",
    TOO_MANY_IDS: "too_long",
}


def parse_uuid(text: str) -> uuid.UUID:
    """``uuid.UUID(text)``, parsed in C when ``text`` is 32 to 36 hex digits and hyphens,
    as nearly every id is: asyncpg's own UUID (a ``uuid.UUID``, the type asyncpg reads
    uuid columns as), for a tenth of the instructions. Any other form (braces,
    ``urn:uuid:``) as ``uuid.UUID`` reads it; ValueError for what it refuses.
    tests/api/test_uuid_parse.py holds the two to the same answer for any text."""
    try:
        return pgproto.UUID(text)
    except ValueError:
        return uuid.UUID(text)


class Str(fields.String):
    default_error_messages: ClassVar[dict[str, str]] = {
        "required": MISSING,
        "null": STRING,
        "invalid": STRING,
        "invalid_utf8": STRING,
    }


class Int(fields.Integer):
    """An integer only: not a float, not a numeric string, not ``true``/``false``."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "required": MISSING,
        "null": INTEGER,
        "invalid": INTEGER,
        "too_large": INTEGER,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Uuid(fields.UUID):
    default_error_messages: ClassVar[dict[str, str]] = {
        "required": MISSING,
        "null": UUID,
        "invalid_uuid": UUID,
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):  # bytes or a number never come as a UUID in JSON
            raise self.make_error("invalid_uuid")
        return super()._deserialize(value, attr, data, **kwargs)


class Network(fields.Enum):
    default_error_messages: ClassVar[dict[str, str]] = {
        "required": MISSING,
        "null": ENUM,
        "unknown": ENUM,
    }

    def __init__(self, **kwargs: Any) -> None:
        # By a string value, so the document says the enum's type.
        super().__init__(SocialNetwork, by_value=fields.String, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise self.make_error("unknown")
        return super()._deserialize(value, attr, data, **kwargs)


def _required(field: type[fields.Field], *, nullable: bool = False, **kw: Any) -> fields.Field:
    """Every key is required; a nullable one may be ``null`` (contract §3)."""
    return field(required=True, allow_none=nullable, **kw)


class Body(Schema):
    """A JSON object body; unknown keys are ignored. ``command`` is the record it builds."""

    command: ClassVar[type]

    class Meta:
        unknown = EXCLUDE

    error_messages: ClassVar[dict[str, str]] = {"type": OBJECT}

    @post_load
    def _to_command(self, data: dict[str, Any], **_: Any) -> Any:
        return self.command(**data)


# What the document says of each field; the rules themselves are the domain's.
PHONE = {
    "format": "int64",
    "description": "E.164 digits with the country code, no '+'; null: none",
    "example": 79161234567,
}
EMAIL = {"format": "email", "description": "null: none", "example": "ivan@example.com"}
NAME = {"description": "trimmed; 1..100 characters, no control characters"}
MIDDLENAME = {"description": 'as a name; null or "" (after trimming): none'}
USER_ID = {"example": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}
LINKED_ACCOUNT_ID = {"example": "6f1c1e4b-58c4-4b8e-9c43-1f0f0a9a7d21"}
LINK = {
    "description": "an http(s) link whose host is the network's (or a subdomain); "
    "https:// is added when it has no scheme; at most 2048 characters",
    "example": "https://vk.com/durov",
}
REASON = {"description": "why the account is linked; at most 500 characters", "example": "login"}


class CreateUserBody(Body):
    command = commands.CreateUser
    phone = _required(Int, nullable=True, metadata=PHONE)
    email = _required(Str, nullable=True, metadata=EMAIL)
    firstname = _required(Str, metadata=NAME | {"example": "Ivan"})
    lastname = _required(Str, metadata=NAME | {"example": "Petrov"})
    middlename = _required(Str, nullable=True, metadata=MIDDLENAME | {"example": "Sergeevich"})


class UserIdBody(Body):
    user_id = _required(Uuid, metadata=USER_ID)


class RecoverUserBody(UserIdBody):
    command = commands.RecoverUser


class DeleteUserTemporarilyBody(UserIdBody):
    command = commands.DeleteUserTemporarily


class DeleteUserPermanentlyBody(UserIdBody):
    command = commands.DeleteUserPermanently


class ChangeFullnameBody(UserIdBody):
    command = commands.ChangeFullname
    firstname = _required(Str, metadata=NAME | {"example": "Ivan"})
    lastname = _required(Str, metadata=NAME | {"example": "Sidorov"})
    middlename = _required(Str, nullable=True, metadata=MIDDLENAME | {"example": None})


class ChangeContactsBody(UserIdBody):
    """A full replacement: null clears; at least one of the two must stay set."""

    command = commands.ChangeContacts
    email = _required(Str, nullable=True, metadata=EMAIL)
    phone = _required(Int, nullable=True, metadata=PHONE)


class LinkSocialNetworkBody(UserIdBody):
    command = commands.LinkSocialNetwork
    social_network = _required(Network, metadata={"example": "vk"})
    connection_link = _required(Str, metadata=LINK)
    connected_for = _required(Str, nullable=True, metadata=REASON)


class UnlinkSocialNetworkBody(UserIdBody):
    command = commands.UnlinkSocialNetwork
    linked_account_id = _required(Uuid, metadata=LINKED_ACCOUNT_ID)


class ChangeConnectionReasonBody(UserIdBody):
    command = commands.ChangeConnectionReason
    linked_account_id = _required(Uuid, metadata=LINKED_ACCOUNT_ID)
    reason = _required(Str, nullable=True, metadata=REASON | {"example": "notifications"})


class UserPath(Schema):
    user_id = _required(Uuid, metadata=USER_ID)


class QueryInt(fields.Integer):
    """An integer written in a query string: decimal digits, nothing else."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": INTEGER, "too_large": INTEGER}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Ids(fields.List):
    """``id=…&id=…`` in a query string: 1 to 100 UUIDs, as a list without repeats in the
    order first given. One message for the whole key (``loc: ["query", "id"]``), not one
    per item."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": UUID, "too_long": TOO_MANY_IDS}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Uuid(), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[uuid.UUID]:
        values = value if isinstance(value, list) else [value]
        if len(values) > MAX_IDS:
            raise self.make_error("too_long")
        try:
            return list(dict.fromkeys(parse_uuid(v) for v in values))
        except (ValueError, TypeError, AttributeError):
            raise self.make_error("invalid") from None


# The query string's families: a request gives the keys of one of them only.
LOOK_UPS = (
    ("email",),
    ("phone",),
    ("id",),
    ("social_network", "connection_link"),
    ("status", "limit", "cursor"),  # the listing: any of them, or none at all
)


class UsersQuery(Schema):
    """``GET /users``: a look-up by one contact, by ids or by linked account, or one page
    of the listing."""

    class Meta:
        unknown = EXCLUDE

    # No "format: email": a malformed address is a look-up that finds no one.
    email = fields.String(
        metadata={
            "description": "the user with this email (case-insensitively)",
            "example": "ivan@example.com",
        }
    )
    # No "format: int64": digits beyond any phone are a look-up that finds no one.
    phone = QueryInt(
        metadata={"description": "the user with this phone (E.164 digits)", "example": 79161234567}
    )
    id = Ids(
        metadata={
            "description": f"the users of these ids (1 to {MAX_IDS}, the key repeated: "
            "`?id=…&id=…`), in the order asked, each once; an id no user has is left out",
            "minItems": 1,
            "maxItems": MAX_IDS,
        }
    )
    social_network = Network(
        metadata={"description": "with connection_link: the user who linked this account"}
    )
    connection_link = fields.String(
        metadata={
            "description": "with social_network: the account's link, compared as links are "
            "(scheme, `www.`, case of the host, query, fragment and a trailing `/` ignored)",
            "example": "https://vk.com/durov",
        }
    )
    status = fields.Enum(
        UserStatus,
        by_value=fields.String,
        error_messages={"unknown": STATUS},
        metadata={"description": "list only users of this status (default: all)"},
    )
    limit = QueryInt(
        validate=[
            validate.Range(min=1, error=AT_LEAST_1),
            validate.Range(max=100, error=AT_MOST_100),
        ],
        metadata={"description": "most users on the page, 1..100 (default 20)", "example": 20},
    )
    cursor = fields.String(
        metadata={"description": "the previous page's next_cursor (absent: the first page)"}
    )

    @validates_schema
    def _one_look_up(self, data: dict[str, Any], **_: Any) -> None:
        given = [family for family in LOOK_UPS if any(key in data for key in family)]
        if len(given) > 1:
            raise ValidationError(ONE_LOOK_UP)
        if given and given[0] == ("social_network", "connection_link"):
            missing = {key: [MISSING] for key in given[0] if key not in data}
            if missing:
                raise ValidationError(missing)


# --- Responses (described here, written by responses.py) ---------------------------------


class Out(Schema):
    """A response: the document allows keys it does not list, so a field added later
    breaks no client that validates what it reads."""

    class Meta:
        unknown = EXCLUDE


def _out(field: type[fields.Field], *, nullable: bool = False, **kw: Any) -> fields.Field:
    """A response field: always present, ``null`` only where the contract says so."""
    return field(required=True, allow_none=nullable, **kw)


class LinkedAccountSchema(Out):
    linked_account_id = _out(fields.UUID)
    social_network = _out(fields.Enum, enum=SocialNetwork, by_value=fields.String)
    connection_link = _out(fields.String, metadata={"format": "uri", **LINK})
    connected_for = _out(fields.String, nullable=True, metadata=REASON)
    connected_at = _out(fields.DateTime)


class UserSchema(Out):
    user_id = _out(fields.UUID)
    status = _out(
        fields.Enum,
        enum=UserStatus,
        by_value=fields.String,
        metadata={"description": "deleted: temporarily, until recovered"},
    )
    created_at = _out(fields.DateTime)
    deleted_at = _out(
        fields.DateTime, nullable=True, metadata={"description": "null unless deleted"}
    )
    firstname = _out(fields.String, metadata={"example": "Ivan"})
    lastname = _out(fields.String, metadata={"example": "Petrov"})
    middlename = _out(fields.String, nullable=True, metadata={"example": "Sergeevich"})
    email = _out(fields.String, nullable=True, metadata=EMAIL)
    phone = _out(fields.Integer, nullable=True, metadata=PHONE)
    linked_accounts = _out(
        fields.List,
        cls_or_instance=fields.Nested(LinkedAccountSchema),
        metadata={"description": "oldest connection first"},
    )
    version = _out(
        fields.Integer,
        validate=validate.Range(min=1),
        metadata={
            "format": "int64",
            "description": "incremented by each change; the ETag, sent back in If-Match",
            "example": 3,
        },
    )


class HealthSchema(Out):
    """What the health check knows; the relay's part only where the relay runs."""

    status = _out(fields.String, validate=validate.OneOf(["OK"]))
    database = _out(fields.String, validate=validate.OneOf(["up"]))
    broker = fields.String(validate=validate.OneOf(["connected", "disconnected"]))
    outbox_backlog = fields.Integer(
        metadata={"description": "events committed, not yet confirmed by the broker"}
    )
    relay_leader = fields.Boolean(
        metadata={"description": "this process's relay is the one publishing"}
    )
    relay_last_error = fields.String(allow_none=True)


class ProbeSchema(Out):
    """What a probe says when it succeeds (§6)."""

    status = _out(fields.String, validate=validate.OneOf(["OK"]))


def _status(status: int) -> fields.Field:
    return _out(
        fields.Integer,
        validate=validate.OneOf([status]),
        metadata={"description": "the HTTP status"},
    )


def _success(name: str, status: int, result: fields.Field) -> type[Schema]:
    return Out.from_dict({"status": _status(status), "result": result}, name=name)


# ``null`` and nothing else. OpenAPI 3.0 has no null type: a nullable enum of null alone,
# typed (generators drop a schema without a type; TypeScript's reads it as ``null``).
_NULL = fields.Raw(
    required=True,
    allow_none=True,
    metadata={"type": "string", "enum": [None], "nullable": True, "description": "always null"},
)

DONE = _success("Done", 200, _NULL)
CREATED = _success(
    "Created", 201, _out(fields.UUID, metadata={"description": "the new id", **USER_ID})
)
USER_FOUND = _success("UserFound", 200, _out(fields.Nested, nested=UserSchema))
HEALTHY = _success("Healthy", 200, _out(fields.Nested, nested=HealthSchema))
PROBE_OK = _success("ProbeOk", 200, _out(fields.Nested, nested=ProbeSchema))


class UsersPageSchema(Out):
    users = _out(
        fields.List,
        cls_or_instance=fields.Nested(UserSchema),
        metadata={"description": "a look-up: zero or one user; a listing: one page, oldest first"},
    )
    next_cursor = _out(
        fields.String,
        nullable=True,
        metadata={"description": "the cursor of the next page; null on the last page"},
    )


USERS_FOUND = _success("UsersFound", 200, _out(fields.Nested, nested=UsersPageSchema))


class ValidationIssueSchema(Out):
    loc = _out(
        fields.List,
        cls_or_instance=fields.Raw(metadata={"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        metadata={"example": ["body", "phone"], "description": "body, path or query, then keys"},
    )
    msg = _out(fields.String, metadata={"example": "Input should be a valid integer"})
    type = _out(fields.String, metadata={"example": "int_type"})


class ValidationErrorSchema(Out):
    """422 in FastAPI's shape: every problem of the request at once."""

    detail = _out(fields.List, cls_or_instance=fields.Nested(ValidationIssueSchema))
