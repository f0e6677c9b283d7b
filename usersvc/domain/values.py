"""Value rules of the contract (§2): each parser turns raw input into a value or a failure."""

import re
from urllib.parse import urlsplit

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE as _COUNTRY_CODES
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import (
    _MAX_LENGTH_FOR_NSN,
    _MIN_LENGTH_FOR_NSN,
    ValidationResult,
    _test_number_length,
)
from returns.result import Failure, Result, Success

from usersvc.domain.failures import (
    InvalidConnectionReason,
    InvalidContacts,
    InvalidFullname,
    LinkNotOfSocialNetwork,
)
from usersvc.domain.model import (
    SOCIAL_NETWORK_HOSTS,
    ConnectionLink,
    Contacts,
    Fullname,
    SocialNetwork,
)

NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 254
PHONE_MAX_DIGITS = 15  # E.164
LINK_MAX_LENGTH = 2048
CONNECTED_FOR_MAX_LENGTH = 500

# Unicode's Cc (control characters) and Cs (lone surrogates, which JSON can carry but no
# database can store), as ranges: one regex search instead of a category look-up per
# character. Unicode's stability policy fixes both categories to exactly these.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Labels of letters, digits and inner hyphens, dot-separated: the host a browser would
# open too (urlsplit alone lets "evil.io\\.vk.com" through, which browsers read as evil.io).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _unstorable(text: str) -> bool:
    """NUL and lone surrogates cannot be stored in PostgreSQL ``text``."""
    return _UNSTORABLE.search(text) is not None


def _name(label: str, raw: str) -> Result[str, InvalidFullname]:
    name = raw.strip()
    if not name:
        return Failure(InvalidFullname(f"{label} is empty"))
    if len(name) > NAME_MAX_LENGTH:
        return Failure(InvalidFullname(f"{label} is longer than {NAME_MAX_LENGTH} characters"))
    if _has_control(name):
        return Failure(InvalidFullname(f"{label} contains control characters"))
    return Success(name)


def _optional_name(label: str, raw: str | None) -> Result[str | None, InvalidFullname]:
    if raw is None or not raw.strip():
        return Success(None)  # "" is stored as null
    return _name(label, raw)


def parse_fullname(
    firstname: str, lastname: str, middlename: str | None
) -> Result[Fullname, InvalidFullname]:
    return Result.do(
        Fullname(first, last, middle)
        for first in _name("firstname", firstname)
        for last in _name("lastname", lastname)
        for middle in _optional_name("middlename", middlename)
    )


# The everyday address: ASCII, a dot-atom local part, a domain of letter-digit-hyphen
# labels ending in a letters-only top-level label, no "--" (Punycode and its look-alikes),
# no special-use domain. email-validator accepts every such address and normalises it
# to itself with the domain lower-cased (tests/domain/test_plain_emails.py holds the two
# to agreeing); it took a tenth of a create, so only other addresses go through it.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_EMAIL = re.compile(
    rf"({_ATEXT}(?:\.{_ATEXT})*)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63})"
)
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)


def plain_email(text: str) -> str | None:
    """The normalised form of an everyday address, or None for any other text."""
    found = _PLAIN_EMAIL.fullmatch(text)
    if found is None:
        return None
    local, domain = found.groups()
    domain = domain.lower()
    if "--" in domain or domain in _SPECIAL_USE or domain.endswith(_SPECIAL_USE_SUFFIXES):
        return None
    return f"{local}@{domain}"


def parse_email(raw: str) -> Result[str, InvalidContacts]:
    """A syntactically valid address, domain lower-cased; no DNS look-up."""
    text = raw.strip()
    if len(text) > EMAIL_MAX_LENGTH:
        return Failure(InvalidContacts(f"email is longer than {EMAIL_MAX_LENGTH} characters"))
    plain = plain_email(text)
    return Success(plain) if plain is not None else validated_email(text)


def validated_email(text: str) -> Result[str, InvalidContacts]:
    """What email-validator makes of a stripped address of at most 254 characters."""
    if _has_control(text):
        return Failure(InvalidContacts("email contains control characters"))
    try:
        address = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        return Failure(InvalidContacts(f"email is not valid: {error}"))
    if len(address.normalized) > EMAIL_MAX_LENGTH:
        return Failure(InvalidContacts(f"email is longer than {EMAIL_MAX_LENGTH} characters"))
    return Success(address.normalized)


def email_key(email: str) -> str:
    """Emails are unique case-insensitively; the database indexes the same expression."""
    return email.lower()


def parse_phone(raw: int) -> Result[int, InvalidContacts]:
    """E.164 digits with the country code and no ``+``, a possible number for that code."""
    if not 0 < raw < 10**PHONE_MAX_DIGITS:
        return Failure(InvalidContacts("phone is not an international number"))
    if plainly_possible(raw):
        return Success(raw)
    try:
        number = phonenumbers.parse(f"+{raw}")
    except phonenumbers.NumberParseException:
        return Failure(InvalidContacts("phone has no known country code"))
    if not phonenumbers.is_possible_number(number):
        return Failure(InvalidContacts("phone is not a possible number for its country code"))
    return Success(raw)


