"""If-Match (beyond the contract): a command names the versions it was written against;
on any other version it fails with PreconditionFailed and changes nothing."""

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from tests.domain.strategies import COMMANDS_ON_A_USER, STAMPS, records, users, valid_commands
from usersvc.domain.failures import PreconditionFailed, UserNotFound


@records
@given(user=users(), stamp=STAMPS, data=st.data())
def test_a_command_whose_if_match_misses_the_current_version_fails_with_precondition_failed(
    user, stamp, data
):
    name = data.draw(st.sampled_from(sorted(COMMANDS_ON_A_USER)))
    command = data.draw(valid_commands(name, user.user_id, user))
    others = data.draw(st.frozensets(st.integers(0, 2**62).filter(lambda v: v != user.version)))
    result = COMMANDS_ON_A_USER[name](user, evolve(command, if_match=others), stamp)
    assert result.failure() == PreconditionFailed(user.user_id, user.version)


@records
@given(user=users(), stamp=STAMPS, data=st.data())
def test_a_command_whose_if_match_names_the_current_version_decides_as_without_it(
    user, stamp, data
):
    name = data.draw(st.sampled_from(sorted(COMMANDS_ON_A_USER)))
    command = data.draw(valid_commands(name, user.user_id, user))
    others = data.draw(st.frozensets(st.integers(0, 2**62)))
    matching = evolve(command, if_match=others | {user.version})
    decide = COMMANDS_ON_A_USER[name]
    assert decide(user, matching, stamp) == decide(user, command, stamp)


@records
@given(user=users(), stamp=STAMPS, data=st.data())
def test_a_missing_user_is_user_not_found_before_any_if_match(user, stamp, data):
    name = data.draw(st.sampled_from(sorted(COMMANDS_ON_A_USER)))
    command = data.draw(valid_commands(name, user.user_id, user))
    result = COMMANDS_ON_A_USER[name](None, evolve(command, if_match=frozenset()), stamp)
    assert result.failure() == UserNotFound(user.user_id)
