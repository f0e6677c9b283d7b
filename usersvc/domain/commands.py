"""One pure function per command: current state + command → ``Result`` of a change.

The shell loads the user (locked), calls the function and writes the change and
its event in one transaction. ``None`` for a user means it does not exist.
"""

from datetime import datetime
from uuid import UUID

from attrs import evolve, field, frozen
from returns.result import Failure, Result, Success

from usersvc.domain import events
from usersvc.domain.failures import (
    DomainFailure,
    LinkedAccountAlreadyExists,
    LinkedAccountNotFound,
    PreconditionFailed,
    UserAlreadyActive,
    UserAlreadyDeleted,
    UserDeleted,
    UserNotFound,
)
from usersvc.domain.model import LinkedAccount, SocialNetwork, User, UserStatus
from usersvc.domain.values import (
    parse_connected_for,
    parse_connection_link,
    parse_contacts,
    parse_fullname,
)


@frozen
class Stamp:
    """What a command may not make itself: the time, the event's id and a new record's id."""

    now: datetime
    event_id: UUID
    new_id: UUID


@frozen
class Change:
    """The user after the command (``None`` once deleted permanently) and its one event."""

    user: User | None
    event: events.Event


# The versions an ``If-Match`` accepts; None: no condition (no header, or ``*``). An
# empty set is a header that names no version (weak or malformed): it never matches.
type IfMatch = frozenset[int] | None


# --- commands: raw input, as the request carried it (types checked, values not) ---


@frozen
class CreateUser:
    firstname: str
    lastname: str
    middlename: str | None
    email: str | None
    phone: int | None


@frozen
class RecoverUser:
    user_id: UUID
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class DeleteUserTemporarily:
    user_id: UUID
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class DeleteUserPermanently:
    user_id: UUID
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class ChangeFullname:
    user_id: UUID
    firstname: str
    lastname: str
    middlename: str | None
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class ChangeContacts:
    user_id: UUID
    email: str | None
    phone: int | None
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class LinkSocialNetwork:
    user_id: UUID
    social_network: SocialNetwork
    connection_link: str
    connected_for: str | None
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class UnlinkSocialNetwork:
    user_id: UUID
    linked_account_id: UUID
    if_match: IfMatch = field(default=None, kw_only=True)


@frozen
class ChangeConnectionReason:
    user_id: UUID
    linked_account_id: UUID
    reason: str | None
    if_match: IfMatch = field(default=None, kw_only=True)


type Decision = Result[Change, DomainFailure]
type UserCommand = (
    RecoverUser
    | DeleteUserTemporarily
    | DeleteUserPermanently
    | ChangeFullname
    | ChangeContacts
    | LinkSocialNetwork
    | UnlinkSocialNetwork
    | ChangeConnectionReason
)


# --- guards, in the contract's order: exists (404) → If-Match (412) → status (400) ---


def existing(user: User | None, user_id: UUID) -> Result[User, DomainFailure]:
    return Failure(UserNotFound(user_id)) if user is None else Success(user)


def current(user: User | None, command: UserCommand) -> Result[User, DomainFailure]:
    """The user, if the command's ``If-Match`` names the version it has now. Decided on
    the locked row, so two clients that read the same version cannot both win."""

    def matches(found: User) -> Result[User, DomainFailure]:
        if command.if_match is None or found.version in command.if_match:
            return Success(found)
        return Failure(PreconditionFailed(found.user_id, found.version))

    return existing(user, command.user_id).bind(matches)


def active(user: User | None, command: UserCommand) -> Result[User, DomainFailure]:
    return current(user, command).bind(
        lambda found: (
            Success(found)
            if found.status is UserStatus.ACTIVE
            else Failure(UserDeleted(found.user_id))
        )
    )


def _next(user: User, **changes: object) -> User:
    """The user after a change: every change increments the version."""
    return evolve(user, version=user.version + 1, **changes)


def _linked_account(user: User, linked_account_id: UUID) -> Result[LinkedAccount, DomainFailure]:
    account = user.linked_account(linked_account_id)
    if account is None:
        return Failure(LinkedAccountNotFound(linked_account_id))
    return Success(account)


# --- the commands ---


def create_user(command: CreateUser, stamp: Stamp) -> Decision:
    return Result.do(
        Change(
            user,
            events.UserCreated(
                stamp.event_id,
                stamp.now,
                user.user_id,
                firstname=fullname.firstname,
                lastname=fullname.lastname,
                middlename=fullname.middlename,
                email=contacts.email,
                phone=contacts.phone,
                status=user.status,
                version=user.version,
            ),
        )
        for fullname in parse_fullname(command.firstname, command.lastname, command.middlename)
        for contacts in parse_contacts(command.email, command.phone)
        for user in [
            User(
                user_id=stamp.new_id,
                fullname=fullname,
                contacts=contacts,
                status=UserStatus.ACTIVE,
                created_at=stamp.now,
                deleted_at=None,
                linked_accounts=(),
            )
        ]
    )


