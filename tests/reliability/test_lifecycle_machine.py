"""The lifecycle rules hold for any sequence of commands: a hypothesis state machine
drives the real HTTP API (served on a real socket, over a real database) against a
plain model, and checks after every step that GET equals the model, that no two
users share a normalised email, phone or link, that a permanently deleted id is
never readable again, and that the outbox holds exactly one event per successful
command and none for failed ones."""

import http.client
import json
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.api.support import API, COMMANDS, MISSING_USER
from tests.reliability.threaded import Service

NAMES = st.sampled_from(["Ivan", "Petr", "Anna", " Olga "])
MIDDLENAMES = st.sampled_from([None, "Sergeevich", "", "  "])
# Emails and phones drawn from small pools, so that conflicts happen often.
EMAILS = st.sampled_from([None, "a@example.com", "A@EXAMPLE.COM", "b@example.com", "c@x.org"])
PHONES = st.sampled_from([None, 79161234567, 79169876543, 12025550123])
# (network, link as sent, as shown, the link's key)
LINKS = st.sampled_from(
    [
        ("vk", "https://vk.com/a", "https://vk.com/a", "vk.com/a"),
        ("vk", "vk.com/a/", "https://vk.com/a/", "vk.com/a"),
        ("vk", "https://www.vk.com/b", "https://www.vk.com/b", "vk.com/b"),
        ("telegram", "https://t.me/a", "https://t.me/a", "t.me/a"),
        ("telegram", "t.me/b", "https://t.me/b", "t.me/b"),
    ]
)
REASONS = st.sampled_from([None, "work", "friends"])


def _stored_email(email: str | None) -> str | None:
    if email is None:
        return None
    local, _, domain = email.partition("@")
    return f"{local}@{domain.lower()}"


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    return name.strip() or None


@attrs.define
class Account:
    network: str
    url: str
    key: str
    connected_for: str | None


@attrs.define
class UserModel:
    firstname: str
    lastname: str
    middlename: str | None
    email: str | None
    phone: int | None
    status: str = "active"
    accounts: dict[str, Account] = attrs.field(factory=dict)  # in the order linked


@pytest.fixture
def service(database_url: str) -> Iterator[Service]:
    with Service(database_url) as service:
        yield service


