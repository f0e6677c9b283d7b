"""Hand-picked hostile input: each is a 4xx in the contract's shape and changes nothing."""

import gzip
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.support import (
    API,
    COMMANDS,
    call,
    call_raw,
    create_user,
    each,
    expect_422,
    expect_detail,
    expect_detail_at,
    expect_error,
    expect_result,
    fetch_user,
    user_body,
)


def create_raw(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


async def test_a_body_with_a_repeated_key_is_a_422_json_invalid_and_changes_nothing(
    api: TestClient, tables
):
    user_id = await create_user(api)
    before = await tables()
    bodies = {
        "create_user": '{"phone": null, "email": null, "firstname": "A", "firstname": "B",'
        ' "lastname": "C", "middlename": null}',
        "change_fullname": f'{{"user_id": "{user_id}", "firstname": "A", "lastname": "B",'
        f' "middlename": null, "user_id": "{user_id}"}}',
        # nested objects are JSON too: no key may repeat at any depth
        "delete_temporarily": f'{{"user_id": "{user_id}", "x": {{"a": 1, "a": 2}}}}',
    }

    async def check(case: tuple[str, str]) -> None:
        command, body = case
        response = await call_raw(api, command, body.encode())
        entry = await expect_detail_at(response, ["body"], "json_invalid")
        assert "repeated" in entry["msg"], entry

    await each(bodies.items(), check)
    assert await tables() == before


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/octet-stream",
        "application/jsonx",
        "",
    ],
)
async def test_a_body_that_is_not_json_by_its_content_type_is_a_415_envelope(
    api: TestClient, tables, content_type: str
):
    before = await tables()
    raw = json.dumps(user_body()).encode()
    response = await call_raw(api, "create_user", raw, content_type=content_type)
    await expect_error(response, 415, "unsupported_media_type")
    assert await tables() == before


async def test_the_media_type_is_checked_before_the_body(api: TestClient):
    """Even a body that is no JSON at all, and one for a user that does not exist."""
    response = await call_raw(api, "recovery_user", b"\xff\x00 not json", "text/plain")
    await expect_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/merge-patch+json",
        "application/vnd.usersvc.v1+json",
    ],
)
async def test_json_and_any_plus_json_media_type_are_read_as_json(
    api: TestClient, content_type: str
):
    raw = json.dumps(user_body()).encode()
    await expect_result(await call_raw(api, "create_user", raw, content_type), 201)


async def test_a_body_without_a_content_type_is_read_as_json(api: TestClient):
    method, path = COMMANDS["create_user"]
    raw = json.dumps(user_body()).encode()
    response = await api.request(method, API + path, data=raw, skip_auto_headers={"Content-Type"})
    assert "Content-Type" not in response.request_info.headers
    await expect_result(response, 201)


