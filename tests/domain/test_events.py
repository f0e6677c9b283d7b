"""§4: every successful command yields exactly one event, named and shaped as the contract says."""

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Success

from tests.contract import EVENT_DATA_KEYS
from tests.domain.strategies import (
    COMMANDS_ON_A_USER,
    CREATE_USERS,
    REASONS,
    STAMPS,
    links,
    prop,
    raw_contacts,
    records,
    users,
    valid_commands,
)
from usersvc.domain import commands, events
from usersvc.domain.commands import Change, Stamp
from usersvc.domain.model import SocialNetwork, User, UserStatus


def the_event(result, event_type: type[events.Event], user_id, stamp: Stamp) -> events.Event:
    """The one event of a successful ``result``, checked against the contract's table."""
    assert isinstance(result, Success), result
    change = result.unwrap()
    assert isinstance(change, Change)
    event = change.event
    assert type(event) is event_type
    assert event.event_name == event_type.__name__
    assert set(event.data()) == EVENT_DATA_KEYS[event.event_name]
    assert event.event_id == stamp.event_id
    assert event.occurred_at == stamp.now
    assert event.user_id == user_id
    return event


def test_the_event_types_are_exactly_the_contracts_events():
    assert {t.__name__ for t in events.EVENT_TYPES} == set(EVENT_DATA_KEYS)
    for event_type in events.EVENT_TYPES:
        header = {"event_id", "occurred_at", "user_id"}
        fields = {f for f in event_type.__attrs_attrs__ if f.name not in header}
        assert {f.name for f in fields} == EVENT_DATA_KEYS[event_type.__name__]


def test_events_of_permanent_deletion_and_status_changes_carry_no_personal_data():
    for event_type in (
        events.UserPermanentlyDeleted,
        events.UserRecovered,
        events.UserTemporarilyDeleted,
        events.LinkedAccountDeleted,
    ):
        assert event_type.personal == frozenset()
    assert {"firstname", "lastname", "middlename", "email", "phone"} <= events.PERSONAL_FIELDS
    assert {"connection_link", "connected_for"} <= events.PERSONAL_FIELDS


@prop
@given(command=CREATE_USERS, stamp=STAMPS)
def test_create_user_emits_user_created_with_the_new_users_data(command, stamp):
    result = commands.create_user(command, stamp)
    event = the_event(result, events.UserCreated, stamp.new_id, stamp)
    user: User = result.unwrap().user
    assert event.data() == {
        "version": 1,
        "firstname": user.fullname.firstname,
        "lastname": user.fullname.lastname,
        "middlename": user.fullname.middlename,
        "email": user.contacts.email,
        "phone": user.contacts.phone,
        "status": UserStatus.ACTIVE,
    }


@records
@given(user=users(UserStatus.DELETED), stamp=STAMPS)
def test_recover_user_emits_user_recovered_with_status_active(user, stamp):
    result = commands.recover_user(user, commands.RecoverUser(user.user_id), stamp)
    event = the_event(result, events.UserRecovered, user.user_id, stamp)
    assert event.data() == {"version": user.version + 1, "status": UserStatus.ACTIVE}
    assert result.unwrap().user.status == event.data()["status"]


