"""§2 and §3 for the user itself: create, read, delete, recover, fullname, contacts."""

from aiohttp.test_utils import TestClient

from tests.api.support import (
    ACCOUNT_FIELDS,
    MISSING_USER,
    USER_FIELDS,
    assert_timestamp,
    assert_uuid,
    call,
    create_user,
    delete_temporarily,
    each,
    expect_422,
    expect_error,
    expect_result,
    fetch_user,
    get_user,
    link,
    unique,
    user_body,
)

# --- create_user ---


async def test_creating_a_user_is_201_with_the_new_user_id(api: TestClient):
    body = user_body()
    user_id = await expect_result(await call(api, "create_user", body), 201)
    assert_uuid(user_id)
    user = await fetch_user(api, user_id)
    assert user["user_id"] == user_id
    assert user["email"] == body["email"]
    assert user["phone"] == body["phone"]


async def test_each_created_user_gets_a_new_id(api: TestClient):
    assert await create_user(api) != await create_user(api)


async def test_creating_a_user_with_only_an_email_is_fine(api: TestClient):
    user_id = await create_user(api, phone=None)
    user = await fetch_user(api, user_id)
    assert user["phone"] is None
    assert user["email"] is not None


async def test_creating_a_user_with_only_a_phone_is_fine(api: TestClient):
    user_id = await create_user(api, email=None)
    user = await fetch_user(api, user_id)
    assert user["email"] is None
    assert isinstance(user["phone"], int)


async def test_creating_a_user_without_any_contact_is_422_invalid_contacts(api: TestClient):
    response = await call(api, "create_user", user_body(email=None, phone=None))
    await expect_error(response, 422, "invalid_contacts")


async def test_creating_a_user_with_an_invalid_email_is_422_invalid_contacts(api: TestClient):
    async def check(email: str) -> None:
        response = await call(api, "create_user", user_body(email=email))
        await expect_error(response, 422, "invalid_contacts")

    emails = ["not-an-email", "ivan@", "@example.com", "ivan@@example.com", "iv an@example.com", ""]
    await each(emails, check)


async def test_creating_a_user_with_an_impossible_phone_is_422_invalid_contacts(api: TestClient):
    async def check(phone: int) -> None:
        response = await call(api, "create_user", user_body(phone=phone))
        await expect_error(response, 422, "invalid_contacts")

    await each([0, -79161234567, 123, 7916123456789012, 999], check)


async def test_creating_a_user_with_an_email_over_254_characters_is_422_invalid_contacts(
    api: TestClient,
):
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + "." + "c" * 10 + ".com"
    assert len(email) > 254
    response = await call(api, "create_user", user_body(email=email))
    await expect_error(response, 422, "invalid_contacts")


async def test_creating_a_user_with_a_taken_email_is_409(api: TestClient):
    await create_user(api, email="ivan@example.com")
    response = await call(api, "create_user", user_body(email="ivan@example.com"))
    await expect_error(response, 409, "user_already_exists")


async def test_creating_a_user_with_a_taken_email_in_other_case_is_409(api: TestClient):
    await create_user(api, email="Ivan.Petrov@Example.com")
    for email in ("ivan.petrov@example.com", "IVAN.PETROV@EXAMPLE.COM", "Ivan.Petrov@example.COM"):
        response = await call(api, "create_user", user_body(email=email))
        await expect_error(response, 409, "user_already_exists")


async def test_emails_are_unique_case_insensitively_beyond_ascii(api: TestClient):
    await create_user(api, email="Иван@example.com")
    await create_user(api, email="ÄBC@example.com")
    for email in ("иван@example.com", "ИВАН@EXAMPLE.COM", "äbc@example.com"):
        response = await call(api, "create_user", user_body(email=email))
        await expect_error(response, 409, "user_already_exists")


async def test_an_internationalised_email_domain_is_lower_cased(api: TestClient):
    user_id = await create_user(api, email="Иван@ПРИМЕР.рф")
    assert (await fetch_user(api, user_id))["email"] == "Иван@пример.рф"


async def test_creating_a_user_with_a_taken_phone_is_409(api: TestClient):
    await create_user(api, phone=79161234567)
    response = await call(api, "create_user", user_body(phone=79161234567))
    await expect_error(response, 409, "user_already_exists")


async def test_contacts_of_a_temporarily_deleted_user_stay_reserved(api: TestClient):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    await delete_temporarily(api, user_id)
    response = await call(api, "create_user", user_body(email="IVAN@example.com"))
    await expect_error(response, 409, "user_already_exists")
    response = await call(api, "create_user", user_body(phone=79161234567))
    await expect_error(response, 409, "user_already_exists")


