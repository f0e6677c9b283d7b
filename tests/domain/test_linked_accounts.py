"""§2/§3: connection reasons, one account per network, unlink and change reason, deletion."""

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import REASONS, STAMPS, links, prop, records, users
from usersvc.domain import commands
from usersvc.domain.failures import (
    InvalidConnectionReason,
    LinkedAccountAlreadyExists,
    LinkedAccountNotFound,
    LinkNotOfSocialNetwork,
    UserDeleted,
)
from usersvc.domain.model import SocialNetwork, UserStatus
from usersvc.domain.values import parse_connected_for

TOO_LONG_REASONS = st.text(min_size=501, max_size=700)


@st.composite
def reasons_with_nul(draw: st.DrawFn) -> str:
    text = draw(st.text(max_size=400))
    at = draw(st.integers(0, len(text)))
    return text[:at] + "\x00" + text[at:]


# --- connected_for ------------------------------------------------------------


@prop
@given(reason=REASONS)
def test_a_reason_of_at_most_500_characters_without_nul_is_kept_as_sent(reason):
    assert parse_connected_for(reason) == Success(reason)


def test_no_reason_is_allowed_and_500_characters_are_allowed_but_501_are_not():
    assert parse_connected_for(None) == Success(None)
    assert parse_connected_for("a" * 500) == Success("a" * 500)
    assert isinstance(parse_connected_for("a" * 501).failure(), InvalidConnectionReason)


@prop
@given(reason=TOO_LONG_REASONS)
def test_a_reason_longer_than_500_characters_is_invalid(reason):
    result = parse_connected_for(reason)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidConnectionReason)


@prop
@given(reason=reasons_with_nul())
def test_a_reason_with_a_nul_character_is_invalid(reason):
    result = parse_connected_for(reason)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidConnectionReason)


@records
@given(
    data=st.data(),
    user=users(UserStatus.ACTIVE, max_accounts=5),
    reason=TOO_LONG_REASONS | reasons_with_nul(),
    stamp=STAMPS,
)
def test_linking_with_an_invalid_reason_fails_with_invalid_connection_reason(
    data, user, reason, stamp
):
    taken = {a.social_network for a in user.linked_accounts}
    network = data.draw(st.sampled_from([n for n in SocialNetwork if n not in taken]))
    _, link = data.draw(links(network))
    command = commands.LinkSocialNetwork(user.user_id, network, link, reason)
    result = commands.link_social_network(user, command, stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidConnectionReason)


@records
@given(
    data=st.data(),
    user=users(UserStatus.ACTIVE, min_accounts=1),
    reason=TOO_LONG_REASONS | reasons_with_nul(),
    stamp=STAMPS,
)
def test_changing_to_an_invalid_reason_fails_with_invalid_connection_reason(
    data, user, reason, stamp
):
    account = data.draw(st.sampled_from(user.linked_accounts))
    command = commands.ChangeConnectionReason(user.user_id, account.linked_account_id, reason)
    result = commands.change_connection_reason(user, command, stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidConnectionReason)


# --- link ---------------------------------------------------------------------


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, min_accounts=1), stamp=STAMPS)
def test_a_user_cannot_link_a_second_account_of_the_same_network(data, user, stamp):
    existing = data.draw(st.sampled_from(user.linked_accounts))
    _, link = data.draw(links(existing.social_network))
    command = commands.LinkSocialNetwork(
        user.user_id, existing.social_network, link, data.draw(REASONS)
    )
    result = commands.link_social_network(user, command, stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), LinkedAccountAlreadyExists)


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, max_accounts=5), stamp=STAMPS)
def test_linking_a_link_of_another_network_fails_with_link_not_of_social_network(data, user, stamp):
    taken = {a.social_network for a in user.linked_accounts}
    network = data.draw(st.sampled_from([n for n in SocialNetwork if n not in taken]))
    other = data.draw(st.sampled_from([n for n in SocialNetwork if n is not network]))
    _, link = data.draw(links(other))
    command = commands.LinkSocialNetwork(user.user_id, network, link, None)
    result = commands.link_social_network(user, command, stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), LinkNotOfSocialNetwork)


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, max_accounts=5), stamp=STAMPS)
def test_linking_adds_one_account_and_keeps_the_others_and_the_rest_of_the_user(data, user, stamp):
    taken = {a.social_network for a in user.linked_accounts}
    network = data.draw(st.sampled_from([n for n in SocialNetwork if n not in taken]))
    _, link = data.draw(links(network))
    reason = data.draw(REASONS)
    command = commands.LinkSocialNetwork(user.user_id, network, link, reason)
    new = commands.link_social_network(user, command, stamp).unwrap().user
    *kept, added = new.linked_accounts
    assert tuple(kept) == user.linked_accounts
    assert (added.linked_account_id, added.social_network) == (stamp.new_id, network)
    assert (added.connected_for, added.connected_at) == (reason, stamp.now)
    expected_url = link if link.startswith(("http://", "https://")) else f"https://{link}"
    assert added.connection_link.url == expected_url
    assert new == evolve(user, version=user.version + 1, linked_accounts=new.linked_accounts)


# --- unlink and change reason -------------------------------------------------


