"""The everyday-address shortcut of ``parse_email`` decides exactly as email-validator:
whatever it accepts, email-validator accepts and normalises to the same text, and
``parse_email`` answers every text as the validated path alone would."""

import string

from email_validator import SPECIAL_USE_DOMAIN_NAMES, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.domain.strategies import ASCII_EMAILS
from usersvc.domain.values import EMAIL_MAX_LENGTH, parse_email, plain_email, validated_email

many = settings(max_examples=1500, deadline=None)

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LABEL_CHARS = string.ascii_letters + string.digits + "-"
# Characters near the edges of what the shortcut admits.
ODD = '.@"\\()<>[]:;, \t\x00\x7fé中'


@st.composite
def near_plain(draw: st.DrawFn) -> str:
    """Addresses built from the shortcut's own parts, with its edges and just beyond:
    empty or dotted atoms, long local parts, 63/64-character labels, "--",
    hyphens at label ends, numeric or one-letter or special-use top-level labels, case."""
    atoms = draw(st.lists(st.text(ATEXT, min_size=0, max_size=30), min_size=1, max_size=4))
    local = ".".join(atoms)
    if draw(st.booleans()):
        local = draw(st.sampled_from(["a" * 64, "b" * 65, "." + local, local + ".", local]))
    labels = draw(st.lists(st.text(LABEL_CHARS, min_size=0, max_size=65), min_size=1, max_size=3))
    top = draw(
        st.sampled_from(
            [
                "com",
                "RU",
                "io",
                "x",
                "123",
                "a1",
                "co",
                "xn--p1ai",
                "Local",
                *SPECIAL_USE_DOMAIN_NAMES,
            ]
        )
        | st.text(string.ascii_letters, min_size=1, max_size=64)
    )
    address = f"{local}@{'.'.join([*labels, top])}"
    if draw(st.integers(0, 9)) == 0:  # now and then one odd character somewhere
        at = draw(st.integers(0, len(address)))
        address = address[:at] + draw(st.sampled_from(ODD)) + address[at:]
    return address


candidates = near_plain() | ASCII_EMAILS | st.text(max_size=80)


@many
@given(address=candidates)
@example("load123456@example.com")
@example("Ivan.Petrov@Mail.RU")
@example("a@b.co")
@example("x@host.localhost")
@example("x@sub.invalid")
@example("x@ab--cd.com")
def test_what_the_shortcut_accepts_email_validator_accepts_as_the_same_address(address):
    shortcut = plain_email(address)
    if shortcut is not None:
        assert validate_email(address, check_deliverability=False).normalized == shortcut


@many
@given(address=candidates, pad=st.sampled_from(["", " ", "\n"]))
def test_parse_email_answers_as_the_validated_path_alone(address, pad):
    text = (pad + address + pad).strip()
    if len(text) <= EMAIL_MAX_LENGTH:
        assert parse_email(pad + address + pad) == validated_email(text)


def test_everyday_addresses_take_the_shortcut():
    for address in ("load123456@example.com", "Ivan.Petrov+tag@Mail.Example.RU", "a_b@c-d.io"):
        assert plain_email(address) == address.split("@")[0] + "@" + address.split("@")[1].lower()
