"""§2 and §3 for linked accounts: link, unlink, change the connection reason."""

from aiohttp.test_utils import TestClient

from tests.api.support import (
    MISSING_USER,
    assert_uuid,
    call,
    create_user,
    delete_temporarily,
    each,
    expect_422,
    expect_error,
    expect_result,
    fetch_user,
    link,
)


def link_body(user_id: str, network="vk", connection_link="https://vk.com/durov", reason="work"):
    return {
        "user_id": user_id,
        "social_network": network,
        "connection_link": connection_link,
        "connected_for": reason,
    }


# --- link-social-network ---


async def test_linking_an_account_is_201_with_the_new_linked_account_id(api: TestClient):
    user_id = await create_user(api)
    account_id = await expect_result(await call(api, "link", link_body(user_id)), 201)
    assert_uuid(account_id)
    (account,) = (await fetch_user(api, user_id))["linked_accounts"]
    assert account["linked_account_id"] == account_id
    assert account["social_network"] == "vk"
    assert account["connection_link"] == "https://vk.com/durov"
    assert account["connected_for"] == "work"


STORED_FORMS = [
    ("vk", "vk.com/durov1", "https://vk.com/durov1"),
    ("vk", "  vk.com/durov2  ", "https://vk.com/durov2"),
    ("vk", "http://vk.com/durov3", "http://vk.com/durov3"),
    ("vk", " https://VK.com/Durov/?a=1#x ", "https://VK.com/Durov/?a=1#x"),
    ("vk", "m.vk.com/durov4", "https://m.vk.com/durov4"),
    ("vk", "vk.ru/durov5", "https://vk.ru/durov5"),
    ("vk", "vkontakte.ru/durov6", "https://vkontakte.ru/durov6"),
    ("telegram", "t.me/durov7", "https://t.me/durov7"),
    ("telegram", "telegram.me/durov8", "https://telegram.me/durov8"),
    ("telegram", "https://telegram.org/durov9", "https://telegram.org/durov9"),
    ("discord", "discord.com/users/1", "https://discord.com/users/1"),
    ("discord", "discord.gg/abc", "https://discord.gg/abc"),
    ("discord", "discordapp.com/users/1", "https://discordapp.com/users/1"),
    ("tiktok", "www.tiktok.com/@durov10", "https://www.tiktok.com/@durov10"),
    ("instagram", "instagram.com/durov11", "https://instagram.com/durov11"),
    ("instagram", "instagr.am/durov12", "https://instagr.am/durov12"),
    ("twitter", "twitter.com/durov13", "https://twitter.com/durov13"),
    ("twitter", "x.com/durov14", "https://x.com/durov14"),
    ("twitter", "HTTPS://X.com/durov15", "HTTPS://X.com/durov15"),
]


async def test_a_link_is_stored_trimmed_and_with_https_when_it_had_no_scheme(api: TestClient):
    async def check(case: tuple[str, str, str]) -> None:
        network, sent, stored = case
        user_id = await create_user(api)
        await expect_result(await call(api, "link", link_body(user_id, network, sent)), 201)
        (account,) = (await fetch_user(api, user_id))["linked_accounts"]
        assert account["connection_link"] == stored

    await each(STORED_FORMS, check)


async def test_a_null_connected_for_is_fine(api: TestClient):
    user_id = await create_user(api)
    await link(api, user_id, connected_for=None)
    (account,) = (await fetch_user(api, user_id))["linked_accounts"]
    assert account["connected_for"] is None


async def test_connected_for_of_500_characters_is_fine_and_501_is_422(api: TestClient):
    user_id = await create_user(api)
    await link(api, user_id, "vk", connected_for="x" * 500)
    body = link_body(user_id, "telegram", "t.me/durov", "x" * 501)
    await expect_422(await call(api, "link", body))


LOOK_ALIKES = [
    ("vk", "https://vk.com.evil.com/durov"),
    ("vk", "https://evilvk.com/durov"),
    ("vk", "notvk.com/durov"),
    ("vk", "https://vk.co/durov"),
    ("vk", "https://vkcom/durov"),
    ("vk", "https://evil.com/vk.com/durov"),
    ("vk", "https://evil.com/?u=https://vk.com/durov"),
    ("vk", "https://evil.com#vk.com"),
    ("vk", "https://vk.com@evil.com/durov"),
    ("vk", "https://t.me/durov"),
    ("telegram", "https://vk.com/durov"),
    ("telegram", "https://t.me.evil.org/durov"),
    ("telegram", "https://at.me/durov"),
    ("discord", "https://discord.com-login.ru/x"),
    ("tiktok", "https://tiktok.co/@durov"),
    ("instagram", "https://instagram.com.ru/durov"),
    ("twitter", "https://xx.com/durov"),
    ("twitter", "https://twitter.community/durov"),
]


