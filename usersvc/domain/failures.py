"""Every way a command can fail, as values: one type per contract ``code``."""

from uuid import UUID

from attrs import frozen


@frozen
class UserNotFound:
    user_id: UUID


@frozen
class UserAlreadyActive:
    user_id: UUID


@frozen
class UserAlreadyDeleted:
    user_id: UUID


@frozen
class UserDeleted:
    user_id: UUID


@frozen
class UserAlreadyExists:
    """Another user holds the email or the phone."""

    field: str


@frozen
class InvalidContacts:
    reason: str


@frozen
class InvalidFullname:
    reason: str


@frozen
class LinkNotOfSocialNetwork:
    reason: str


@frozen
class InvalidConnectionReason:
    reason: str


@frozen
class LinkedAccountAlreadyExists:
    reason: str


@frozen
class LinkedAccountNotFound:
    linked_account_id: UUID


@frozen
class PreconditionFailed:
    """The command's ``If-Match`` names none of the user's current version."""

    user_id: UUID
    version: int


type DomainFailure = (
    UserNotFound
    | UserAlreadyActive
    | UserAlreadyDeleted
    | UserDeleted
    | UserAlreadyExists
    | InvalidContacts
    | InvalidFullname
    | LinkNotOfSocialNetwork
    | InvalidConnectionReason
    | LinkedAccountAlreadyExists
    | LinkedAccountNotFound
    | PreconditionFailed
)
