"""Request bodies as marshmallow schemas: they check types, build the domain's
command records, and feed the OpenAPI document (aiohttp-apispec).

Only types are checked here; value rules (names, contacts, links) are the domain's.
Each field's error messages are the FastAPI wording of the contract, and
:data:`ERROR_TYPES` gives each message its contract ``type``.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, fields, post_load

from usersvc.domain import commands
from usersvc.domain.model import SocialNetwork

MISSING = "Field required"
STRING = "Input should be a valid string"
INTEGER = "Input should be a valid integer"
UUID = "Input should be a valid UUID"
ENUM = "Input should be " + ", ".join(f"'{n.value}'" for n in SocialNetwork)
OBJECT = "Input should be a valid dictionary or object"

ERROR_TYPES: Mapping[str, str] = {
    MISSING: "missing",
    STRING: "string_type",
    INTEGER: "int_type",
    UUID: "uuid_parsing",
    ENUM: "enum",
    OBJECT: "model_attributes_type",
}


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
        super().__init__(SocialNetwork, by_value=True, **kwargs)

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


class CreateUserBody(Body):
    command = commands.CreateUser
    phone = _required(Int, nullable=True, metadata={"example": 79161234567})
    email = _required(Str, nullable=True, metadata={"example": "ivan@example.com"})
    firstname = _required(Str, metadata={"example": "Ivan"})
    lastname = _required(Str, metadata={"example": "Petrov"})
    middlename = _required(Str, nullable=True, metadata={"example": "Sergeevich"})


class UserIdBody(Body):
    user_id = _required(Uuid)


class RecoverUserBody(UserIdBody):
    command = commands.RecoverUser


class DeleteUserTemporarilyBody(UserIdBody):
    command = commands.DeleteUserTemporarily


class DeleteUserPermanentlyBody(UserIdBody):
    command = commands.DeleteUserPermanently


class ChangeFullnameBody(UserIdBody):
    command = commands.ChangeFullname
    firstname = _required(Str)
    lastname = _required(Str)
    middlename = _required(Str, nullable=True)


class ChangeContactsBody(UserIdBody):
    command = commands.ChangeContacts
    email = _required(Str, nullable=True)
    phone = _required(Int, nullable=True)


class LinkSocialNetworkBody(UserIdBody):
    command = commands.LinkSocialNetwork
    social_network = _required(Network)
    connection_link = _required(Str, metadata={"example": "https://vk.com/durov"})
    connected_for = _required(Str, nullable=True)


class UnlinkSocialNetworkBody(UserIdBody):
    command = commands.UnlinkSocialNetwork
    linked_account_id = _required(Uuid)


class ChangeConnectionReasonBody(UserIdBody):
    command = commands.ChangeConnectionReason
    linked_account_id = _required(Uuid)
    reason = _required(Str, nullable=True)


class UserPath(Schema):
    user_id = _required(Uuid)
