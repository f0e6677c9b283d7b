"""Hypothesis strategies shared by the domain tests: raw inputs, valid records, stamps."""

import string
from datetime import UTC, datetime, timedelta
from uuid import UUID

import phonenumbers
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.provisional import domains
from returns.result import Success

from usersvc.domain import commands
from usersvc.domain.commands import Stamp
from usersvc.domain.model import (
    SOCIAL_NETWORK_HOSTS,
    Contacts,
    Fullname,
    LinkedAccount,
    SocialNetwork,
    User,
    UserStatus,
)
from usersvc.domain.values import parse_connection_link

# phonenumbers and email-validator are slow on their first calls: no deadline.
prop = settings(max_examples=100, deadline=None)
# Tests that draw whole user records, and parametrised ones that run once per command.
records = settings(max_examples=50, deadline=None)
few = settings(max_examples=30, deadline=None)

# --- text -------------------------------------------------------------------

# Whitespace that trimming removes around a name.
PADDING = st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=4)
CONTROL_CHARS = st.characters(categories=["Cc"])
_NAME_ALPHABET = st.characters(exclude_categories=["Cc", "Cs"])


def trimmed(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Text without control characters that trimming leaves unchanged."""
    return (
        st.text(alphabet=_NAME_ALPHABET, min_size=min_size, max_size=max_size)
        .map(str.strip)
        .filter(lambda s: min_size <= len(s) <= max_size)
    )


VALID_NAMES = trimmed(1, 100)
LONG_NAMES = trimmed(101, 300)


@st.composite
def names_with_control_char(draw: st.DrawFn) -> str:
    """A name of at most 100 characters with a control character inside it."""
    left = draw(trimmed(1, 49))
    right = draw(trimmed(1, 49))
    return left + draw(CONTROL_CHARS) + right


@st.composite
def case_variants(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(ch.swapcase() if flip else ch for ch, flip in zip(text, flips, strict=True))


# --- contacts ---------------------------------------------------------------

# ASCII domains only: email-validator shows punycode (xn--) domains in Unicode.
ASCII_EMAILS = st.emails(domains=domains().filter(lambda d: "xn--" not in d.lower()))

# Possible E.164 numbers: the contract's examples, the libraries' examples, and whole
# families whose national numbers have a possible length.
_EXAMPLE_REGIONS = ("RU", "US", "GB", "DE", "FR", "IT", "IN", "CN", "BR", "JP", "KZ", "UA")
_EXAMPLE_PHONES = sorted(
    {79161234567, 14155552671, 447911123456}
    | {
        int(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:])
        for region in _EXAMPLE_REGIONS
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)
VALID_PHONES = st.one_of(
    st.sampled_from(_EXAMPLE_PHONES),
    st.integers(1_000_000_0000, 1_999_999_9999),  # +1, 10 national digits
    st.integers(79_000_000_000, 79_999_999_999),  # +7 9xx, Russian mobile
    st.integers(447_000_000_000, 447_999_999_999),  # +44 7xxx, UK mobile
)

# Country codes whose numbers all have more than three national digits.
_IMPOSSIBLE_CODES = (1, 7, 33, 39, 44, 55, 61, 81, 86, 91, 380)


@st.composite
def impossible_phones(draw: st.DrawFn) -> int:
    """A known country code followed by a too-short national number (like 7123)."""
    code = draw(st.sampled_from(_IMPOSSIBLE_CODES))
    national = draw(st.text(alphabet=string.digits, min_size=1, max_size=3))
    return int(f"{code}{national}")


@st.composite
def raw_contacts(draw: st.DrawFn) -> tuple[str | None, int | None]:
    """Valid raw contacts: at least one of email and phone."""
    email = draw(st.none() | ASCII_EMAILS)
    phone = draw(VALID_PHONES) if email is None else draw(st.none() | VALID_PHONES)
    return email, phone


# --- social network links ---------------------------------------------------

LABELS = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10).filter(
    lambda label: label != "www"
)
_SEGMENT = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~@:+", min_size=1, max_size=12
)
# A path without a trailing "/": "" or "/a/b".
PATHS = st.lists(_SEGMENT, max_size=4).map(lambda segments: "".join(f"/{s}" for s in segments))
SCHEMES = st.sampled_from(["http://", "https://", ""])
QUERIES = st.sampled_from(["", "?", "?a=1", "?utm_source=x&b=2"])
FRAGMENTS = st.sampled_from(["", "#", "#top", "#a/b"])
NETWORKS = st.sampled_from(SocialNetwork)


@st.composite
def links(draw: st.DrawFn, network: SocialNetwork | None = None) -> tuple[SocialNetwork, str]:
    """A raw link of ``network`` (drawn if not given): optional scheme, www. or subdomain."""
    network = network if network is not None else draw(NETWORKS)
    host = draw(st.sampled_from(SOCIAL_NETWORK_HOSTS[network]))
    prefix = draw(st.just("") | st.just("www.") | LABELS.map(lambda label: f"{label}."))
    full_host = draw(case_variants(prefix + host))
    link = (
        draw(SCHEMES)
        + full_host
        + draw(PATHS)
        + draw(st.sampled_from(["", "/"]))
        + draw(QUERIES)
        + draw(FRAGMENTS)
    )
    return network, link


# --- records ----------------------------------------------------------------

MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
STAMPS = st.builds(Stamp, now=MOMENTS, event_id=st.uuids(), new_id=st.uuids())
REASONS = st.none() | st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=500
)

# Stored contacts are normalised already; records are built without parsing.
_STORED_EMAILS = st.sampled_from(
    ["ivan@example.com", "Ivan.Petrov@mail.ru", "a+b@sub.example.org", "user_1@x.io"]
)


@st.composite
def stored_contacts(draw: st.DrawFn) -> Contacts:
    email = draw(st.none() | _STORED_EMAILS)
    phone = (
        draw(st.sampled_from(_EXAMPLE_PHONES))
        if email is None
        else draw(st.none() | st.sampled_from(_EXAMPLE_PHONES))
    )
    return Contacts(email, phone)


_RECORD_PATHS = st.sampled_from(["", "/", "/durov", "/id1", "/@user", "/join/AbC-12"])
_RECORD_REASONS = st.none() | st.text(max_size=20)
FULLNAMES = st.builds(Fullname, VALID_NAMES, VALID_NAMES, st.none() | VALID_NAMES)


@st.composite
def linked_accounts(
    draw: st.DrawFn, min_size: int = 0, max_size: int = len(SocialNetwork)
) -> tuple[LinkedAccount, ...]:
    """0..n linked accounts of distinct networks and ids, oldest connection first."""
    networks = draw(st.lists(NETWORKS, min_size=min_size, max_size=max_size, unique=True))
    ids = draw(st.lists(st.uuids(), min_size=len(networks), max_size=len(networks), unique=True))
    moments = sorted(draw(st.lists(MOMENTS, min_size=len(networks), max_size=len(networks))))
    accounts = []
    for network, account_id, connected_at in zip(networks, ids, moments, strict=True):
        # Records need valid links, not varied ones: a cheaper strategy than links().
        host = draw(st.sampled_from(SOCIAL_NETWORK_HOSTS[network]))
        raw = f"https://{host}{draw(_RECORD_PATHS)}"
        link = parse_connection_link(network, raw)
        assert isinstance(link, Success), (raw, link)
        accounts.append(
            LinkedAccount(account_id, network, link.unwrap(), draw(_RECORD_REASONS), connected_at)
        )
    return tuple(accounts)


@st.composite
def users(
    draw: st.DrawFn,
    status: UserStatus | None = None,
    min_accounts: int = 0,
    max_accounts: int = len(SocialNetwork),
) -> User:
    """A valid user record; ``status`` is drawn when not given."""
    status = status if status is not None else draw(st.sampled_from(UserStatus))
    created_at = draw(MOMENTS)
    deleted_at = (
        None
        if status is UserStatus.ACTIVE
        else created_at + timedelta(seconds=draw(st.integers(0, 10 * 365 * 24 * 3600)))
    )
    return User(
        user_id=draw(st.uuids()),
        fullname=draw(FULLNAMES),
        contacts=draw(stored_contacts()),
        status=status,
        created_at=created_at,
        deleted_at=deleted_at,
        linked_accounts=draw(linked_accounts(min_accounts, max_accounts)),
        version=draw(st.integers(1, 2**62)),
    )


# --- commands ---------------------------------------------------------------

# Every command on an existing user, by the name of its function.
COMMANDS_ON_A_USER = {
    "recover_user": commands.recover_user,
    "delete_user_temporarily": commands.delete_user_temporarily,
    "delete_user_permanently": commands.delete_user_permanently,
    "change_fullname": commands.change_fullname,
    "change_contacts": commands.change_contacts,
    "link_social_network": commands.link_social_network,
    "unlink_social_network": commands.unlink_social_network,
    "change_connection_reason": commands.change_connection_reason,
}


@st.composite
def valid_commands(draw: st.DrawFn, name: str, user_id: UUID, user: User | None) -> object:
    """A command with valid input for ``user``: a free network, an account it has."""
    accounts = user.linked_accounts if user is not None else ()
    account_id = (
        draw(st.sampled_from([a.linked_account_id for a in accounts]))
        if accounts
        else draw(st.uuids())
    )
    match name:
        case "recover_user":
            return commands.RecoverUser(user_id)
        case "delete_user_temporarily":
            return commands.DeleteUserTemporarily(user_id)
        case "delete_user_permanently":
            return commands.DeleteUserPermanently(user_id)
        case "change_fullname":
            first, last, middle = draw(PADDED_FULLNAMES)
            return commands.ChangeFullname(user_id, first, last, middle)
        case "change_contacts":
            email, phone = draw(raw_contacts())
            return commands.ChangeContacts(user_id, email, phone)
        case "link_social_network":
            taken = {a.social_network for a in accounts}
            free = [n for n in SocialNetwork if n not in taken] or list(SocialNetwork)
            network, link = draw(links(draw(st.sampled_from(free))))
            return commands.LinkSocialNetwork(user_id, network, link, draw(REASONS))
        case "unlink_social_network":
            return commands.UnlinkSocialNetwork(user_id, account_id)
        case "change_connection_reason":
            return commands.ChangeConnectionReason(user_id, account_id, draw(REASONS))
    raise AssertionError(name)


@st.composite
def padded(draw: st.DrawFn, names: st.SearchStrategy[str]) -> str:
    return draw(PADDING) + draw(names) + draw(PADDING)


# Raw (firstname, lastname, middlename) that are valid: padded names; middlename may be
# None or blank.
PADDED_FULLNAMES = st.tuples(
    padded(VALID_NAMES), padded(VALID_NAMES), st.none() | PADDING | padded(VALID_NAMES)
)
CREATE_USERS = st.builds(
    lambda fullname, contacts: commands.CreateUser(*fullname, *contacts),
    PADDED_FULLNAMES,
    raw_contacts(),
)