async def test_contacts_are_free_again_after_permanent_deletion(api: TestClient):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    await delete_temporarily(api, user_id)
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    await create_user(api, email="Ivan@Example.com", phone=79161234567)


async def test_the_email_domain_is_lower_cased_and_the_local_part_kept(api: TestClient):
    user_id = await create_user(api, email="Ivan.Petrov@Example.COM")
    assert (await fetch_user(api, user_id))["email"] == "Ivan.Petrov@example.com"


async def test_names_are_trimmed(api: TestClient):
    user_id = await create_user(
        api, firstname="  Ivan ", lastname="\tPetrov\n", middlename=" Sergeevich  "
    )
    user = await fetch_user(api, user_id)
    assert (user["firstname"], user["lastname"], user["middlename"]) == (
        "Ivan",
        "Petrov",
        "Sergeevich",
    )


async def test_an_empty_middlename_is_stored_as_null(api: TestClient):
    async def check(middlename: str | None) -> None:
        user_id = await create_user(api, middlename=middlename)
        assert (await fetch_user(api, user_id))["middlename"] is None

    await each(["", "   ", None], check)


async def test_an_empty_first_or_last_name_is_422(api: TestClient, tables):
    async def check(case: tuple[str, str]) -> None:
        field, value = case
        await expect_422(await call(api, "create_user", user_body(**{field: value})))

    await each([(f, v) for f in ("firstname", "lastname") for v in ("", "   ")], check)
    assert (await tables())["users"] == []


async def test_a_name_of_100_characters_is_fine_and_101_is_422(api: TestClient):
    user_id = await create_user(api, firstname="Я" * 100)
    assert (await fetch_user(api, user_id))["firstname"] == "Я" * 100
    await expect_422(await call(api, "create_user", user_body(firstname="Я" * 101)))


async def test_a_unicode_name_is_kept_as_sent(api: TestClient):
    user_id = await create_user(api, firstname="Иван", lastname="Ōtsuka-Łukasz", middlename="李")
    user = await fetch_user(api, user_id)
    assert (user["firstname"], user["lastname"], user["middlename"]) == (
        "Иван",
        "Ōtsuka-Łukasz",
        "李",
    )


# --- GET /users/{user_id} ---


async def test_getting_a_user_returns_every_field_of_the_contract(api: TestClient):
    body = user_body(email="ivan@example.com", phone=79161234567)
    user_id = await expect_result(await call(api, "create_user", body), 201)
    user = await fetch_user(api, user_id)
    assert set(user) == USER_FIELDS
    assert user["user_id"] == user_id
    assert user["status"] == "active"
    assert_timestamp(user["created_at"])
    assert user["deleted_at"] is None
    assert user["firstname"] == "Ivan"
    assert user["lastname"] == "Petrov"
    assert user["middlename"] == "Sergeevich"
    assert user["email"] == "ivan@example.com"
    assert user["phone"] == 79161234567
    assert user["linked_accounts"] == []


async def test_a_users_linked_accounts_come_with_every_field_oldest_first(api: TestClient):
    user_id = await create_user(api)
    first = await link(api, user_id, "telegram", "t.me/ivan", "friends")
    second = await link(api, user_id, "vk", "https://vk.com/ivan", None)
    third = await link(api, user_id, "discord", "http://discord.gg/abc", "games")
    accounts = (await fetch_user(api, user_id))["linked_accounts"]
    assert [a["linked_account_id"] for a in accounts] == [first, second, third]
    for account in accounts:
        assert set(account) == ACCOUNT_FIELDS
        assert_timestamp(account["connected_at"])
    assert [a["connected_at"] for a in accounts] == sorted(a["connected_at"] for a in accounts)
    assert accounts[0] == {
        "linked_account_id": first,
        "social_network": "telegram",
        "connection_link": "https://t.me/ivan",
        "connected_for": "friends",
        "connected_at": accounts[0]["connected_at"],
    }
    assert accounts[1]["social_network"] == "vk"
    assert accounts[1]["connection_link"] == "https://vk.com/ivan"
    assert accounts[1]["connected_for"] is None
    assert accounts[2]["connection_link"] == "http://discord.gg/abc"


async def test_getting_a_missing_user_is_404_user_not_found(api: TestClient):
    await expect_error(await get_user(api, MISSING_USER), 404, "user_not_found")


