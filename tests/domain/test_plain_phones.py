"""The phone shortcut of ``parse_phone`` (``plainly_possible``) decides exactly as
phonenumbers: whatever it lets through, phonenumbers parses as a possible number, so
``parse_phone`` answers every number as phonenumbers alone would."""

import random

import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st

from usersvc.domain.values import PHONE_MAX_DIGITS, parse_phone, plainly_possible

many = settings(max_examples=3000, deadline=None)
COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def phonenumbers_says_possible(raw: int) -> bool:
    try:
        number = phonenumbers.parse(f"+{raw}")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


def test_every_country_code_rest_length_and_leading_digit_is_judged_as_phonenumbers_does():
    """Each country code, each length of what follows it, each first digit of that (the
    national prefixes and the possible lengths are told apart there), a few times."""
    rng = random.Random(20261127)
    checked = 0
    for country_code in COUNTRY_CODES:
        for length in range(1, PHONE_MAX_DIGITS - len(str(country_code)) + 1):
            for first in "0123456789":
                for _ in range(3):
                    rest = first + "".join(rng.choices("0123456789", k=length - 1))
                    raw = int(f"{country_code}{rest}")
                    if plainly_possible(raw):
                        assert phonenumbers_says_possible(raw), raw
                    checked += 1
    assert checked > 75_000


@many
@given(
    country_code=st.sampled_from(COUNTRY_CODES),
    rest=st.text("0123456789", min_size=1, max_size=14),
)
def test_numbers_after_a_country_code_are_judged_as_phonenumbers_does(country_code, rest):
    raw = int(f"{country_code}{rest}")
    if raw >= 10**PHONE_MAX_DIGITS:
        return
    if plainly_possible(raw):
        assert phonenumbers_says_possible(raw)
    assert parse_phone(raw).map(lambda _: True).value_or(False) == phonenumbers_says_possible(raw)


@many
@given(raw=st.integers(1, 10**PHONE_MAX_DIGITS - 1))
@example(raw=79000000001)
@example(raw=78000000001)  # Russia's national prefix 8 after the code: phonenumbers decides
@example(raw=390612345678)  # Italy keeps its leading zero
@example(raw=12)
def test_any_number_is_judged_as_phonenumbers_does(raw):
    if plainly_possible(raw):
        assert phonenumbers_says_possible(raw)
    assert parse_phone(raw).map(lambda _: True).value_or(False) == phonenumbers_says_possible(raw)


def test_the_example_numbers_of_most_regions_take_the_shortcut():
    """The shortcut is not a dead letter: each region's own example numbers (mobile and
    fixed line) mostly pass it, and phonenumbers agrees with every one that does."""
    taken = total = 0
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            raw = int(f"{number.country_code}{phonenumbers.national_significant_number(number)}")
            total += 1
            if plainly_possible(raw):
                taken += 1
                assert phonenumbers_says_possible(raw)
    assert taken / total > 0.8, (taken, total)