def recover_user(user: User | None, command: RecoverUser, stamp: Stamp) -> Decision:
    def recover(found: User) -> Decision:
        if found.status is UserStatus.ACTIVE:
            return Failure(UserAlreadyActive(found.user_id))
        recovered = _next(found, status=UserStatus.ACTIVE, deleted_at=None)
        return Success(
            Change(
                recovered,
                events.UserRecovered(
                    stamp.event_id,
                    stamp.now,
                    found.user_id,
                    recovered.status,
                    version=recovered.version,
                ),
            )
        )

    return current(user, command).bind(recover)


def delete_user_temporarily(
    user: User | None, command: DeleteUserTemporarily, stamp: Stamp
) -> Decision:
    def delete(found: User) -> Decision:
        if found.status is UserStatus.DELETED:
            return Failure(UserAlreadyDeleted(found.user_id))
        deleted = _next(found, status=UserStatus.DELETED, deleted_at=stamp.now)
        return Success(
            Change(
                deleted,
                events.UserTemporarilyDeleted(
                    stamp.event_id,
                    stamp.now,
                    found.user_id,
                    deleted.status,
                    stamp.now,
                    version=deleted.version,
                ),
            )
        )

    return current(user, command).bind(delete)


def delete_user_permanently(
    user: User | None, command: DeleteUserPermanently, stamp: Stamp
) -> Decision:
    """Any status may be deleted permanently; the event carries no personal data."""
    return current(user, command).map(
        lambda found: Change(
            None,
            events.UserPermanentlyDeleted(
                stamp.event_id,
                stamp.now,
                found.user_id,
                tuple(a.linked_account_id for a in found.linked_accounts),
                version=found.version + 1,
            ),
        )
    )


def change_fullname(user: User | None, command: ChangeFullname, stamp: Stamp) -> Decision:
    return Result.do(
        Change(
            _next(found, fullname=fullname),
            events.FullnameChanged(
                stamp.event_id,
                stamp.now,
                found.user_id,
                fullname.firstname,
                fullname.lastname,
                fullname.middlename,
                version=found.version + 1,
            ),
        )
        for found in active(user, command)
        for fullname in parse_fullname(command.firstname, command.lastname, command.middlename)
    )


def change_contacts(user: User | None, command: ChangeContacts, stamp: Stamp) -> Decision:
    """A full replacement: ``None`` clears. Uniqueness against other users is the database's."""
    return Result.do(
        Change(
            _next(found, contacts=contacts),
            events.ContactsChanged(
                stamp.event_id,
                stamp.now,
                found.user_id,
                contacts.email,
                contacts.phone,
                version=found.version + 1,
            ),
        )
        for found in active(user, command)
        for contacts in parse_contacts(command.email, command.phone)
    )


def link_social_network(user: User | None, command: LinkSocialNetwork, stamp: Stamp) -> Decision:
    """At most one account per network per user; a link held by another user is the database's."""

    def link(found: User) -> Decision:
        return Result.do(
            Change(
                _next(found, linked_accounts=(*found.linked_accounts, account)),
                events.LinkedAccountCreated(
                    stamp.event_id,
                    stamp.now,
                    found.user_id,
                    account.linked_account_id,
                    account.social_network,
                    account.connection_link.url,
                    account.connected_for,
                    account.connected_at,
                    version=found.version + 1,
                ),
            )
            for connection_link in parse_connection_link(
                command.social_network, command.connection_link
            )
            for connected_for in parse_connected_for(command.connected_for)
            for _ in _network_free(found, command.social_network)
            for account in [
                LinkedAccount(
                    linked_account_id=stamp.new_id,
                    social_network=command.social_network,
                    connection_link=connection_link,
                    connected_for=connected_for,
                    connected_at=stamp.now,
                )
            ]
        )

    return active(user, command).bind(link)


def _network_free(user: User, network: SocialNetwork) -> Result[None, DomainFailure]:
    if any(a.social_network is network for a in user.linked_accounts):
        return Failure(
            LinkedAccountAlreadyExists(f"the user already has a {network.value} account linked")
        )
    return Success(None)


def unlink_social_network(
    user: User | None, command: UnlinkSocialNetwork, stamp: Stamp
) -> Decision:
    return Result.do(
        Change(
            _next(
                found,
                linked_accounts=tuple(
                    a
                    for a in found.linked_accounts
                    if a.linked_account_id != account.linked_account_id
                ),
            ),
            events.LinkedAccountDeleted(
                stamp.event_id,
                stamp.now,
                found.user_id,
                account.linked_account_id,
                account.social_network,
                version=found.version + 1,
            ),
        )
        for found in active(user, command)
        for account in _linked_account(found, command.linked_account_id)
    )


def change_connection_reason(
    user: User | None, command: ChangeConnectionReason, stamp: Stamp
) -> Decision:
    return Result.do(
        Change(
            _next(found.replace_linked_account(evolve(account, connected_for=connected_for))),
            events.ConnectionReasonChanged(
                stamp.event_id,
                stamp.now,
                found.user_id,
                account.linked_account_id,
                connected_for,
                version=found.version + 1,
            ),
        )
        for found in active(user, command)
        for account in _linked_account(found, command.linked_account_id)
        for connected_for in parse_connected_for(command.reason)
    )