async def test_a_link_not_of_the_social_network_is_422_link_not_of_social_network(
    api: TestClient, tables
):
    user_id = await create_user(api)
    before = await tables()

    async def check(case: tuple[str, str]) -> None:
        network, connection_link = case
        response = await call(api, "link", link_body(user_id, network, connection_link))
        await expect_error(response, 422, "link_not_of_social_network")

    await each(LOOK_ALIKES, check)
    assert await tables() == before


async def test_a_link_that_is_not_http_or_is_empty_is_422(api: TestClient, tables):
    user_id = await create_user(api)
    before = await tables()

    async def check(connection_link: str) -> None:
        response = await call(api, "link", link_body(user_id, "vk", connection_link))
        await expect_422(response, {"link_not_of_social_network"})

    links = ["ftp://vk.com/durov", "javascript://vk.com/durov", "file:///vk.com/durov", "", "   "]
    await each(links, check)
    assert await tables() == before


async def test_a_link_over_2048_characters_is_422(api: TestClient):
    user_id = await create_user(api)
    long_link = "https://vk.com/" + "a" * 2040
    assert len(long_link) > 2048
    await expect_422(await call(api, "link", link_body(user_id, "vk", long_link)))


async def test_a_link_of_2048_characters_is_fine(api: TestClient):
    user_id = await create_user(api)
    exact = "https://vk.com/" + "a" * (2048 - len("https://vk.com/"))
    await link(api, user_id, "vk", exact)


async def test_a_second_account_of_the_same_network_is_409(api: TestClient):
    user_id = await create_user(api)
    await link(api, user_id, "vk", "vk.com/one")
    response = await call(api, "link", link_body(user_id, "vk", "vk.com/two"))
    await expect_error(response, 409, "linked_account_already_exists")


async def test_accounts_of_different_networks_are_fine(api: TestClient):
    user_id = await create_user(api)
    for network, url in [
        ("vk", "vk.com/a"),
        ("telegram", "t.me/a"),
        ("discord", "discord.gg/a"),
        ("tiktok", "tiktok.com/@a"),
        ("instagram", "instagram.com/a"),
        ("twitter", "x.com/a"),
    ]:
        await link(api, user_id, network, url)
    assert len((await fetch_user(api, user_id))["linked_accounts"]) == 6


async def test_the_same_link_again_for_the_same_user_is_409(api: TestClient):
    user_id = await create_user(api)
    await link(api, user_id, "vk", "vk.com/durov")
    response = await call(api, "link", link_body(user_id, "vk", "vk.com/durov"))
    await expect_error(response, 409, "linked_account_already_exists")


SAME_LINKS = [
    "https://vk.com/durov",
    "http://vk.com/durov",
    "vk.com/durov",
    "https://www.vk.com/durov",
    "www.vk.com/durov",
    "https://VK.COM/durov",
    "WWW.Vk.Com/durov",
    "https://vk.com/durov/",
    "https://vk.com/durov?utm_source=x",
    "https://vk.com/durov#wall",
    "https://vk.com/durov/?a=b",
    "HTTP://WWW.VK.COM/durov/?a=b#c",
    "  vk.com/durov  ",
]


async def test_the_same_link_normalised_by_another_user_is_409(api: TestClient, tables):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/durov")
    other = await create_user(api)
    before = await tables()

    async def check(same: str) -> None:
        response = await call(api, "link", link_body(other, "vk", same))
        await expect_error(response, 409, "linked_account_already_exists")

    await each(SAME_LINKS, check)
    assert await tables() == before


async def test_a_link_first_sent_in_odd_form_blocks_the_plain_form(api: TestClient):
    holder = await create_user(api)
    await link(api, holder, "vk", "HTTP://www.VK.com/durov/?from=x#top")
    other = await create_user(api)
    response = await call(api, "link", link_body(other, "vk", "vk.com/durov"))
    await expect_error(response, 409, "linked_account_already_exists")


async def test_the_same_link_of_a_temporarily_deleted_user_is_409(api: TestClient):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/durov")
    await delete_temporarily(api, holder)
    other = await create_user(api)
    response = await call(api, "link", link_body(other, "vk", "http://www.vk.com/durov/"))
    await expect_error(response, 409, "linked_account_already_exists")


async def test_a_different_path_is_a_different_link(api: TestClient):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/durov")
    other = await create_user(api)
    await link(api, other, "vk", "https://vk.com/durov2")


async def test_a_link_differing_only_in_path_case_is_a_different_link(api: TestClient):
    holder = await create_user(api)
    await link(api, holder, "vk", "https://vk.com/durov")
    other = await create_user(api)
    await link(api, other, "vk", "https://vk.com/Durov")


async def test_an_unlinked_link_may_be_linked_by_another_user(api: TestClient):
    holder = await create_user(api)
    account_id = await link(api, holder, "vk", "https://vk.com/durov")
    body = {"user_id": holder, "linked_account_id": account_id}
    await expect_result(await call(api, "unlink", body))
    await link(api, await create_user(api), "vk", "vk.com/durov")


