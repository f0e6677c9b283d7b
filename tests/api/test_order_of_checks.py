"""§3: the order of checks. On an existing user: body validation (422 detail) → user exists
(404) → user's status (400) → the command's own rules. Create: body validation → contact
rules (422 envelope) → uniqueness (409)."""

from aiohttp.test_utils import TestClient

from tests.api.support import (
    MISSING_USER,
    call,
    create_user,
    delete_temporarily,
    each,
    expect_detail,
    expect_error,
    expect_error_or_detail,
    link,
    user_body,
)

# --- body validation comes first ---


BAD_BODIES_OF_MISSING_USERS: list[tuple[str, dict]] = [
    ("change_contacts", {"user_id": MISSING_USER, "email": None, "phone": "79161234567"}),
    ("change_contacts", {"user_id": MISSING_USER, "email": None}),
    ("change_fullname", {"user_id": MISSING_USER, "firstname": None, "lastname": "B"}),
    (
        "link",
        {
            "user_id": MISSING_USER,
            "social_network": "myspace",
            "connection_link": "vk.com/a",
            "connected_for": None,
        },
    ),
    ("unlink", {"user_id": MISSING_USER, "linked_account_id": "nope"}),
    ("change_reason", {"user_id": MISSING_USER, "linked_account_id": MISSING_USER}),
]


async def test_a_missing_user_with_a_bad_body_is_422_detail_not_404(api: TestClient):
    async def check(case: tuple[str, dict]) -> None:
        command, body = case
        await expect_detail(await call(api, command, body))

    await each(BAD_BODIES_OF_MISSING_USERS, check)


