"""§3: each status of a user (missing, active, deleted) by each command: the contract's outcome."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import (
    COMMANDS_ON_A_USER,
    CREATE_USERS,
    STAMPS,
    few,
    prop,
    records,
    users,
    valid_commands,
)
from usersvc.domain import commands
from usersvc.domain.failures import (
    UserAlreadyActive,
    UserAlreadyDeleted,
    UserDeleted,
    UserNotFound,
)
from usersvc.domain.model import SocialNetwork, UserStatus

ALL_COMMANDS = sorted(COMMANDS_ON_A_USER)
# Commands that a temporarily deleted user refuses with user_deleted.
REFUSED_WHEN_DELETED = sorted(
    set(COMMANDS_ON_A_USER) - {"recover_user", "delete_user_temporarily", "delete_user_permanently"}
)
# Commands that succeed on an active user (given valid input).
ALLOWED_WHEN_ACTIVE = sorted(set(COMMANDS_ON_A_USER) - {"recover_user"})


@pytest.mark.parametrize("name", ALL_COMMANDS)
@few
@given(data=st.data(), user_id=st.uuids(), stamp=STAMPS)
def test_every_command_on_a_missing_user_fails_with_user_not_found(name, data, user_id, stamp):
    command = data.draw(valid_commands(name, user_id, None))
    result = COMMANDS_ON_A_USER[name](None, command, stamp)
    assert result == Failure(UserNotFound(user_id))


@pytest.mark.parametrize("name", REFUSED_WHEN_DELETED)
@few
@given(data=st.data(), user=users(UserStatus.DELETED), stamp=STAMPS)
def test_a_deleted_user_refuses_every_command_but_recovery_and_deletion_with_user_deleted(
    name, data, user, stamp
):
    command = data.draw(valid_commands(name, user.user_id, user))
    result = COMMANDS_ON_A_USER[name](user, command, stamp)
    assert result == Failure(UserDeleted(user.user_id))


@pytest.mark.parametrize("name", ALLOWED_WHEN_ACTIVE)
@few
@given(data=st.data(), stamp=STAMPS)
def test_an_active_user_accepts_every_valid_command_but_recovery(name, data, stamp):
    # unlink and change-reason need an account to act on, link a network still free.
    needs_account = name in {"unlink_social_network", "change_connection_reason"}
    user = data.draw(
        users(
            UserStatus.ACTIVE,
            min_accounts=1 if needs_account else 0,
            max_accounts=5 if name == "link_social_network" else 6,
        )
    )
    command = data.draw(valid_commands(name, user.user_id, user))
    result = COMMANDS_ON_A_USER[name](user, command, stamp)
    assert isinstance(result, Success), result


@records
@given(user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_recovering_an_active_user_fails_with_user_already_active(user, stamp):
    result = commands.recover_user(user, commands.RecoverUser(user.user_id), stamp)
    assert result == Failure(UserAlreadyActive(user.user_id))


@records
@given(user=users(UserStatus.DELETED), stamp=STAMPS)
def test_a_deleted_user_can_be_recovered(user, stamp):
    result = commands.recover_user(user, commands.RecoverUser(user.user_id), stamp)
    assert isinstance(result, Success), result
    assert result.unwrap().user.status is UserStatus.ACTIVE


@records
@given(user=users(UserStatus.DELETED), stamp=STAMPS)
def test_deleting_a_deleted_user_temporarily_fails_with_user_already_deleted(user, stamp):
    command = commands.DeleteUserTemporarily(user.user_id)
    result = commands.delete_user_temporarily(user, command, stamp)
    assert result == Failure(UserAlreadyDeleted(user.user_id))


@records
@given(user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_an_active_user_can_be_deleted_temporarily(user, stamp):
    command = commands.DeleteUserTemporarily(user.user_id)
    result = commands.delete_user_temporarily(user, command, stamp)
    assert isinstance(result, Success), result
    assert result.unwrap().user.status is UserStatus.DELETED


@records
@given(user=users(), stamp=STAMPS)
def test_a_user_of_any_status_can_be_deleted_permanently(user, stamp):
    command = commands.DeleteUserPermanently(user.user_id)
    result = commands.delete_user_permanently(user, command, stamp)
    assert isinstance(result, Success), result
    assert result.unwrap().user is None


@prop
@given(command=CREATE_USERS, stamp=STAMPS)
def test_creating_a_user_with_valid_input_always_succeeds_as_an_active_user(command, stamp):
    result = commands.create_user(command, stamp)
    assert isinstance(result, Success), result
    user = result.unwrap().user
    assert user.status is UserStatus.ACTIVE
    assert user.user_id == stamp.new_id
    assert user.created_at == stamp.now
    assert user.deleted_at is None
    assert user.linked_accounts == ()


@prop
@given(user_id=st.uuids(), account_id=st.uuids(), stamp=STAMPS)
def test_a_missing_user_is_not_found_before_the_commands_own_rules_are_checked(
    user_id, account_id, stamp
):
    invalid = [
        (commands.change_fullname, commands.ChangeFullname(user_id, "", "\x00", None)),
        (commands.change_contacts, commands.ChangeContacts(user_id, None, None)),
        (
            commands.link_social_network,
            commands.LinkSocialNetwork(user_id, SocialNetwork.VK, "ftp://x", "a" * 501),
        ),
        (commands.unlink_social_network, commands.UnlinkSocialNetwork(user_id, account_id)),
        (
            commands.change_connection_reason,
            commands.ChangeConnectionReason(user_id, account_id, "\x00"),
        ),
    ]
    for function, command in invalid:
        assert function(None, command, stamp) == Failure(UserNotFound(user_id)), command