async def test_linking_for_a_missing_user_is_404(api: TestClient):
    response = await call(api, "link", link_body(MISSING_USER))
    await expect_error(response, 404, "user_not_found")


async def test_linking_for_a_deleted_user_is_400_user_deleted(api: TestClient):
    user_id = await create_user(api)
    await delete_temporarily(api, user_id)
    response = await call(api, "link", link_body(user_id))
    await expect_error(response, 400, "user_deleted")


# --- unlink-social-network ---


async def test_unlinking_an_account_is_200_and_removes_it(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "vk")
    kept = await link(api, user_id, "telegram", "t.me/kept")
    body = {"user_id": user_id, "linked_account_id": account_id}
    assert await expect_result(await call(api, "unlink", body)) is None
    accounts = (await fetch_user(api, user_id))["linked_accounts"]
    assert [a["linked_account_id"] for a in accounts] == [kept]


async def test_after_unlinking_the_network_may_be_linked_again(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id, "vk", "vk.com/old")
    await expect_result(
        await call(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
    )
    await link(api, user_id, "vk", "vk.com/new")


async def test_unlinking_another_users_account_is_404_linked_account_not_found(
    api: TestClient, tables
):
    owner = await create_user(api)
    account_id = await link(api, owner)
    other = await create_user(api)
    before = await tables()
    response = await call(api, "unlink", {"user_id": other, "linked_account_id": account_id})
    await expect_error(response, 404, "linked_account_not_found")
    assert await tables() == before


async def test_unlinking_an_unknown_account_is_404_linked_account_not_found(api: TestClient):
    user_id = await create_user(api)
    response = await call(api, "unlink", {"user_id": user_id, "linked_account_id": MISSING_USER})
    await expect_error(response, 404, "linked_account_not_found")


async def test_unlinking_twice_is_404_linked_account_not_found(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    body = {"user_id": user_id, "linked_account_id": account_id}
    await expect_result(await call(api, "unlink", body))
    await expect_error(await call(api, "unlink", body), 404, "linked_account_not_found")


async def test_unlinking_for_a_missing_user_is_404_user_not_found(api: TestClient):
    response = await call(
        api, "unlink", {"user_id": MISSING_USER, "linked_account_id": MISSING_USER}
    )
    await expect_error(response, 404, "user_not_found")


async def test_unlinking_for_a_deleted_user_is_400_user_deleted(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    await delete_temporarily(api, user_id)
    response = await call(api, "unlink", {"user_id": user_id, "linked_account_id": account_id})
    await expect_error(response, 400, "user_deleted")


# --- change-social-network-connection-reason ---


def reason_body(user_id: str, account_id: str, reason) -> dict:
    return {"user_id": user_id, "linked_account_id": account_id, "reason": reason}


async def test_changing_the_connection_reason_is_200_and_stores_it(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id, connected_for="work")
    body = reason_body(user_id, account_id, "friends")
    assert await expect_result(await call(api, "change_reason", body)) is None
    (account,) = (await fetch_user(api, user_id))["linked_accounts"]
    assert account["connected_for"] == "friends"


async def test_changing_the_connection_reason_to_null_clears_it(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id, connected_for="work")
    await expect_result(await call(api, "change_reason", reason_body(user_id, account_id, None)))
    (account,) = (await fetch_user(api, user_id))["linked_accounts"]
    assert account["connected_for"] is None


async def test_a_connection_reason_over_500_characters_is_422(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    body = reason_body(user_id, account_id, "x" * 501)
    await expect_422(await call(api, "change_reason", body))


async def test_changing_the_reason_of_another_users_account_is_404_linked_account_not_found(
    api: TestClient, tables
):
    owner = await create_user(api)
    account_id = await link(api, owner)
    other = await create_user(api)
    before = await tables()
    response = await call(api, "change_reason", reason_body(other, account_id, "mine"))
    await expect_error(response, 404, "linked_account_not_found")
    assert await tables() == before


async def test_changing_the_reason_of_an_unknown_account_is_404_linked_account_not_found(
    api: TestClient,
):
    user_id = await create_user(api)
    response = await call(api, "change_reason", reason_body(user_id, MISSING_USER, "x"))
    await expect_error(response, 404, "linked_account_not_found")


async def test_changing_the_reason_for_a_missing_user_is_404_user_not_found(api: TestClient):
    response = await call(api, "change_reason", reason_body(MISSING_USER, MISSING_USER, "x"))
    await expect_error(response, 404, "user_not_found")


async def test_changing_the_reason_for_a_deleted_user_is_400_user_deleted(api: TestClient):
    user_id = await create_user(api)
    account_id = await link(api, user_id)
    await delete_temporarily(api, user_id)
    response = await call(api, "change_reason", reason_body(user_id, account_id, "x"))
    await expect_error(response, 400, "user_deleted")
