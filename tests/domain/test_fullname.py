"""§2: names are trimmed, 1..100 characters, without control characters; middlename may be null."""

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import (
    LONG_NAMES,
    PADDING,
    STAMPS,
    VALID_NAMES,
    names_with_control_char,
    padded,
    prop,
    raw_contacts,
    records,
    users,
)
from usersvc.domain import commands
from usersvc.domain.failures import InvalidFullname
from usersvc.domain.model import Fullname, UserStatus
from usersvc.domain.values import parse_fullname

INVALID_NAMES = st.one_of(PADDING, padded(LONG_NAMES), padded(names_with_control_char()))
FIELDS = st.sampled_from(["firstname", "lastname", "middlename"])


@prop
@given(first=VALID_NAMES, last=VALID_NAMES, middle=VALID_NAMES, pads=st.lists(PADDING, min_size=6))
def test_valid_names_are_accepted_and_stored_trimmed(first, last, middle, pads):
    result = parse_fullname(
        pads[0] + first + pads[1], pads[2] + last + pads[3], pads[4] + middle + pads[5]
    )
    assert result == Success(Fullname(first, last, middle))


@prop
@given(first=VALID_NAMES, last=VALID_NAMES, middle=st.none() | PADDING)
def test_a_missing_or_blank_middlename_is_stored_as_null(first, last, middle):
    assert parse_fullname(first, last, middle) == Success(Fullname(first, last, None))


@prop
@given(name=PADDING, field=st.sampled_from(["firstname", "lastname"]))
def test_an_empty_or_blank_firstname_or_lastname_is_invalid(name, field):
    raw = {"firstname": "Ivan", "lastname": "Petrov", "middlename": None, field: name}
    result = parse_fullname(**raw)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidFullname)


@prop
@given(name=padded(LONG_NAMES), field=FIELDS)
def test_a_name_longer_than_100_characters_after_trimming_is_invalid(name, field):
    raw = {"firstname": "Ivan", "lastname": "Petrov", "middlename": None, field: name}
    result = parse_fullname(**raw)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidFullname)


@prop
@given(name=padded(names_with_control_char()), field=FIELDS)
def test_a_name_with_a_control_character_is_invalid(name, field):
    raw = {"firstname": "Ivan", "lastname": "Petrov", "middlename": None, field: name}
    result = parse_fullname(**raw)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidFullname)


def test_a_name_of_exactly_100_characters_is_valid_and_101_is_not():
    assert isinstance(parse_fullname("a" * 100, "b", None), Success)
    assert isinstance(parse_fullname("a" * 101, "b", None).failure(), InvalidFullname)
    assert isinstance(parse_fullname("a", "b", "c" * 101).failure(), InvalidFullname)


def test_a_lone_surrogate_or_nul_in_a_name_is_invalid():
    for name in ("Iv\ud800an", "Iv\x00an", "\x00", "Ivan\x7f"):
        assert isinstance(parse_fullname(name, "Petrov", None).failure(), InvalidFullname), name


@prop
@given(name=INVALID_NAMES, field=st.sampled_from(["firstname", "lastname"]), stamp=STAMPS)
def test_creating_a_user_with_an_invalid_name_fails_with_invalid_fullname(name, field, stamp):
    contacts = {"email": "ivan@example.com", "phone": None}
    raw = {"firstname": "Ivan", "lastname": "Petrov", "middlename": None, field: name}
    result = commands.create_user(commands.CreateUser(**raw, **contacts), stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidFullname)


@records
@given(
    name=INVALID_NAMES,
    field=st.sampled_from(["firstname", "lastname"]),
    user=users(UserStatus.ACTIVE),
    stamp=STAMPS,
)
def test_an_active_user_cannot_change_to_an_invalid_name(name, field, user, stamp):
    raw = {"firstname": "Ivan", "lastname": "Petrov", "middlename": None, field: name}
    result = commands.change_fullname(user, commands.ChangeFullname(user.user_id, **raw), stamp)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidFullname)


@prop
@given(contacts=raw_contacts(), stamp=STAMPS)
def test_creating_a_user_with_contacts_but_a_blank_middlename_stores_it_as_null(contacts, stamp):
    email, phone = contacts
    result = commands.create_user(commands.CreateUser("Ivan", "Petrov", "  ", email, phone), stamp)
    assert result.unwrap().user.fullname == Fullname("Ivan", "Petrov", None)