class LifecycleMachine(RuleBasedStateMachine):
    port: int
    database_url: str

    users = Bundle("users")
    accounts = Bundle("accounts")

    def __init__(self) -> None:
        super().__init__()
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.db = psycopg.connect(self.database_url, autocommit=True)
        self.model: dict[str, UserModel] = {}
        self.gone: set[str] = set()
        self.events = 0
        self.last_event: str | None = None

    def teardown(self) -> None:
        self.http.close()
        self.db.close()

    # --- talking to the service ---

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        self.http.request(method, API + path, body=data, headers=headers)
        response = self.http.getresponse()
        payload = json.loads(response.read())
        assert response.status < 500, payload
        return response.status, payload

    def command(self, name: str, body: dict[str, Any], expected: str | int) -> Any:
        """Run a command expecting a status (success) or a contract code (failure)."""
        method, path = COMMANDS[name]
        status, payload = self.request(method, path, body)
        if isinstance(expected, int):
            assert status == expected, (name, body, payload)
            self.events += 1
            return payload["result"]
        assert status >= 400, (name, body, payload)
        assert payload["error"]["data"]["code"] == expected, (name, body, payload)
        return None

    # --- the model's rules ---

    def _holder_of(self, *, email: str | None = None, phone: int | None = None) -> str | None:
        for user_id, user in self.model.items():
            if email is not None and user.email is not None and user.email.lower() == email.lower():
                return user_id
            if phone is not None and user.phone == phone:
                return user_id
        return None

    def _link_holder(self, key: str) -> str | None:
        for user_id, user in self.model.items():
            if any(a.key == key for a in user.accounts.values()):
                return user_id
        return None

    def _state_failure(self, user_id: str, *, active: bool = True) -> str | None:
        if user_id not in self.model:
            return "user_not_found"
        if active and self.model[user_id].status == "deleted":
            return "user_deleted"
        return None

    @initialize()
    def empty(self) -> None:
        with self.db.cursor() as cursor:
            cursor.execute("TRUNCATE users, linked_accounts, outbox CASCADE")

    @rule(
        target=users,
        firstname=NAMES,
        lastname=NAMES,
        middlename=MIDDLENAMES,
        email=EMAILS,
        phone=PHONES,
    )
    def create_user(self, firstname, lastname, middlename, email, phone):
        body = {
            "firstname": firstname,
            "lastname": lastname,
            "middlename": middlename,
            "email": email,
            "phone": phone,
        }
        stored = _stored_email(email)
        if email is None and phone is None:
            self.command("create_user", body, "invalid_contacts")
            return multiple()
        if self._holder_of(email=stored) or self._holder_of(phone=phone):
            self.command("create_user", body, "user_already_exists")
            return multiple()
        user_id = self.command("create_user", body, 201)
        self.model[user_id] = UserModel(
            firstname.strip(), lastname.strip(), _name(middlename), stored, phone
        )
        self.last_event = "UserCreated"
        return user_id

    @rule(user_id=users | st.just(MISSING_USER))
    def delete_temporarily(self, user_id):
        failure = self._state_failure(user_id, active=False)
        if failure is None and self.model[user_id].status == "deleted":
            failure = "user_already_deleted"
        if failure:
            self.command("delete_temporarily", {"user_id": user_id}, failure)
            return
        self.command("delete_temporarily", {"user_id": user_id}, 200)
        self.model[user_id].status = "deleted"
        self.last_event = "UserTemporarilyDeleted"

    @rule(user_id=users)
    def recover(self, user_id):
        failure = self._state_failure(user_id, active=False)
        if failure is None and self.model[user_id].status == "active":
            failure = "user_already_active"
        if failure:
            self.command("recovery_user", {"user_id": user_id}, failure)
            return
        self.command("recovery_user", {"user_id": user_id}, 200)
        self.model[user_id].status = "active"
        self.last_event = "UserRecovered"

    @rule(user_id=consumes(users))
    def delete_permanently(self, user_id):
        if user_id not in self.model:
            self.command("delete_permanently", {"user_id": user_id}, "user_not_found")
            return
        self.command("delete_permanently", {"user_id": user_id}, 200)
        del self.model[user_id]
        self.gone.add(user_id)
        self.last_event = "UserPermanentlyDeleted"

    @rule(user_id=users, firstname=NAMES, lastname=NAMES, middlename=MIDDLENAMES)
    def change_fullname(self, user_id, firstname, lastname, middlename):
        body = {
            "user_id": user_id,
            "firstname": firstname,
            "lastname": lastname,
            "middlename": middlename,
        }
        failure = self._state_failure(user_id)
        if failure:
            self.command("change_fullname", body, failure)
            return
        self.command("change_fullname", body, 200)
        user = self.model[user_id]
        user.firstname, user.lastname = firstname.strip(), lastname.strip()
        user.middlename = _name(middlename)
        self.last_event = "FullnameChanged"

    @rule(user_id=users, email=EMAILS, phone=PHONES)
    def change_contacts(self, user_id, email, phone):
        body = {"user_id": user_id, "email": email, "phone": phone}
        stored = _stored_email(email)
        failure = self._state_failure(user_id)
        if failure is None and email is None and phone is None:
            failure = "invalid_contacts"
        if failure is None:
            holders = {self._holder_of(email=stored), self._holder_of(phone=phone)}
            if holders - {None, user_id}:
                failure = "user_already_exists"
        if failure:
            self.command("change_contacts", body, failure)
            return
        self.command("change_contacts", body, 200)
        self.model[user_id].email, self.model[user_id].phone = stored, phone
        self.last_event = "ContactsChanged"

    @rule(target=accounts, user_id=users, link=LINKS, reason=REASONS)
    def link(self, user_id, link, reason):
        network, sent, url, key = link
        body = {
            "user_id": user_id,
            "social_network": network,
            "connection_link": sent,
            "connected_for": reason,
        }
        failure = self._state_failure(user_id)
        if failure is None:
            user = self.model[user_id]
            taken = any(a.network == network for a in user.accounts.values())
            if taken or self._link_holder(key) is not None:
                failure = "linked_account_already_exists"
        if failure:
            self.command("link", body, failure)
            return multiple()
        account_id = self.command("link", body, 201)
        self.model[user_id].accounts[account_id] = Account(network, url, key, reason)
        self.last_event = "LinkedAccountCreated"
        return (user_id, account_id)

    def _account_failure(self, user_id: str, account_id: str) -> str | None:
        failure = self._state_failure(user_id)
        if failure is None and account_id not in self.model[user_id].accounts:
            failure = "linked_account_not_found"
        return failure

    @rule(account=accounts, other_user=st.none() | users)
    def unlink(self, account, other_user):
        user_id, account_id = account
        user_id = other_user or user_id  # sometimes somebody else's account
        body = {"user_id": user_id, "linked_account_id": account_id}
        failure = self._account_failure(user_id, account_id)
        if failure:
            self.command("unlink", body, failure)
            return
        self.command("unlink", body, 200)
        del self.model[user_id].accounts[account_id]
        self.last_event = "LinkedAccountDeleted"

    @rule(account=accounts, reason=REASONS)
    def change_reason(self, account, reason):
        user_id, account_id = account
        body = {"user_id": user_id, "linked_account_id": account_id, "reason": reason}
        failure = self._account_failure(user_id, account_id)
        if failure:
            self.command("change_reason", body, failure)
            return
        self.command("change_reason", body, 200)
        self.model[user_id].accounts[account_id].connected_for = reason
        self.last_event = "ConnectionReasonChanged"

    # --- after every step ---

    @invariant()
    def every_user_reads_as_the_model_says(self):
        for user_id, expected in self.model.items():
            status, payload = self.request("GET", f"/users/{user_id}")
            assert status == 200, payload
            user = payload["result"]
            seen = {k: user[k] for k in ("firstname", "lastname", "middlename", "email", "phone")}
            assert seen == {
                "firstname": expected.firstname,
                "lastname": expected.lastname,
                "middlename": expected.middlename,
                "email": expected.email,
                "phone": expected.phone,
            }
            assert user["status"] == expected.status
            assert (user["deleted_at"] is None) == (expected.status == "active")
            fields = ("linked_account_id", "social_network", "connection_link", "connected_for")
            assert [tuple(a[f] for f in fields) for a in user["linked_accounts"]] == [
                (account_id, a.network, a.url, a.connected_for)
                for account_id, a in expected.accounts.items()
            ]

    @invariant()
    def a_permanently_deleted_user_is_never_readable_again(self):
        for user_id in self.gone:
            status, payload = self.request("GET", f"/users/{user_id}")
            assert status == 404, payload

    @invariant()
    def no_two_users_share_an_email_a_phone_or_a_link(self):
        with self.db.cursor() as cursor:
            for column, table in (
                ("lower(email)", "users"),
                ("phone", "users"),
                ("link_key", "linked_accounts"),
            ):
                cursor.execute(
                    f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                    f" GROUP BY 1 HAVING count(*) > 1"
                )
                assert cursor.fetchall() == [], column

    @invariant()
    def one_event_per_successful_command_and_none_per_failed_one(self):
        with self.db.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), (array_agg(event_name ORDER BY position DESC))[1] FROM outbox"
            )
            count, last = cursor.fetchone()
        assert count == self.events
        assert last == self.last_event


def _run(service: Service, database_url: str, examples: int, steps: int) -> None:
    machine = type(
        "Machine", (LifecycleMachine,), {"port": service.port, "database_url": database_url}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_the_lifecycle_rules_hold_for_any_sequence_of_commands(service: Service, database_url: str):
    _run(service, database_url, examples=30, steps=25)


@pytest.mark.long
def test_the_lifecycle_rules_hold_for_many_long_sequences(service: Service, database_url: str):
    _run(service, database_url, examples=100, steps=40)