async def test_json_nested_100000_deep_is_a_422_json_invalid(api: TestClient, tables):
    before = await tables()
    for opening, closing in (("[", "]"), ('{"a":', "}")):
        raw = opening * 100_000 + "1" + closing * 100_000
        response = await call_raw(api, "create_user", raw.encode())
        await expect_detail_at(response, ["body"], "json_invalid")
    # deep, but inside a field: the field's type says no
    body = user_body()
    raw = json.dumps(body)[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    await expect_detail(await call_raw(api, "create_user", raw.encode()))
    assert await tables() == before


async def test_10000_element_arrays_are_422(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()
    big = [1] * 10_000  # (not distinct numbers: the log test would look for each)
    cases: list[tuple[str, Any]] = [
        ("create_user", big),
        ("create_user", user_body(firstname=big)),
        ("create_user", user_body(phone=big)),
        ("change_contacts", {"user_id": user_id, "email": ["a@b.c"] * 10_000, "phone": None}),
        ("delete_temporarily", {"user_id": [user_id] * 10_000}),
    ]

    async def check(case: tuple[str, Any]) -> None:
        await expect_detail(await call(api, *case))

    await each(cases, check)
    assert await tables() == before


@pytest.mark.parametrize(
    "char", ["\x00", chr(0xD800), chr(0xDFFF), chr(0xD83D)], ids=["nul", "d800", "dfff", "d83d"]
)
async def test_nul_bytes_and_lone_surrogates_in_any_text_field_are_422(
    api: TestClient, tables, char: str
):
    user_id = await create_user(api)
    before = await tables()
    text = f"a{char}b"
    names = {"user_id": user_id, "firstname": "A", "lastname": "B", "middlename": None}
    account = {"user_id": user_id, "social_network": "vk", "connection_link": "https://vk.com/ok"}
    account["connected_for"] = None
    cases = [
        ("create_user", user_body(firstname=text)),
        ("create_user", user_body(lastname=text)),
        ("create_user", user_body(middlename=text)),
        ("create_user", user_body(email=f"a{char}@example.com")),
        ("change_fullname", names | {"firstname": text}),
        ("change_fullname", names | {"middlename": text}),
        ("change_contacts", {"user_id": user_id, "email": f"x{char}@example.com", "phone": None}),
        ("link", account | {"connection_link": f"https://vk.com/{text}"}),
        ("link", account | {"connected_for": text}),
        ("delete_temporarily", {"user_id": f"{user_id[:-1]}{char}"}),
    ]

    async def check(case: tuple[str, Any]) -> None:
        command, body = case
        # json.dumps writes lone surrogates as \\u escapes: valid JSON text
        await expect_422(await call_raw(api, command, json.dumps(body).encode()))

    await each(cases, check)
    assert await tables() == before


async def test_a_lone_surrogate_or_nul_byte_in_a_path_is_a_4xx(api: TestClient):
    for raw in ("%00", "%ED%A0%80", "a%00b"):
        response = await api.get(f"{API}/users/{raw}")
        assert 400 <= response.status < 500
        await expect_detail(response)


async def test_a_1mb_string_is_refused_and_changes_nothing(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()
    # just under the body limit: the value rules refuse it
    big = "a" * (1024 * 1024 - 200)
    await expect_422(await call(api, "create_user", user_body(firstname=big)))
    await expect_422(
        await call(api, "change_contacts", {"user_id": user_id, "email": big, "phone": None})
    )
    link = {"user_id": user_id, "social_network": "vk", "connected_for": None}
    await expect_422(await call(api, "link", link | {"connection_link": "https://vk.com/" + big}))
    # just over it: 413
    over = "a" * (1024 * 1024)
    response = await call(api, "create_user", user_body(firstname=over))
    await expect_error(response, 413, "payload_too_large")
    assert await tables() == before


@pytest.mark.parametrize(
    "number",
    ["9223372036854775808", "-9223372036854775809", "18446744073709551616", "1" + "0" * 400],
)
async def test_a_number_beyond_64_bits_is_a_422(api: TestClient, tables, number: str):
    user_id = await create_user(api)
    before = await tables()
    raw = json.dumps(user_body(phone=0)).replace('"phone": 0', f'"phone": {number}')
    await expect_422(await call_raw(api, "create_user", raw.encode()))
    raw = f'{{"user_id": "{user_id}", "email": null, "phone": {number}}}'
    await expect_422(await call_raw(api, "change_contacts", raw.encode()))
    assert await fetch_user(api, user_id)
    assert await tables() == before


async def test_an_integer_of_a_hundred_thousand_digits_is_a_422_json_invalid(api: TestClient):
    raw = '{"phone": ' + "7" * 100_000 + "}"
    await expect_detail_at(
        await call_raw(api, "create_user", raw.encode()), ["body"], "json_invalid"
    )


@pytest.mark.parametrize("raw", [b"", b" ", b"\n\t", b"null", b'""', b"0", b"[]"])
async def test_an_empty_or_non_object_body_is_a_422_detail(api: TestClient, tables, raw: bytes):
    before = await tables()
    await expect_detail(await call_raw(api, "create_user", raw))
    assert await tables() == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"firstname": "\xff"}',
        b'{"firstname": "\xc3\x28"}',
        b'{"firstname": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 is not UTF-8
        b"\xfe\xff\x00{\x00}",  # UTF-16 with a BOM: JSON on the wire is UTF-8
        "{}".encode("utf-32"),
    ],
)
async def test_a_body_that_is_not_utf8_is_a_422_json_invalid(api: TestClient, raw: bytes):
    await expect_detail_at(await call_raw(api, "create_user", raw), ["body"], "json_invalid")


async def test_a_gzip_bomb_is_refused_without_inflating_it(api: TestClient, tables):
    """aiohttp inflates a gzip body as it reads it; the 1 MiB limit counts the inflated
    bytes, so 100 MiB of zeros in 100 KiB is refused early."""
    before = await tables()
    bomb = gzip.compress(b"0" * (100 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200 * 1024
    method, path = COMMANDS["create_user"]
    response = await api.request(
        method,
        API + path,
        data=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    await expect_error(response, 413, "payload_too_large")
    assert await tables() == before


async def test_a_well_formed_gzip_body_is_read(api: TestClient):
    method, path = COMMANDS["create_user"]
    response = await api.request(
        method,
        API + path,
        data=gzip.compress(json.dumps(user_body()).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    await expect_result(response, 201)