# What phonenumbers reads of a country calling code's metadata to judge "+<code><rest>":
# whether its national prefix may be stripped off the rest (the prefix pattern), and
# which lengths of the rest are possible (its verdict depends on nothing else).
type _NationalRules = tuple[re.Pattern[str] | None, frozenset[int]]
_national_rules: dict[int, _NationalRules] = {}
_POSSIBLE = (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)


def _rules(country_code: int) -> _NationalRules:
    rules = _national_rules.get(country_code)
    if rules is None:
        region = phonenumbers.region_code_for_country_code(country_code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        if metadata is None:
            rules = (None, frozenset())
        else:
            prefix = metadata.national_prefix_for_parsing
            lengths = frozenset(
                length
                for length in range(_MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN + 1)
                if _test_number_length("1" * length, metadata) in _POSSIBLE
            )
            rules = (re.compile(prefix) if prefix else None, lengths)
        _national_rules[country_code] = rules
    return rules


def plainly_possible(raw: int) -> bool:
    """True when phonenumbers would surely find ``+<raw>`` a possible number: a known
    country code, then a rest of a possible length that no national prefix could be
    stripped from. False means "ask phonenumbers".

    Its ``parse`` took 25 us a create on every phone, for what this decides in a few:
    ``tests/domain/test_plain_phones.py`` holds the two to agreeing."""
    digits = str(raw)
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in _COUNTRY_CODES:
            break
    else:
        return False
    rest = digits[size:]
    prefix, lengths = _rules(country_code)
    if len(rest) not in lengths:
        return False
    # With no prefix to strip, phonenumbers' national number is the rest as it is
    # (leading zeros kept), and its verdict is the rest's length's.
    return prefix is None or prefix.match(rest) is None


def parse_contacts(email: str | None, phone: int | None) -> Result[Contacts, InvalidContacts]:
    if email is None and phone is None:
        return Failure(InvalidContacts("at least one of email and phone is required"))
    return Result.do(
        Contacts(parsed_email, parsed_phone)
        for parsed_email in (Success(None) if email is None else parse_email(email))
        for parsed_phone in (Success(None) if phone is None else parse_phone(phone))
    )


def _belongs(host: str, network: SocialNetwork) -> bool:
    return any(host == h or host.endswith(f".{h}") for h in SOCIAL_NETWORK_HOSTS[network])


def parse_connection_link(
    network: SocialNetwork, raw: str
) -> Result[ConnectionLink, LinkNotOfSocialNetwork]:
    """A link whose host is the network's (or a subdomain), ``https://`` if it had no scheme."""
    text = raw.strip()
    if not text:
        return Failure(LinkNotOfSocialNetwork("connection_link is empty"))
    if len(text) > LINK_MAX_LENGTH:
        return Failure(
            LinkNotOfSocialNetwork(f"connection_link is longer than {LINK_MAX_LENGTH} characters")
        )
    if _has_control(text) or any(ch.isspace() for ch in text):
        return Failure(LinkNotOfSocialNetwork("connection_link contains spaces or control chars"))
    url = text if _SCHEME.match(text) else f"https://{text}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return Failure(LinkNotOfSocialNetwork("connection_link is not a valid URL"))
    if parts.scheme.lower() not in {"http", "https"}:
        return Failure(LinkNotOfSocialNetwork("connection_link must be an http(s) link"))
    if parts.username is not None or parts.password is not None:
        return Failure(LinkNotOfSocialNetwork("connection_link must not carry credentials"))
    host = parts.hostname or ""
    if not _HOSTNAME.fullmatch(host):
        return Failure(LinkNotOfSocialNetwork("connection_link has no valid host name"))
    if not _belongs(host, network):
        return Failure(
            LinkNotOfSocialNetwork(f"connection_link does not belong to {network.value}")
        )
    key = host.removeprefix("www.") + (f":{port}" if port is not None else "")
    key += parts.path.rstrip("/")
    if len(url) > LINK_MAX_LENGTH:
        return Failure(
            LinkNotOfSocialNetwork(f"connection_link is longer than {LINK_MAX_LENGTH} characters")
        )
    return Success(ConnectionLink(url=url, key=key))


def parse_connected_for(raw: str | None) -> Result[str | None, InvalidConnectionReason]:
    """Free text up to 500 characters; only what PostgreSQL cannot store is refused."""
    if raw is None:
        return Success(None)
    if len(raw) > CONNECTED_FOR_MAX_LENGTH:
        return Failure(
            InvalidConnectionReason(
                f"connected_for is longer than {CONNECTED_FOR_MAX_LENGTH} characters"
            )
        )
    if _unstorable(raw):
        return Failure(InvalidConnectionReason("connected_for contains NUL or lone surrogates"))
    return Success(raw)
