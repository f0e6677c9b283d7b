"""Users in PostgreSQL: load, and run a command as one transaction.

A command runs as *lock the user → pure decision → write the change and its
event*. Uniqueness is the database's: a write that meets a taken contact or link
writes nothing and says so (``ON CONFLICT DO NOTHING``, or a check in the same
statement), so the server raises no error and logs no value; the unique indexes
stay the final word, and a violation they still raise (a writer that is not this
service, racing) becomes the same 409 through :data:`CONFLICTS`.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from attrs import frozen
from returns.result import Failure, Success

from usersvc.db import idempotency
from usersvc.db.idempotency import (
    Fresh,
    IdempotencyKey,
    InProgress,
    KeyReused,
    Once,
    Replayed,
    StoredResponse,
)
from usersvc.db.queries import Queries
from usersvc.domain import commands, events
from usersvc.domain.commands import Change, Decision, Stamp
from usersvc.domain.failures import DomainFailure, LinkedAccountAlreadyExists, UserAlreadyExists
from usersvc.domain.model import (
    ConnectionLink,
    Contacts,
    Fullname,
    LinkedAccount,
    SocialNetwork,
    User,
    UserStatus,
)
from usersvc.domain.values import parse_contacts
from usersvc.telemetry import metrics
from usersvc.telemetry.tracing import child_span, sql_span

type UserCommand = (
    commands.RecoverUser
    | commands.DeleteUserTemporarily
    | commands.DeleteUserPermanently
    | commands.ChangeFullname
    | commands.ChangeContacts
    | commands.LinkSocialNetwork
    | commands.UnlinkSocialNetwork
    | commands.ChangeConnectionReason
)
type Command = commands.CreateUser | UserCommand
# A user as sql/users.sql's reads answer it (columns named as the contract names the
# user's fields): what a read presents, with no domain record made.
type Row = Mapping[str, Any]

# Each command on an existing user and the pure function that decides it.
DECIDE: Mapping[type, Callable[[User | None, UserCommand, Stamp], Decision]] = {
    commands.RecoverUser: commands.recover_user,
    commands.DeleteUserTemporarily: commands.delete_user_temporarily,
    commands.DeleteUserPermanently: commands.delete_user_permanently,
    commands.ChangeFullname: commands.change_fullname,
    commands.ChangeContacts: commands.change_contacts,
    commands.LinkSocialNetwork: commands.link_social_network,
    commands.UnlinkSocialNetwork: commands.unlink_social_network,
    commands.ChangeConnectionReason: commands.change_connection_reason,
}

# Unique constraints (migrations/) and the failure each one means.
CONFLICTS: Mapping[str, DomainFailure] = {
    "users_email_key": UserAlreadyExists("email"),
    "users_phone_key": UserAlreadyExists("phone"),
    "linked_accounts_one_per_network": LinkedAccountAlreadyExists(
        "the user already has an account of this social network linked"
    ),
    "linked_accounts_link_key_key": LinkedAccountAlreadyExists(
        "this link is linked to a user already"
    ),
}


EMAIL_TAKEN = CONFLICTS["users_email_key"]
PHONE_TAKEN = CONFLICTS["users_phone_key"]
NETWORK_TAKEN = CONFLICTS["linked_accounts_one_per_network"]
LINK_TAKEN = CONFLICTS["linked_accounts_link_key_key"]

# A transaction that PostgreSQL aborted for its own reasons runs again, this often.
TRANSACTION_ATTEMPTS = 3
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
RETRY_REASONS = {
    asyncpg.DeadlockDetectedError: "deadlock",
    asyncpg.SerializationError: "serialization",
}
# Every reason exported from the start, at 0: a labelled counter that never counted is not
# in /metrics at all, and the dashboard's retries panel would read "No data" instead of 0.
for _reason in RETRY_REASONS.values():
    metrics.DB_TRANSACTION_RETRIES.labels(_reason)


def _linked_account(row: asyncpg.Record) -> LinkedAccount:
    return LinkedAccount(
        linked_account_id=row["linked_account_id"],
        social_network=SocialNetwork(row["social_network"]),
        connection_link=ConnectionLink(url=row["connection_link"], key=row["link_key"]),
        connected_for=row["connected_for"],
        connected_at=row["connected_at"],
    )


class _ClaimTimeoutError(Exception):
    """The first request with the key still held it when the claim's wait ended."""


def _conflict(error: asyncpg.UniqueViolationError) -> Decision:
    """The contract's 409 for a unique constraint; any other violation is a bug."""
    conflict = CONFLICTS.get(error.constraint_name or "")
    if conflict is None:
        raise error
    return Failure(conflict)


_STATUSES = {status.value: status for status in UserStatus}  # a dict look-up, not Enum()


