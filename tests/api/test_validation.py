"""§1: bad input is answered in the contract's shapes, never with a 5xx, and changes nothing.

Each test tries many cases on one database (``each``) and lists every case that fails."""

import json
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    BODY_KEYS,
    COMMANDS,
    MISSING_USER,
    call,
    call_raw,
    create_user,
    each,
    expect_422,
    expect_detail,
    expect_detail_at,
    expect_result,
    fetch_user,
    link,
    user_body,
)

MALFORMED = [b"{", b'{"user_id": }', b"not json", b"", b"{'a': 1}", b'{"a": 1,}', b"NaN", b"[1, 2"]
NOT_OBJECTS: list[Any] = [[], [1, 2], "a string", None, 42, True, 1.5]
LONE_SURROGATES = [chr(0xD800), chr(0xDBFF), chr(0xDC00), chr(0xDFFF)]
CONTROL_CHARS = ["\x07", "\x1b", "\x7f", "\n", "\r", "\t", "\x1f"]


async def test_malformed_json_is_422_json_invalid_at_body(api: TestClient, tables):
    before = await tables()

    async def check(case: tuple[str, bytes]) -> None:
        command, raw = case
        entry = await expect_detail_at(await call_raw(api, command, raw), ["body"], "json_invalid")
        assert entry["msg"]

    await each([(c, raw) for c in COMMANDS for raw in MALFORMED], check)
    assert await tables() == before


async def test_a_body_that_is_a_json_array_string_null_or_number_is_422_at_body(
    api: TestClient, tables
):
    before = await tables()

    async def check(case: tuple[str, Any]) -> None:
        command, body = case
        detail = await expect_detail(await call_raw(api, command, json.dumps(body).encode()))
        assert [entry["loc"] for entry in detail] == [["body"]]

    await each([(c, body) for c in COMMANDS for body in NOT_OBJECTS], check)
    assert await tables() == before


async def test_every_missing_key_is_reported_at_once_as_missing(api: TestClient, tables):
    before = await tables()

    async def check(command: str) -> None:
        detail = await expect_detail(await call(api, command, {}))
        assert sorted(tuple(entry["loc"]) for entry in detail) == sorted(
            ("body", key) for key in BODY_KEYS[command]
        )
        assert {entry["type"] for entry in detail} == {"missing"}

    await each(COMMANDS, check)
    assert await tables() == before


async def test_one_missing_key_is_one_missing_entry_even_a_nullable_one(api: TestClient):
    async def check(key: str) -> None:
        body = user_body()
        del body[key]
        await expect_detail_at(await call(api, "create_user", body), ["body", key], "missing")

    await each(BODY_KEYS["create_user"], check)


NOT_INTEGERS: list[Any] = ["79161234567", True, False, 7.9e10, 79161234567.0, [79161234567], {}]