async def test_getting_a_temporarily_deleted_user_shows_it_deleted(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    user = await fetch_user(api, user_id)
    assert user["status"] == "deleted"
    assert_timestamp(user["deleted_at"])
    assert user["deleted_at"] >= user["created_at"]


# --- delete-user-temporarily and recovery-user ---


async def test_deleting_a_user_temporarily_is_200_with_null_result(api: TestClient):
    user_id = await create_user(api)
    result = await expect_result(await call(api, "delete_temporarily", {"user_id": user_id}))
    assert result is None
    assert (await fetch_user(api, user_id))["status"] == "deleted"


async def test_deleting_a_deleted_user_temporarily_is_400_user_already_deleted(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    response = await call(api, "delete_temporarily", {"user_id": user_id})
    await expect_error(response, 400, "user_already_deleted")


async def test_deleting_a_missing_user_temporarily_is_404(api: TestClient):
    response = await call(api, "delete_temporarily", {"user_id": MISSING_USER})
    await expect_error(response, 404, "user_not_found")


async def test_recovering_a_deleted_user_is_200_and_makes_it_active(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    result = await expect_result(await call(api, "recovery_user", {"user_id": user_id}))
    assert result is None
    user = await fetch_user(api, user_id)
    assert user["status"] == "active"
    assert user["deleted_at"] is None


async def test_recovering_an_active_user_is_400_user_already_active(api: TestClient):
    user_id = await create_user(api)
    response = await call(api, "recovery_user", {"user_id": user_id})
    await expect_error(response, 400, "user_already_active")


async def test_recovering_a_missing_user_is_404(api: TestClient):
    response = await call(api, "recovery_user", {"user_id": MISSING_USER})
    await expect_error(response, 404, "user_not_found")


async def test_a_recovered_user_keeps_their_linked_accounts(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    await delete_temporarily(api, user_id)
    await expect_result(await call(api, "recovery_user", {"user_id": user_id}))
    accounts = (await fetch_user(api, user_id))["linked_accounts"]
    assert [a["linked_account_id"] for a in accounts] == [account_id]


# --- delete-user-permanently ---


async def test_deleting_an_active_user_permanently_removes_it(api: TestClient, pool):
    user_id = await create_user(api)
    result = await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    assert result is None
    await expect_error(await get_user(api, user_id), 404, "user_not_found")
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_a_temporarily_deleted_user_may_be_deleted_permanently(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    await expect_error(await get_user(api, user_id), 404, "user_not_found")


async def test_permanent_deletion_removes_the_users_linked_accounts(api: TestClient, pool):
    user_id = await create_user(api)
    other = await create_user(api)
    await link(api, user_id, "vk")
    await link(api, user_id, "telegram", "t.me/someone")
    kept = await link(api, other, "vk")
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    rows = await pool.fetch("SELECT linked_account_id FROM linked_accounts")
    assert [str(r["linked_account_id"]) for r in rows] == [kept]


async def test_a_link_is_free_again_after_permanent_deletion(api: TestClient):
    user_id = await create_user(api)
    await link(api, user_id, "vk", "https://vk.com/durov")
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    await link(api, await create_user(api), "vk", "vk.com/durov")


async def test_deleting_a_missing_user_permanently_is_404(api: TestClient):
    response = await call(api, "delete_permanently", {"user_id": MISSING_USER})
    await expect_error(response, 404, "user_not_found")


async def test_deleting_a_user_permanently_twice_is_404_the_second_time(api: TestClient):
    user_id = await create_user(api)
    await expect_result(await call(api, "delete_permanently", {"user_id": user_id}))
    response = await call(api, "delete_permanently", {"user_id": user_id})
    await expect_error(response, 404, "user_not_found")


# --- change-fullname ---


def fullname(user_id: str, first="Petr", last="Ivanov", middle="Petrovich") -> dict:
    return {"user_id": user_id, "firstname": first, "lastname": last, "middlename": middle}


async def test_changing_the_fullname_is_200_and_stores_the_trimmed_names(api: TestClient):
    user_id = await create_user(api)
    body = fullname(user_id, " Petr ", "Ivanov  ", "  Petrovich")
    assert await expect_result(await call(api, "change_fullname", body)) is None
    user = await fetch_user(api, user_id)
    assert (user["firstname"], user["lastname"], user["middlename"]) == (
        "Petr",
        "Ivanov",
        "Petrovich",
    )


async def test_changing_the_fullname_with_an_empty_middlename_stores_null(api: TestClient):
    user_id = await create_user(api)

    async def check(middlename: str | None) -> None:
        body = fullname(user_id, middle=middlename)
        await expect_result(await call(api, "change_fullname", body))
        assert (await fetch_user(api, user_id))["middlename"] is None

    await each(["", "  ", None], check)


async def test_changing_the_fullname_of_a_missing_user_is_404(api: TestClient):
    response = await call(api, "change_fullname", fullname(MISSING_USER))
    await expect_error(response, 404, "user_not_found")


async def test_changing_the_fullname_of_a_deleted_user_is_400_user_deleted(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    response = await call(api, "change_fullname", fullname(user_id))
    await expect_error(response, 400, "user_deleted")


async def test_changing_the_fullname_to_an_empty_firstname_is_422(api: TestClient):
    user_id = await create_user(api)
    await expect_422(await call(api, "change_fullname", fullname(user_id, first="  ")))


# --- change-contacts ---


def contacts(user_id: str, email, phone) -> dict:
    return {"user_id": user_id, "email": email, "phone": phone}


async def test_changing_contacts_is_200_and_replaces_both(api: TestClient):
    user_id = await create_user(api)
    body = contacts(user_id, "New.One@EXAMPLE.org", 79169876543)
    assert await expect_result(await call(api, "change_contacts", body)) is None
    user = await fetch_user(api, user_id)
    assert (user["email"], user["phone"]) == ("New.One@example.org", 79169876543)


async def test_changing_contacts_to_ones_own_contacts_is_fine(api: TestClient):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    body = contacts(user_id, "ivan@example.com", 79161234567)
    await expect_result(await call(api, "change_contacts", body))
    body = contacts(user_id, "IVAN@EXAMPLE.COM", 79161234567)
    await expect_result(await call(api, "change_contacts", body))
    assert (await fetch_user(api, user_id))["email"] == "IVAN@example.com"


async def test_changing_contacts_with_null_clears_that_contact(api: TestClient):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    await expect_result(await call(api, "change_contacts", contacts(user_id, None, 79161234567)))
    user = await fetch_user(api, user_id)
    assert (user["email"], user["phone"]) == (None, 79161234567)
    await expect_result(
        await call(api, "change_contacts", contacts(user_id, "ivan@example.com", None))
    )
    user = await fetch_user(api, user_id)
    assert (user["email"], user["phone"]) == ("ivan@example.com", None)


async def test_a_cleared_contact_is_free_for_another_user(api: TestClient):
    user_id = await create_user(api, email="ivan@example.com", phone=79161234567)
    await expect_result(await call(api, "change_contacts", contacts(user_id, None, 79161234567)))
    await create_user(api, email="ivan@example.com")


async def test_changing_contacts_to_both_null_is_422_invalid_contacts(api: TestClient):
    user_id = await create_user(api)
    response = await call(api, "change_contacts", contacts(user_id, None, None))
    await expect_error(response, 422, "invalid_contacts")


async def test_changing_contacts_to_an_invalid_email_is_422_invalid_contacts(api: TestClient):
    user_id = await create_user(api)
    response = await call(api, "change_contacts", contacts(user_id, "nope", None))
    await expect_error(response, 422, "invalid_contacts")


async def test_changing_contacts_to_an_impossible_phone_is_422_invalid_contacts(api: TestClient):
    user_id = await create_user(api)
    response = await call(api, "change_contacts", contacts(user_id, None, 123))
    await expect_error(response, 422, "invalid_contacts")


async def test_changing_contacts_to_another_users_email_is_409(api: TestClient):
    await create_user(api, email="taken@example.com")
    user_id = await create_user(api)
    for email in ("taken@example.com", "TAKEN@example.COM"):
        response = await call(api, "change_contacts", contacts(user_id, email, None))
        await expect_error(response, 409, "user_already_exists")


async def test_changing_contacts_to_another_users_phone_is_409(api: TestClient):
    await create_user(api, phone=79161234567)
    user_id = await create_user(api)
    response = await call(api, "change_contacts", contacts(user_id, None, 79161234567))
    await expect_error(response, 409, "user_already_exists")


async def test_changing_contacts_to_a_deleted_users_contact_is_409(api: TestClient):
    holder = await create_user(api, email="held@example.com", phone=79161234567)
    await delete_temporarily(api, holder)
    user_id = await create_user(api)
    response = await call(api, "change_contacts", contacts(user_id, "held@example.com", None))
    await expect_error(response, 409, "user_already_exists")
    response = await call(api, "change_contacts", contacts(user_id, None, 79161234567))
    await expect_error(response, 409, "user_already_exists")


async def test_changing_contacts_of_a_missing_user_is_404(api: TestClient):
    response = await call(api, "change_contacts", contacts(MISSING_USER, "a@example.com", None))
    await expect_error(response, 404, "user_not_found")


async def test_changing_contacts_of_a_deleted_user_is_400_user_deleted(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    response = await call(api, "change_contacts", contacts(user_id, f"x{unique()}@ex.com", None))
    await expect_error(response, 400, "user_deleted")