def _user(row: asyncpg.Record) -> User:
    accounts = row["linked_accounts"]
    return User(
        user_id=row["user_id"],
        fullname=Fullname(row["firstname"], row["lastname"], row["middlename"]),
        contacts=Contacts(row["email"], row["phone"]),
        status=_STATUSES[row["status"]],
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
        linked_accounts=tuple(map(_linked_account, accounts)) if accounts else (),
        version=row["version"],
    )


async def _execute(
    connection: asyncpg.Connection, queries: Queries, name: str, *args: object
) -> None:
    """Run the named statement of ``sql/*.sql`` in its own span."""
    with sql_span(name):
        await connection.execute(queries[name], *args)


@frozen
class Origin:
    """Where a command comes from, for its event: the request's trace context (message
    headers) and who asked (the actor of §5, the caller's client id; None: unknown)."""

    headers: Mapping[str, str]
    actor: str | None


# Before every user: the first page of a listing starts after it.
FIRST_POSITION = (datetime.min.replace(tzinfo=UTC), UUID(int=0))
# The most users a listing query returns: its own inner LIMIT (sql/users.sql), which
# keeps its generic plan cheap. The largest page the API serves (100) and one more.
LISTING_BOUND = 101
# The listing of all users or of one status: one query each (see list_active_users).
LISTINGS = {
    None: "list_users",
    UserStatus.ACTIVE: "list_active_users",
    UserStatus.DELETED: "list_deleted_users",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Users:
    """The users table and its neighbours, seen through the domain's records."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        *,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._pool = pool
        self._q = queries
        self._clock = clock
        self._new_id = new_id

    def _connection(self) -> Any:
        """A pool connection (the pool measures the wait for it and its state)."""
        return self._pool.acquire()

    async def ping(self) -> None:
        """Raises when the database does not answer within a second or two."""
        async with self._connection() as connection:
            with sql_span("ping"):
                await connection.fetchval(self._q.ping, timeout=2)

    async def get_row(self, user_id: UUID) -> Row | None:
        """The user's row, its columns named as the contract names the user's fields: for
        a read, which decides nothing and needs no domain record."""
        async with self._connection() as connection:
            with sql_span("load_user"):
                return await connection.fetchrow(self._q.load_user, user_id)

    async def get_rows(self, user_ids: Sequence[UUID]) -> list[Row]:
        """The rows of the users of these ids, in the order listed; an id no user has is
        left out. List each id once."""
        return await self._fetch("load_users", user_ids)

    async def find_by_email(self, email: str) -> list[Row]:
        """Zero or one user: emails are unique case-insensitively."""
        return await self._fetch("find_user_by_email", email)

    async def find_by_phone(self, phone: int) -> list[Row]:
        return await self._fetch("find_user_by_phone", phone)

    async def find_by_linked_account(
        self, network: SocialNetwork, link: ConnectionLink
    ) -> list[Row]:
        """Zero or one user: a link (by its key) is linked to one user at most."""
        return await self._fetch("find_user_by_linked_account", network.value, link.key)

    async def page(
        self, status: UserStatus | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Row]:
        """At most ``limit`` users after the position ``after`` (None: from the first) in
        (created_at, user_id) order, of one status or all."""
        if limit > LISTING_BOUND:
            raise ValueError(f"a listing query returns at most {LISTING_BOUND} users")
        created_at, user_id = after if after is not None else FIRST_POSITION
        return await self._fetch(LISTINGS[status], created_at, user_id, limit)

    async def _fetch(self, name: str, *args: object) -> list[Row]:
        async with self._connection() as connection:
            with sql_span(name):
                return await connection.fetch(self._q[name], *args)

    async def execute(
        self,
        command: Command,
        headers: Mapping[str, str] | None = None,
        *,
        actor: str | None = None,
    ) -> Decision:
        """Decide the command on the locked user and commit the change with its event,
        which carries ``headers`` (the request's trace context) and ``actor`` (who asked).

        Two commands that wait on each other's unique-index entries (two users
        swapping contacts) can deadlock; PostgreSQL aborts one, which runs again
        and then meets the other's committed row as the 409 it is.
        """
        stamp = Stamp(now=self._clock(), event_id=self._new_id(), new_id=self._new_id())
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._execute(command, stamp, Origin(headers or {}, actor))
            except RETRYABLE as error:
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                metrics.DB_TRANSACTION_RETRIES.labels(RETRY_REASONS[type(error)]).inc()
        raise AssertionError("unreachable")

    async def execute_once(
        self,
        command: Command,
        headers: Mapping[str, str] | None,
        key: IdempotencyKey,
        render: Callable[[Decision], StoredResponse],
        *,
        actor: str | None = None,
    ) -> Once:
        """:meth:`execute` at most once per key: claim the key, decide, write, and store
        the response ``render`` makes of the decision, all in one transaction.

        A repeat of a committed request gets its stored response (also a domain
        failure's); a repeat while the first runs waits for it, at most
        :data:`~usersvc.db.idempotency.CLAIM_WAIT`. A request that raised rolled
        back its claim too, so its retry runs anew.
        """
        stamp = Stamp(now=self._clock(), event_id=self._new_id(), new_id=self._new_id())
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                return await self._execute_once(
                    command, stamp, Origin(headers or {}, actor), key, render
                )
            except RETRYABLE as error:
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                metrics.DB_TRANSACTION_RETRIES.labels(RETRY_REASONS[type(error)]).inc()
        raise AssertionError("unreachable")

    async def _execute(self, command: Command, stamp: Stamp, origin: Origin) -> Decision:
        try:
            if isinstance(command, commands.CreateUser):
                # No user to lock, and the write is one statement, atomic on its own:
                # no transaction block, so one round trip to PostgreSQL.
                with child_span("decide"):
                    decision = commands.create_user(command, stamp)
                if isinstance(decision, Success):
                    async with self._connection() as connection:
                        taken = await self._write(connection, decision.unwrap(), origin)
                    if taken is not None:
                        return Failure(taken)
                return decision
            async with self._connection() as connection, connection.transaction():
                decision = await self._decide(connection, command, stamp)
                match decision:
                    case Success(change):
                        # A taken contact or link wrote nothing: the commit is empty.
                        taken = await self._write(connection, change, origin)
                        if taken is not None:
                            decision = Failure(taken)
        except asyncpg.UniqueViolationError as error:
            return _conflict(error)
        return decision

    async def _decide(
        self, connection: asyncpg.Connection, command: UserCommand, stamp: Stamp
    ) -> Decision:
        """The pure decision on the user, locked until the transaction ends (with the
        contacts a change of contacts asks for: see ``lock_user_and_contacts``)."""
        if isinstance(command, commands.ChangeContacts):
            # Locked as the decision will write them; invalid ones lock nothing (the
            # decision refuses them).
            contacts = parse_contacts(command.email, command.phone).value_or(None)
            email, phone = (None, None) if contacts is None else (contacts.email, contacts.phone)
            with sql_span("lock_user_and_contacts"):
                row = await connection.fetchrow(
                    self._q.lock_user_and_contacts, command.user_id, email, phone
                )
        else:
            with sql_span("lock_user"):
                row = await connection.fetchrow(self._q.lock_user, command.user_id)
        user = None if row is None else _user(row)
        with child_span("decide"):
            return DECIDE[type(command)](user, command, stamp)

    async def _execute_once(
        self,
        command: Command,
        stamp: Stamp,
        origin: Origin,
        key: IdempotencyKey,
        render: Callable[[Decision], StoredResponse],
    ) -> Once:
        q = self._q
        try:
            async with self._connection() as connection, connection.transaction():
                if not await self._claim(connection, key):
                    with sql_span("idempotent_response"):
                        row = await connection.fetchrow(
                            q.idempotent_response, key.endpoint, key.key
                        )
                    if row["request_hash"] != key.request_hash:
                        return KeyReused()
                    # Stored in the transaction that claimed the key: never without.
                    assert row["status"] is not None
                    return Replayed(StoredResponse(row["status"], row["body"], row["etag"]))
                if isinstance(command, commands.CreateUser):
                    with child_span("decide"):
                        decision = commands.create_user(command, stamp)
                else:
                    decision = await self._decide(connection, command, stamp)
                if isinstance(decision, Success):
                    try:
                        # A savepoint: a unique violation (a race with a writer that is
                        # not the service) undoes the write alone, and its 409 is stored
                        # with the key like any other answer.
                        async with connection.transaction():
                            taken = await self._write(connection, decision.unwrap(), origin)
                        if taken is not None:
                            decision = Failure(taken)
                    except asyncpg.UniqueViolationError as error:
                        decision = _conflict(error)
                response = render(decision)
                with sql_span("store_idempotent_response"):
                    await connection.execute(
                        q.store_idempotent_response,
                        key.endpoint,
                        key.key,
                        response.status,
                        response.body,
                        response.etag,
                    )
                return Fresh(decision, response)
        except _ClaimTimeoutError:
            return InProgress()

    async def _claim(self, connection: asyncpg.Connection, key: IdempotencyKey) -> bool:
        """True: the key is this request's (new, or expired). False: it is live, and
        its request has committed. Raises :class:`_ClaimTimeoutError` when that request
        is still running after the wait; the transaction must then roll back."""
        q = self._q
        await connection.execute(q.bound_lock_waits, idempotency.CLAIM_WAIT)
        try:
            with sql_span("claim_idempotency_key"):
                claimed = await connection.fetchval(
                    q.claim_idempotency_key, key.endpoint, key.key, key.request_hash
                )
        except asyncpg.LockNotAvailableError:
            raise _ClaimTimeoutError from None
        # The command's own locks wait as long as any command's.
        await connection.execute(q.unbound_lock_waits)
        return bool(claimed)

    async def _write(
        self, connection: asyncpg.Connection, change: Change, origin: Origin
    ) -> DomainFailure | None:
        """The change and its event, in one statement of sql/commands.sql (one round trip);
        each of those takes the event's columns first, then the change's own.

        A contact or link another user holds: nothing written, and the failure it means
        (one more round trip, only then, to learn which is taken)."""
        q, event, user = self._q, change.event, change.user
        written = (
            event.event_id,
            event.event_name,
            event.user_id,
            event.occurred_at,
            event.data(),
            dict(origin.headers),
            origin.actor,
        )
        match event:
            case events.UserCreated():
                assert user is not None
                return await self._create_user(connection, written, user)
            case events.UserRecovered() | events.UserTemporarilyDeleted():
                assert user is not None
                await _execute(
                    connection,
                    q,
                    "change_status",
                    *written,
                    user.status.value,
                    user.deleted_at,
                    user.version,
                )
            case events.UserPermanentlyDeleted():
                # Rare, and three statements read better than one: the row goes, the
                # personal data of its waiting events goes, then the event is written.
                await _execute(connection, q, "delete_user", event.user_id)
                await _execute(
                    connection,
                    q,
                    "erase_personal_data",
                    event.user_id,
                    sorted(events.PERSONAL_FIELDS),
                )
                await _execute(connection, q, "insert_event", *written)
            case events.FullnameChanged():
                await _execute(
                    connection,
                    q,
                    "change_fullname",
                    *written,
                    event.firstname,
                    event.lastname,
                    event.middlename,
                    event.version,
                )
            case events.ContactsChanged():
                with sql_span("change_contacts"):
                    taken = await connection.fetchrow(
                        q.change_contacts, *written, event.email, event.phone, event.version
                    )
                return EMAIL_TAKEN if taken["email"] else PHONE_TAKEN if taken["phone"] else None
            case events.LinkedAccountCreated():
                assert user is not None
                account = user.linked_account(event.linked_account_id)
                assert account is not None
                return await self._link_account(connection, written, account, event.version)
            case events.LinkedAccountDeleted():
                await _execute(
                    connection,
                    q,
                    "unlink_account",
                    *written,
                    event.linked_account_id,
                    event.version,
                )
            case events.ConnectionReasonChanged():
                await _execute(
                    connection,
                    q,
                    "change_connected_for",
                    *written,
                    event.linked_account_id,
                    event.connected_for,
                    event.version,
                )
            case _:
                raise TypeError(f"no write for {event.event_name}")
        return None

    async def _create_user(
        self, connection: asyncpg.Connection, written: tuple[object, ...], user: User
    ) -> DomainFailure | None:
        """create_user; when it inserted nothing, which contact is taken. A holder
        deleted for good between the two leaves nothing taken: the create runs again."""
        q, email, phone = self._q, user.contacts.email, user.contacts.phone
        for _ in range(TRANSACTION_ATTEMPTS):
            with sql_span("create_user"):
                inserted = await connection.fetchval(
                    q.create_user,
                    *written,
                    user.fullname.firstname,
                    user.fullname.lastname,
                    user.fullname.middlename,
                    email,
                    phone,
                    user.status.value,
                    user.created_at,
                    user.version,
                )
            if inserted:
                return None
            with sql_span("taken_contacts"):
                taken = await connection.fetchrow(q.taken_contacts, email, phone)
            if taken["email"] or taken["phone"]:
                return EMAIL_TAKEN if taken["email"] else PHONE_TAKEN
        raise RuntimeError(
            "create_user inserted nothing, yet no contact is taken: a unique index"
            " the service does not know of?"
        )

    async def _link_account(
        self,
        connection: asyncpg.Connection,
        written: tuple[object, ...],
        account: LinkedAccount,
        version: int,
    ) -> DomainFailure | None:
        """link_account; when it inserted nothing, what is taken (as _create_user)."""
        q, user_id = self._q, written[2]
        network, key = account.social_network.value, account.connection_link.key
        for _ in range(TRANSACTION_ATTEMPTS):
            with sql_span("link_account"):
                inserted = await connection.fetchval(
                    q.link_account,
                    *written,
                    account.linked_account_id,
                    network,
                    account.connection_link.url,
                    key,
                    account.connected_for,
                    account.connected_at,
                    version,
                )
            if inserted:
                return None
            with sql_span("taken_link"):
                taken = await connection.fetchrow(q.taken_link, user_id, network, key)
            if taken["network"] or taken["link"]:
                return NETWORK_TAKEN if taken["network"] else LINK_TAKEN
        raise RuntimeError("link_account inserted nothing, yet nothing is taken")