@records
@given(user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_delete_user_temporarily_emits_user_temporarily_deleted_with_status_and_deleted_at(
    user, stamp
):
    command = commands.DeleteUserTemporarily(user.user_id)
    result = commands.delete_user_temporarily(user, command, stamp)
    event = the_event(result, events.UserTemporarilyDeleted, user.user_id, stamp)
    new = result.unwrap().user
    assert event.data() == {
        "version": user.version + 1,
        "status": UserStatus.DELETED,
        "deleted_at": stamp.now,
    }
    assert event.data() == {
        "version": user.version + 1,
        "status": new.status,
        "deleted_at": new.deleted_at,
    }


@records
@given(user=users(), stamp=STAMPS)
def test_delete_user_permanently_emits_user_permanently_deleted_with_every_linked_account_id(
    user, stamp
):
    command = commands.DeleteUserPermanently(user.user_id)
    result = commands.delete_user_permanently(user, command, stamp)
    event = the_event(result, events.UserPermanentlyDeleted, user.user_id, stamp)
    assert event.data() == {
        "version": user.version + 1,
        "linked_account_ids": tuple(a.linked_account_id for a in user.linked_accounts),
    }
    assert result.unwrap().user is None


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_change_fullname_emits_fullname_changed_with_the_new_fullname(data, user, stamp):
    command = data.draw(valid_commands("change_fullname", user.user_id, user))
    result = commands.change_fullname(user, command, stamp)
    event = the_event(result, events.FullnameChanged, user.user_id, stamp)
    new = result.unwrap().user
    assert event.data() == {
        "version": user.version + 1,
        "firstname": new.fullname.firstname,
        "lastname": new.fullname.lastname,
        "middlename": new.fullname.middlename,
    }
    assert new.fullname.firstname == command.firstname.strip()
    assert new.fullname.lastname == command.lastname.strip()
    assert new.fullname.middlename == ((command.middlename or "").strip() or None)
    assert new == evolve(user, version=user.version + 1, fullname=new.fullname)


@records
@given(contacts=raw_contacts(), user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_change_contacts_emits_contacts_changed_with_the_new_contacts_as_a_full_replacement(
    contacts, user, stamp
):
    email, phone = contacts
    command = commands.ChangeContacts(user.user_id, email, phone)
    result = commands.change_contacts(user, command, stamp)
    event = the_event(result, events.ContactsChanged, user.user_id, stamp)
    new = result.unwrap().user
    assert event.data() == {
        "version": user.version + 1,
        "email": new.contacts.email,
        "phone": new.contacts.phone,
    }
    # A full replacement: None clears.
    assert (new.contacts.email is None) == (email is None)
    assert new.contacts.phone == phone
    assert new == evolve(user, version=user.version + 1, contacts=new.contacts)


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, max_accounts=5), stamp=STAMPS)
def test_link_social_network_emits_linked_account_created_with_the_new_account(data, user, stamp):
    taken = {a.social_network for a in user.linked_accounts}
    network = data.draw(st.sampled_from([n for n in SocialNetwork if n not in taken]))
    _, link = data.draw(links(network))
    reason = data.draw(REASONS)
    command = commands.LinkSocialNetwork(user.user_id, network, link, reason)
    result = commands.link_social_network(user, command, stamp)
    event = the_event(result, events.LinkedAccountCreated, user.user_id, stamp)
    account = result.unwrap().user.linked_accounts[-1]
    assert event.data() == {
        "version": user.version + 1,
        "linked_account_id": stamp.new_id,
        "social_network": network,
        "connection_link": account.connection_link.url,
        "connected_for": reason,
        "connected_at": stamp.now,
    }
    assert account.linked_account_id == stamp.new_id
    assert account.connected_at == stamp.now


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, min_accounts=1), stamp=STAMPS)
def test_unlink_social_network_emits_linked_account_deleted_with_the_accounts_id_and_network(
    data, user, stamp
):
    account = data.draw(st.sampled_from(user.linked_accounts))
    command = commands.UnlinkSocialNetwork(user.user_id, account.linked_account_id)
    result = commands.unlink_social_network(user, command, stamp)
    event = the_event(result, events.LinkedAccountDeleted, user.user_id, stamp)
    assert event.data() == {
        "version": user.version + 1,
        "linked_account_id": account.linked_account_id,
        "social_network": account.social_network,
    }


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, min_accounts=1), stamp=STAMPS)
def test_change_connection_reason_emits_connection_reason_changed_with_the_new_reason(
    data, user, stamp
):
    account = data.draw(st.sampled_from(user.linked_accounts))
    reason = data.draw(REASONS)
    command = commands.ChangeConnectionReason(user.user_id, account.linked_account_id, reason)
    result = commands.change_connection_reason(user, command, stamp)
    event = the_event(result, events.ConnectionReasonChanged, user.user_id, stamp)
    assert event.data() == {
        "version": user.version + 1,
        "linked_account_id": account.linked_account_id,
        "connected_for": reason,
    }
    new_account = result.unwrap().user.linked_account(account.linked_account_id)
    assert new_account is not None
    assert new_account.connected_for == reason


@records
@given(user=users(), stamp=STAMPS, data=st.data())
def test_every_change_increments_the_version_by_one_and_its_event_carries_it(user, stamp, data):
    name = data.draw(st.sampled_from(sorted(COMMANDS_ON_A_USER)))
    command = data.draw(valid_commands(name, user.user_id, user))
    result = COMMANDS_ON_A_USER[name](user, command, stamp)
    if isinstance(result, Success):
        change = result.unwrap()
        assert change.event.version == user.version + 1
        assert change.user is None or change.user.version == user.version + 1