async def test_a_deleted_user_with_a_bad_body_is_422_detail_not_400(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    body = {"user_id": user_id, "email": None, "phone": True}
    await expect_detail(await call(api, "change_contacts", body))
    await expect_detail(await call(api, "change_fullname", {"user_id": user_id}))


async def test_creating_with_a_bad_body_and_taken_contacts_is_422_detail(api: TestClient):
    await create_user(api, email="taken@example.com", phone=79161234567)
    body = user_body(email="taken@example.com", phone=79161234567, firstname=None)
    await expect_detail(await call(api, "create_user", body))


# --- user exists before status and before the command's own rules ---


async def test_a_missing_user_with_bad_contacts_is_404_not_422(api: TestClient):
    body = {"user_id": MISSING_USER, "email": None, "phone": None}
    await expect_error(await call(api, "change_contacts", body), 404, "user_not_found")


async def test_a_missing_user_with_taken_contacts_is_404_not_409(api: TestClient):
    await create_user(api, email="taken@example.com")
    body = {"user_id": MISSING_USER, "email": "taken@example.com", "phone": None}
    await expect_error(await call(api, "change_contacts", body), 404, "user_not_found")


async def test_a_missing_user_with_a_bad_fullname_is_404_never_the_domains_422(
    api: TestClient,
):
    # §1 lets request validation refuse a bad name (422 detail, which comes first);
    # if it is the domain's rule, the user's existence is checked before it.
    body = {"user_id": MISSING_USER, "firstname": " ", "lastname": "\x00", "middlename": None}
    await expect_error_or_detail(await call(api, "change_fullname", body), 404, "user_not_found")


async def test_a_missing_user_with_a_link_not_of_the_network_is_404_not_422(api: TestClient):
    body = {
        "user_id": MISSING_USER,
        "social_network": "vk",
        "connection_link": "https://evil.com/",
        "connected_for": None,
    }
    await expect_error(await call(api, "link", body), 404, "user_not_found")


async def test_a_missing_user_with_a_taken_link_is_404_not_409(api: TestClient):
    await link(api, await create_user(api), "vk", "vk.com/durov")
    body = {
        "user_id": MISSING_USER,
        "social_network": "vk",
        "connection_link": "vk.com/durov",
        "connected_for": None,
    }
    await expect_error(await call(api, "link", body), 404, "user_not_found")


async def test_a_missing_user_with_another_users_account_is_404_user_not_found(api: TestClient):
    account_id = await link(api, await create_user(api))
    body = {"user_id": MISSING_USER, "linked_account_id": account_id}
    await expect_error(await call(api, "unlink", body), 404, "user_not_found")
    body = {"user_id": MISSING_USER, "linked_account_id": account_id, "reason": "x"}
    await expect_error(await call(api, "change_reason", body), 404, "user_not_found")


# --- status before the command's own rules ---


async def test_a_deleted_user_with_bad_contacts_is_400_user_deleted_not_422(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    for email, phone in [(None, None), ("nope", None), (None, 123)]:
        body = {"user_id": user_id, "email": email, "phone": phone}
        await expect_error(await call(api, "change_contacts", body), 400, "user_deleted")


async def test_a_deleted_user_with_taken_contacts_is_400_user_deleted_not_409(api: TestClient):
    await create_user(api, email="taken@example.com")
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    body = {"user_id": user_id, "email": "taken@example.com", "phone": None}
    await expect_error(await call(api, "change_contacts", body), 400, "user_deleted")


async def test_a_deleted_user_with_a_bad_fullname_is_400_never_the_domains_422(
    api: TestClient,
):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    body = {"user_id": user_id, "firstname": "", "lastname": "a" * 101, "middlename": "\x07"}
    await expect_error_or_detail(await call(api, "change_fullname", body), 400, "user_deleted")


async def test_a_deleted_user_with_a_link_not_of_the_network_is_400_not_422(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    body = {
        "user_id": user_id,
        "social_network": "vk",
        "connection_link": "https://evil.com/",
        "connected_for": None,
    }
    await expect_error(await call(api, "link", body), 400, "user_deleted")


async def test_a_deleted_user_with_a_second_account_of_a_network_is_400_not_409(
    api: TestClient,
):
    user_id = await create_user(api)
    await link(api, user_id, "vk", "vk.com/one")
    await delete_temporarily(api, user_id)
    body = {
        "user_id": user_id,
        "social_network": "vk",
        "connection_link": "vk.com/two",
        "connected_for": None,
    }
    await expect_error(await call(api, "link", body), 400, "user_deleted")


async def test_a_deleted_user_with_an_unknown_account_is_400_not_404(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    body = {"user_id": user_id, "linked_account_id": MISSING_USER}
    await expect_error(await call(api, "unlink", body), 400, "user_deleted")
    body = {"user_id": user_id, "linked_account_id": MISSING_USER, "reason": "x"}
    await expect_error(await call(api, "change_reason", body), 400, "user_deleted")


async def test_a_deleted_user_with_a_too_long_reason_is_400_never_the_domains_422(
    api: TestClient,
):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    await delete_temporarily(api, user_id)
    body = {"user_id": user_id, "linked_account_id": account_id, "reason": "x" * 501}
    await expect_error_or_detail(await call(api, "change_reason", body), 400, "user_deleted")


# --- create: contact rules before uniqueness ---


async def test_creating_with_an_invalid_email_and_a_taken_phone_is_422_not_409(api: TestClient):
    await create_user(api, phone=79161234567)
    body = user_body(email="not-an-email", phone=79161234567)
    await expect_error(await call(api, "create_user", body), 422, "invalid_contacts")


async def test_creating_with_a_taken_email_and_an_impossible_phone_is_422_not_409(
    api: TestClient,
):
    await create_user(api, email="taken@example.com")
    body = user_body(email="taken@example.com", phone=123)
    await expect_error(await call(api, "create_user", body), 422, "invalid_contacts")


async def test_changing_to_an_invalid_email_and_a_taken_phone_is_422_not_409(api: TestClient):
    await create_user(api, phone=79161234567)
    user_id = await create_user(api)
    body = {"user_id": user_id, "email": "nope", "phone": 79161234567}
    await expect_error(await call(api, "change_contacts", body), 422, "invalid_contacts")