async def test_a_phone_that_is_not_an_integer_is_422_int_type_at_phone(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()

    async def check(case: tuple[str, Any]) -> None:
        command, phone = case
        if command == "create_user":
            body = user_body(phone=phone)
        else:
            body = {"user_id": user_id, "email": None, "phone": phone}
        await expect_detail_at(await call(api, command, body), ["body", "phone"], "int_type")

    await each([(c, p) for c in ("create_user", "change_contacts") for p in NOT_INTEGERS], check)
    assert await tables() == before


def raw_create(phone: bytes) -> bytes:
    return (
        b'{"email": "a@example.com", "firstname": "A", "lastname": "B", "middlename": null,'
        b' "phone": ' + phone + b"}"
    )


async def test_a_phone_written_with_a_fraction_or_an_exponent_is_422_at_phone(
    api: TestClient, tables
):
    async def check(raw_phone: bytes) -> None:
        response = await call_raw(api, "create_user", raw_create(raw_phone))
        await expect_detail_at(response, ["body", "phone"], "int_type")

    await each([b"79161234567.0", b"7.9e10", b"7.9E10", b"7e0", b"79161234567e0"], check)
    assert (await tables())["users"] == []


async def test_a_phone_of_1e400_is_422_never_500(api: TestClient, tables):
    async def check(raw_phone: bytes) -> None:
        detail = await expect_detail(await call_raw(api, "create_user", raw_create(raw_phone)))
        assert [entry["loc"] for entry in detail] in ([["body", "phone"]], [["body"]])

    await each([b"1e400", b"-1e400", b"1e-400"], check)
    assert (await tables())["users"] == []


BIG_PHONES = [2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**200, 2**63 - 1, -(2**63)]


async def test_a_phone_beyond_64_bits_or_15_digits_is_422_never_500(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()

    async def check(case: tuple[str, int]) -> None:
        command, phone = case
        if command == "create_user":
            body = user_body(phone=phone)
        else:
            body = {"user_id": user_id, "email": None, "phone": phone}
        await expect_422(await call(api, command, body), {"invalid_contacts"})

    await each([(c, p) for c in ("create_user", "change_contacts") for p in BIG_PHONES], check)
    assert await tables() == before


async def test_a_phone_of_5000_digits_is_422_never_500(api: TestClient):
    response = await call_raw(api, "create_user", raw_create(b"7" * 5000))
    await expect_422(response, {"invalid_contacts"})


async def test_a_string_key_with_another_type_is_422_at_that_key(api: TestClient, tables):
    async def check(case: tuple[str, Any]) -> None:
        field, value = case
        detail = await expect_detail(await call(api, "create_user", user_body(**{field: value})))
        assert [entry["loc"] for entry in detail] == [["body", field]]

    cases = [
        ("email", 42),
        ("email", True),
        ("email", ["a@example.com"]),
        ("firstname", 1),
        ("firstname", {"a": "b"}),
        ("lastname", False),
        ("middlename", 3.5),
    ]
    await each(cases, check)
    assert (await tables())["users"] == []


async def test_null_where_not_allowed_is_422_at_that_key(api: TestClient, tables):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    before = await tables()
    full = {
        "create_user": user_body(),
        "change_fullname": {
            "user_id": user_id,
            "firstname": "A",
            "lastname": "B",
            "middlename": None,
        },
        "link": {
            "user_id": user_id,
            "social_network": "telegram",
            "connection_link": "t.me/a",
            "connected_for": None,
        },
        "unlink": {"user_id": user_id, "linked_account_id": account_id},
        "change_reason": {"user_id": user_id, "linked_account_id": account_id, "reason": None},
        "recovery_user": {"user_id": user_id},
        "delete_permanently": {"user_id": user_id},
        "delete_temporarily": {"user_id": user_id},
        "change_contacts": {"user_id": user_id, "email": "a@example.com", "phone": None},
    }
    not_nullable = [
        ("create_user", "firstname"),
        ("create_user", "lastname"),
        ("change_fullname", "firstname"),
        ("change_fullname", "lastname"),
        ("link", "social_network"),
        ("link", "connection_link"),
        *[(command, "user_id") for command in full if command != "create_user"],
        ("unlink", "linked_account_id"),
        ("change_reason", "linked_account_id"),
    ]

    async def check(case: tuple[str, str]) -> None:
        command, key = case
        detail = await expect_detail(await call(api, command, {**full[command], key: None}))
        assert [entry["loc"] for entry in detail] == [["body", key]]

    await each(not_nullable, check)
    assert await tables() == before


async def test_several_wrong_keys_are_reported_at_once(api: TestClient):
    body = {"phone": "1", "email": 2, "firstname": None, "lastname": "B"}
    detail = await expect_detail(await call(api, "create_user", body))
    assert sorted(tuple(entry["loc"]) for entry in detail) == [
        ("body", "email"),
        ("body", "firstname"),
        ("body", "middlename"),
        ("body", "phone"),
    ]


MALFORMED_UUIDS: list[Any] = [
    "nope",
    "",
    "1234",
    "00000000-0000-4000-8000-00000000000g",
    "00000000-0000-4000-8000-0000000000000",
    42,
    ["x"],
    {"x": 1},
]


async def test_a_malformed_user_id_in_the_body_is_422_at_body_user_id(api: TestClient, tables):
    before = await tables()

    async def check(case: tuple[str, Any]) -> None:
        command, user_id = case
        body = {
            "user_id": user_id,
            "linked_account_id": MISSING_USER,
            "firstname": "A",
            "lastname": "B",
            "middlename": None,
            "email": "a@example.com",
            "phone": None,
            "social_network": "vk",
            "connection_link": "vk.com/a",
            "connected_for": None,
            "reason": None,
        }
        await expect_detail_at(await call(api, command, body), ["body", "user_id"])

    commands = [c for c in COMMANDS if c != "create_user"]
    await each([(c, u) for c in commands for u in MALFORMED_UUIDS], check)
    assert await tables() == before


async def test_a_malformed_linked_account_id_is_422_at_body_linked_account_id(api: TestClient):
    user_id = await create_user(api)

    async def check(case: tuple[str, Any]) -> None:
        command, account_id = case
        body = {"user_id": user_id, "linked_account_id": account_id, "reason": "x"}
        await expect_detail_at(await call(api, command, body), ["body", "linked_account_id"])

    await each([(c, u) for c in ("unlink", "change_reason") for u in MALFORMED_UUIDS], check)


async def test_a_uuid_parsing_error_is_typed_uuid_parsing(api: TestClient):
    response = await call(api, "recovery_user", {"user_id": "nope"})
    await expect_detail_at(response, ["body", "user_id"], "uuid_parsing")


async def test_a_malformed_user_id_in_the_path_is_422_at_path_user_id(api: TestClient):
    async def check(user_id: str) -> None:
        response = await api.get(f"{API}/users/{user_id}")
        await expect_detail_at(response, ["path", "user_id"])

    await each(["nope", "123", "00000000-0000-4000-8000-00000000000g", "%20"], check)


async def test_an_unknown_social_network_is_422_at_social_network(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()

    async def check(network: Any) -> None:
        body = {
            "user_id": user_id,
            "social_network": network,
            "connection_link": "vk.com/a",
            "connected_for": None,
        }
        await expect_detail_at(await call(api, "link", body), ["body", "social_network"])

    await each(["facebook", "VK", "Vk", " vk", "", 1, ["vk"], {"vk": 1}], check)
    assert await tables() == before


async def test_unknown_keys_in_a_body_are_ignored(api: TestClient):
    user_id = await create_user(api, extra="ignored", user_id=MISSING_USER, status="deleted")
    user = await fetch_user(api, user_id)
    assert user["status"] == "active"
    assert user_id != MISSING_USER
    body = {"user_id": user_id, "unknown": [1, 2, {"x": None}], "status": "active"}
    await expect_result(await call(api, "delete_temporarily", body))


async def test_a_body_sent_as_text_plain_is_never_a_5xx(api: TestClient):
    response = await call_raw(
        api, "create_user", json.dumps(user_body()).encode(), content_type="text/plain"
    )
    assert response.status in {201, 415, 422}, await response.text()


# --- strings that PostgreSQL cannot store, control characters and long strings ---


async def test_a_name_with_nul_a_lone_surrogate_or_control_chars_is_422_never_500(
    api: TestClient, tables
):
    user_id = await create_user(api)
    before = await tables()

    async def check(case: tuple[str, str, str]) -> None:
        command, field, char = case
        name = f"Iv{char}an"
        if command == "create_user":
            body = user_body(**{field: name})
        else:
            body = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
            body[field] = name
        await expect_422(await call(api, command, body), {"invalid_fullname"})

    chars = ["\x00", *LONE_SURROGATES, *CONTROL_CHARS]
    cases = [
        (command, field, char)
        for command in ("create_user", "change_fullname")
        for field in ("firstname", "lastname", "middlename")
        for char in chars
    ]
    await each(cases, check)
    assert await tables() == before


async def test_an_email_with_nul_a_lone_surrogate_or_control_chars_is_422_never_500(
    api: TestClient, tables
):
    user_id = await create_user(api)
    before = await tables()

    async def check(case: tuple[str, str]) -> None:
        command, char = case
        email = f"iv{char}an@example.com"
        if command == "create_user":
            body = user_body(email=email)
        else:
            body = {"user_id": user_id, "email": email, "phone": None}
        await expect_422(await call(api, command, body), {"invalid_contacts"})

    chars = ["\x00", *LONE_SURROGATES, "\x07", "\n", "\x7f"]
    await each([(c, ch) for c in ("create_user", "change_contacts") for ch in chars], check)
    assert await tables() == before


def linking(user_id: str, connection_link: str, connected_for: str | None = None) -> dict:
    return {
        "user_id": user_id,
        "social_network": "vk",
        "connection_link": connection_link,
        "connected_for": connected_for,
    }


async def test_a_link_with_nul_or_a_lone_surrogate_is_422_never_500(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()

    async def check(link_: str) -> None:
        await expect_422(await call(api, "link", linking(user_id, link_)))

    links = [
        f"https://{host}/du{char}rov"
        for host in ("vk.com", "v\x00k.com")
        for char in ["\x00", *LONE_SURROGATES]
    ]
    await each([*links, f"https://vk.com{chr(0xD800)}/durov"], check)
    assert await tables() == before


async def test_connected_for_with_nul_or_a_lone_surrogate_is_422_never_500(api: TestClient, tables):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "telegram", "t.me/someone")
    before = await tables()

    async def check(case: tuple[str, str]) -> None:
        command, char = case
        if command == "link":
            body = linking(user_id, "vk.com/durov", f"wo{char}rk")
        else:
            body = {"user_id": user_id, "linked_account_id": account_id, "reason": f"x{char}"}
        await expect_422(await call(api, command, body))

    chars = ["\x00", *LONE_SURROGATES]
    await each([(c, ch) for c in ("link", "change_reason") for ch in chars], check)
    assert await tables() == before


async def test_a_lone_surrogate_written_as_a_json_escape_is_422(api: TestClient, tables):
    async def check(raw: bytes) -> None:
        await expect_422(await call_raw(api, "create_user", raw))

    await each(
        [
            b'{"phone": 79161234567, "email": null, "firstname": "Iv\\ud800an",'
            b' "lastname": "P", "middlename": null}',
            b'{"phone": 79161234567, "email": null, "firstname": "I",'
            b' "lastname": "\\udfff", "middlename": null}',
            b'{"phone": null, "email": "a\\udc00@example.com", "firstname": "I",'
            b' "lastname": "P", "middlename": null}',
        ],
        check,
    )
    assert (await tables())["users"] == []


async def test_a_deeply_nested_json_body_is_422_never_500(api: TestClient, tables):
    """A JSON array is 422 at ``body``; nesting it deeply (still far under 1 MiB) changes
    nothing about that, nor does a deeply nested value under a key."""
    before = await tables()
    depth = 100_000

    async def check(raw: bytes) -> None:
        response = await call_raw(api, "recovery_user", raw)
        detail = await expect_detail(response)
        assert all(entry["loc"][0] == "body" for entry in detail), detail

    await each(
        [
            b"[" * depth + b"]" * depth,
            b'{"user_id": ' + b"[" * depth + b"]" * depth + b"}",
            b'{"a": ' * depth + b"1" + b"}" * depth,
        ],
        check,
    )
    assert await tables() == before


async def test_invalid_utf8_in_the_body_is_422(api: TestClient):
    body = (
        b'{"phone": 79161234567, "email": null, "firstname": "Iv\xff\xfean",'
        b' "lastname": "P", "middlename": null}'
    )
    await expect_422(await call_raw(api, "create_user", body))


async def test_a_very_long_string_is_422(api: TestClient, tables):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "telegram", "t.me/someone")
    before = await tables()

    async def check(case: tuple[str, int]) -> None:
        field, length = case
        value = "a" * length
        if field == "email":
            value = "a" * max(length, 250) + "@example.com"
        response = await call(api, "create_user", user_body(**{field: value}))
        await expect_422(response, {"invalid_fullname", "invalid_contacts"})

    fields = ("firstname", "lastname", "middlename", "email")
    await each([(f, n) for f in fields for n in (101, 10_000, 500_000)], check)

    async def check_link(case: tuple[str, int]) -> None:
        what, length = case
        if what == "connection_link":
            body = linking(user_id, "https://vk.com/" + "a" * length)
        elif what == "connected_for":
            body = linking(user_id, "vk.com/durov", "r" * length)
        else:
            body = {"user_id": user_id, "linked_account_id": account_id, "reason": "r" * length}
        await expect_422(await call(api, "change_reason" if what == "reason" else "link", body))

    await each(
        [("connection_link", 2040), ("connection_link", 500_000)]
        + [(w, n) for w in ("connected_for", "reason") for n in (501, 500_000)],
        check_link,
    )
    assert await tables() == before