@records
@given(user=users(UserStatus.ACTIVE), account_id=st.uuids(), reason=REASONS, stamp=STAMPS)
def test_unlinking_or_changing_the_reason_of_an_account_the_user_does_not_have_fails(
    user, account_id, reason, stamp
):
    if user.linked_account(account_id) is not None:
        return
    unlink = commands.UnlinkSocialNetwork(user.user_id, account_id)
    change = commands.ChangeConnectionReason(user.user_id, account_id, reason)
    expected = Failure(LinkedAccountNotFound(account_id))
    assert commands.unlink_social_network(user, unlink, stamp) == expected
    assert commands.change_connection_reason(user, change, stamp) == expected


@records
@given(
    user=users(UserStatus.ACTIVE, min_accounts=1),
    other=users(UserStatus.ACTIVE, min_accounts=1),
    stamp=STAMPS,
)
def test_an_account_of_another_user_is_not_found(user, other, stamp):
    account_id = other.linked_accounts[0].linked_account_id
    if user.linked_account(account_id) is not None:
        return
    result = commands.unlink_social_network(
        user, commands.UnlinkSocialNetwork(user.user_id, account_id), stamp
    )
    assert result == Failure(LinkedAccountNotFound(account_id))


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, min_accounts=1), stamp=STAMPS)
def test_unlinking_removes_only_that_account(data, user, stamp):
    account = data.draw(st.sampled_from(user.linked_accounts))
    command = commands.UnlinkSocialNetwork(user.user_id, account.linked_account_id)
    new = commands.unlink_social_network(user, command, stamp).unwrap().user
    assert new.linked_accounts == tuple(a for a in user.linked_accounts if a != account)
    assert new == evolve(user, version=user.version + 1, linked_accounts=new.linked_accounts)


@records
@given(data=st.data(), user=users(UserStatus.ACTIVE, min_accounts=1), reason=REASONS, stamp=STAMPS)
def test_changing_the_reason_changes_only_that_accounts_connected_for(data, user, reason, stamp):
    account = data.draw(st.sampled_from(user.linked_accounts))
    command = commands.ChangeConnectionReason(user.user_id, account.linked_account_id, reason)
    new = commands.change_connection_reason(user, command, stamp).unwrap().user
    assert new.linked_accounts == tuple(
        evolve(a, connected_for=reason) if a == account else a for a in user.linked_accounts
    )
    assert new == evolve(user, version=user.version + 1, linked_accounts=new.linked_accounts)


# --- the order of checks: status (400) before the command's own rules -----------


@records
@given(user=users(UserStatus.DELETED), account_id=st.uuids(), stamp=STAMPS)
def test_a_deleted_user_is_refused_before_the_commands_own_rules_are_checked(
    user, account_id, stamp
):
    expected = Failure(UserDeleted(user.user_id))
    invalid = [
        (
            commands.link_social_network,
            commands.LinkSocialNetwork(user.user_id, SocialNetwork.VK, "ftp://x", "\x00"),
        ),
        (commands.unlink_social_network, commands.UnlinkSocialNetwork(user.user_id, account_id)),
        (
            commands.change_connection_reason,
            commands.ChangeConnectionReason(user.user_id, account_id, "a" * 501),
        ),
        (commands.change_fullname, commands.ChangeFullname(user.user_id, "", "", None)),
        (commands.change_contacts, commands.ChangeContacts(user.user_id, None, None)),
    ]
    for function, command in invalid:
        assert function(user, command, stamp) == expected, command


# --- deletion and recovery ------------------------------------------------------


@records
@given(user=users(UserStatus.ACTIVE), stamp=STAMPS)
def test_temporary_deletion_sets_deleted_at_to_now_and_keeps_everything_else(user, stamp):
    command = commands.DeleteUserTemporarily(user.user_id)
    new = commands.delete_user_temporarily(user, command, stamp).unwrap().user
    assert new == evolve(
        user, version=user.version + 1, status=UserStatus.DELETED, deleted_at=stamp.now
    )


@records
@given(user=users(UserStatus.DELETED), stamp=STAMPS)
def test_recovery_clears_deleted_at_and_keeps_everything_else(user, stamp):
    new = commands.recover_user(user, commands.RecoverUser(user.user_id), stamp).unwrap().user
    assert new == evolve(user, version=user.version + 1, status=UserStatus.ACTIVE, deleted_at=None)


@records
@given(user=users(UserStatus.ACTIVE), stamp=STAMPS, later=STAMPS)
def test_deleting_temporarily_then_recovering_gives_the_user_back(user, stamp, later):
    deleted = commands.delete_user_temporarily(
        user, commands.DeleteUserTemporarily(user.user_id), stamp
    )
    recovered = commands.recover_user(
        deleted.unwrap().user, commands.RecoverUser(user.user_id), later
    )
    assert recovered.unwrap().user == evolve(user, version=user.version + 2)


@records
@given(user=users(), stamp=STAMPS)
def test_permanent_deletion_lists_every_linked_account_id_in_its_event(user, stamp):
    command = commands.DeleteUserPermanently(user.user_id)
    change = commands.delete_user_permanently(user, command, stamp).unwrap()
    assert change.user is None
    ids = change.event.linked_account_ids
    assert ids == tuple(a.linked_account_id for a in user.linked_accounts)
    assert len(set(ids)) == len(user.linked_accounts)
