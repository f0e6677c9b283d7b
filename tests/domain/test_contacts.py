"""§2: emails and phones; at least one of them; emails unique case-insensitively."""

import string

from hypothesis import example, given
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.domain.strategies import (
    ASCII_EMAILS,
    CONTROL_CHARS,
    STAMPS,
    VALID_PHONES,
    case_variants,
    impossible_phones,
    prop,
    records,
    users,
)
from usersvc.domain import commands
from usersvc.domain.failures import InvalidContacts
from usersvc.domain.model import Contacts, UserStatus
from usersvc.domain.values import email_key, parse_contacts, parse_email, parse_phone


def is_invalid_contacts(result) -> bool:
    return isinstance(result, Failure) and isinstance(result.failure(), InvalidContacts)


# --- email ------------------------------------------------------------------


@prop
@given(email=ASCII_EMAILS, pad=st.sampled_from(["", " ", "\t", "  \n"]))
def test_a_valid_email_is_accepted_with_its_domain_lower_cased_and_its_local_part_kept(email, pad):
    local, domain = email.rsplit("@", 1)
    assert parse_email(pad + email + pad) == Success(f"{local}@{domain.lower()}")


@prop
@given(email=ASCII_EMAILS)
def test_parsing_a_stored_email_again_gives_it_back(email):
    stored = parse_email(email).unwrap()
    assert parse_email(stored) == Success(stored)


@prop
@given(data=st.data(), email=ASCII_EMAILS)
def test_case_variants_of_an_email_have_the_same_key(data, email):
    variant = data.draw(case_variants(email))
    assert email_key(variant) == email_key(email)
    assert email_key(parse_email(variant).unwrap()) == email_key(parse_email(email).unwrap())


def test_upper_and_lower_case_spellings_of_an_address_collide():
    upper, lower = parse_email("A@EXAMPLE.COM").unwrap(), parse_email("a@example.com").unwrap()
    assert upper == "A@example.com"  # the local part is kept as sent
    assert email_key(upper) == email_key(lower)


@prop
@given(email=ASCII_EMAILS, other=ASCII_EMAILS)
def test_emails_that_differ_other_than_by_case_have_different_keys(email, other):
    if email.lower() != other.lower():
        assert email_key(parse_email(email).unwrap()) != email_key(parse_email(other).unwrap())


@prop
@given(text=st.text().filter(lambda t: "@" not in t))
def test_an_email_without_an_at_sign_is_invalid(text):
    assert is_invalid_contacts(parse_email(text))


@prop
@given(data=st.data(), email=ASCII_EMAILS, control=CONTROL_CHARS)
def test_an_email_with_a_control_character_is_invalid(data, email, control):
    at = data.draw(st.integers(1, len(email) - 1))
    assert is_invalid_contacts(parse_email(email[:at] + control + email[at:]))


@st.composite
def long_emails(draw: st.DrawFn) -> str:
    """Syntactically plausible addresses of 255..400 characters (labels of at most 63)."""
    total = draw(st.integers(255, 400))
    local = "x" * draw(st.integers(1, 64))
    letter = draw(st.sampled_from(string.ascii_lowercase))
    domain = "com"
    while len(local) + 1 + len(domain) < total:
        room = total - len(local) - 1 - len(domain) - 1
        domain = letter * min(63, max(room, 1)) + "." + domain
    return f"{local}@{domain}"


@prop
@given(email=long_emails())
def test_an_email_longer_than_254_characters_is_invalid(email):
    assert len(email) > 254
    assert is_invalid_contacts(parse_email(email))


def test_an_email_of_exactly_254_characters_is_valid():
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(email) == 254
    assert parse_email(email) == Success(email)
    assert is_invalid_contacts(parse_email(email.replace("@", "@e")))


# --- phone ------------------------------------------------------------------


@prop
@given(phone=VALID_PHONES)
@example(79161234567)
@example(14155552671)
@example(447911123456)
def test_a_possible_e164_number_is_accepted_as_it_is(phone):
    assert parse_phone(phone) == Success(phone)


@prop
@given(phone=st.integers(max_value=0))
def test_zero_and_negative_phones_are_invalid(phone):
    assert is_invalid_contacts(parse_phone(phone))


@prop
@given(phone=st.integers(min_value=10**15))
@example(10**15)
def test_a_phone_of_more_than_15_digits_is_invalid(phone):
    assert is_invalid_contacts(parse_phone(phone))


def test_a_phone_too_long_to_convert_to_text_is_invalid_rather_than_an_error():
    # Python refuses str() of ints over 4300 digits (sys.get_int_max_str_digits()).
    huge = 10**4300
    result = parse_phone(huge)  # must be a Failure, not a ValueError
    assert is_invalid_contacts(result)


@prop
@given(phone=impossible_phones())
@example(7123)
def test_a_phone_too_short_for_its_country_code_is_invalid(phone):
    assert is_invalid_contacts(parse_phone(phone))


@prop
@given(national=st.integers(0, 10**9))
def test_a_phone_with_an_unassigned_country_code_is_invalid(national):
    # 999 is a spare country code: no number starts with it.
    assert is_invalid_contacts(parse_phone(int(f"999{national}")))


# --- contacts ---------------------------------------------------------------


def test_contacts_without_email_and_phone_are_invalid():
    assert is_invalid_contacts(parse_contacts(None, None))


@prop
@given(email=st.none() | ASCII_EMAILS, phone=st.none() | VALID_PHONES)
def test_contacts_with_a_valid_email_or_phone_are_accepted(email, phone):
    result = parse_contacts(email, phone)
    if email is None and phone is None:
        assert is_invalid_contacts(result)
    else:
        expected_email = None if email is None else parse_email(email).unwrap()
        assert result == Success(Contacts(expected_email, phone))


@prop
@given(
    email=st.none() | ASCII_EMAILS,
    phone=st.none() | VALID_PHONES,
    bad_email=st.text().filter(lambda t: "@" not in t),
    bad_phone=st.integers(max_value=0) | impossible_phones(),
    which=st.sampled_from(["email", "phone"]),
)
def test_contacts_with_one_invalid_value_are_invalid(email, phone, bad_email, bad_phone, which):
    if which == "email":
        email = bad_email
    else:
        phone = bad_phone
    assert is_invalid_contacts(parse_contacts(email, phone))


@prop
@given(phone=st.none() | VALID_PHONES, stamp=STAMPS)
def test_creating_a_user_without_contacts_or_with_an_invalid_one_fails_with_invalid_contacts(
    phone, stamp
):
    email = None if phone is None else "not-an-email"
    result = commands.create_user(commands.CreateUser("Ivan", "Petrov", None, email, phone), stamp)
    assert is_invalid_contacts(result)


@records
@given(user=users(UserStatus.ACTIVE), bad_phone=impossible_phones(), stamp=STAMPS)
def test_an_active_user_cannot_clear_both_contacts_or_set_an_invalid_one(user, bad_phone, stamp):
    for email, phone in ((None, None), (None, bad_phone), ("@example.com", None)):
        command = commands.ChangeContacts(user.user_id, email, phone)
        assert is_invalid_contacts(commands.change_contacts(user, command, stamp))
