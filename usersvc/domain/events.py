"""The events of the contract (§4): one record per event, named as on the wire.

An event's ``data`` is every field after the header; ``personal`` names the fields
that a permanent deletion erases from events still waiting in the outbox.
"""

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import ClassVar
from uuid import UUID

from attrs import field, fields, frozen

from usersvc.domain.model import SocialNetwork, UserStatus

_HEADER = frozenset({"event_id", "occurred_at", "user_id"})


@frozen
class Event:
    event_id: UUID
    occurred_at: datetime
    user_id: UUID
    # The user's version that the change produced (in ``data``): a consumer holding a
    # higher one drops the event as stale.
    version: int = field(kw_only=True)

    personal: ClassVar[frozenset[str]] = frozenset()

    @property
    def event_name(self) -> str:
        return type(self).__name__

    def data(self) -> Mapping[str, object]:
        return {name: getattr(self, name) for name in _data_fields(type(self))}


@cache
def _data_fields(kind: type[Event]) -> tuple[str, ...]:
    """The names of the fields after the header, in order: once per event type."""
    return tuple(f.name for f in fields(kind) if f.name not in _HEADER)


@frozen
class UserCreated(Event):
    firstname: str
    lastname: str
    middlename: str | None
    email: str | None
    phone: int | None
    status: UserStatus

    personal: ClassVar[frozenset[str]] = frozenset(
        {"firstname", "lastname", "middlename", "email", "phone"}
    )


@frozen
class UserRecovered(Event):
    status: UserStatus


@frozen
class UserTemporarilyDeleted(Event):
    status: UserStatus
    deleted_at: datetime


@frozen
class UserPermanentlyDeleted(Event):
    linked_account_ids: tuple[UUID, ...]


@frozen
class FullnameChanged(Event):
    firstname: str
    lastname: str
    middlename: str | None

    personal: ClassVar[frozenset[str]] = frozenset({"firstname", "lastname", "middlename"})


@frozen
class ContactsChanged(Event):
    email: str | None
    phone: int | None

    personal: ClassVar[frozenset[str]] = frozenset({"email", "phone"})


@frozen
class LinkedAccountCreated(Event):
    linked_account_id: UUID
    social_network: SocialNetwork
    connection_link: str
    connected_for: str | None
    connected_at: datetime

    personal: ClassVar[frozenset[str]] = frozenset({"connection_link", "connected_for"})


@frozen
class LinkedAccountDeleted(Event):
    linked_account_id: UUID
    social_network: SocialNetwork


@frozen
class ConnectionReasonChanged(Event):
    linked_account_id: UUID
    connected_for: str | None

    personal: ClassVar[frozenset[str]] = frozenset({"connected_for"})


EVENT_TYPES: tuple[type[Event], ...] = (
    UserCreated,
    UserRecovered,
    UserTemporarilyDeleted,
    UserPermanentlyDeleted,
    FullnameChanged,
    ContactsChanged,
    LinkedAccountCreated,
    LinkedAccountDeleted,
    ConnectionReasonChanged,
)

# Every field that any event may carry of a person, for erasure in the outbox.
PERSONAL_FIELDS: frozenset[str] = frozenset().union(*(t.personal for t in EVENT_TYPES))
