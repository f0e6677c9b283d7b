"""The commands are pure: equal inputs give equal results, and nothing passed in is changed."""

import copy

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import (
    COMMANDS_ON_A_USER,
    CREATE_USERS,
    NETWORKS,
    STAMPS,
    few,
    links,
    users,
    valid_commands,
)
from usersvc.domain import commands

RAW_TEXT = st.text(max_size=30)
RAW_PHONES = st.none() | st.integers(-(10**16), 10**16)


@st.composite
def any_commands(draw: st.DrawFn, name: str, user_id, user) -> object:
    """Valid or not: raw text and numbers where the command takes them."""
    if draw(st.booleans()):
        return draw(valid_commands(name, user_id, user))
    ids = [a.linked_account_id for a in user.linked_accounts] if user else []
    account_id = draw(st.sampled_from(ids) | st.uuids()) if ids else draw(st.uuids())
    match name:
        case "change_fullname":
            return commands.ChangeFullname(
                user_id, draw(RAW_TEXT), draw(RAW_TEXT), draw(st.none() | RAW_TEXT)
            )
        case "change_contacts":
            return commands.ChangeContacts(user_id, draw(st.none() | RAW_TEXT), draw(RAW_PHONES))
        case "link_social_network":
            network = draw(NETWORKS)
            link = draw(RAW_TEXT | links().map(lambda pair: pair[1]))
            return commands.LinkSocialNetwork(user_id, network, link, draw(st.none() | RAW_TEXT))
        case "unlink_social_network":
            return commands.UnlinkSocialNetwork(user_id, account_id)
        case "change_connection_reason":
            return commands.ChangeConnectionReason(user_id, account_id, draw(st.none() | RAW_TEXT))
    return draw(valid_commands(name, user_id, user))


@pytest.mark.parametrize("name", sorted(COMMANDS_ON_A_USER))
@few
@given(data=st.data(), user=st.none() | users(), stamp=STAMPS)
def test_a_command_gives_equal_results_for_equal_inputs_and_changes_none_of_them(
    name, data, user, stamp
):
    user_id = user.user_id if user is not None else data.draw(st.uuids())
    command = data.draw(any_commands(name, user_id, user))
    before = copy.deepcopy((user, command, stamp))
    function = COMMANDS_ON_A_USER[name]
    first = function(user, command, stamp)
    second = function(copy.deepcopy(user), copy.deepcopy(command), copy.deepcopy(stamp))
    assert isinstance(first, Success | Failure)
    assert first == second
    assert (user, command, stamp) == before


@few
@given(
    command=CREATE_USERS
    | st.builds(
        commands.CreateUser,
        RAW_TEXT,
        RAW_TEXT,
        st.none() | RAW_TEXT,
        st.none() | RAW_TEXT,
        RAW_PHONES,
    ),
    stamp=STAMPS,
)
def test_create_user_gives_equal_results_for_equal_inputs(command, stamp):
    before = copy.deepcopy(command)
    first = commands.create_user(command, stamp)
    assert isinstance(first, Success | Failure)
    assert first == commands.create_user(copy.deepcopy(command), stamp)
    assert command == before


@few
@given(user=users(min_accounts=1), stamp=STAMPS)
def test_records_commands_and_changes_are_frozen(user, stamp):
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.status = "deleted"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.fullname.firstname = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.contacts.email = None  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.linked_accounts[0].connected_for = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stamp.now = None  # type: ignore[misc]
    assert isinstance(user.linked_accounts, tuple)
    change = commands.delete_user_permanently(
        user, commands.DeleteUserPermanently(user.user_id), stamp
    ).unwrap()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        change.event.event_id = None  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        change.user = user  # type: ignore[misc]
