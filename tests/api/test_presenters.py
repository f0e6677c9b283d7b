"""A read presents the user straight from its row (``present_row``); commands present
the domain record (``present_user``). Both must show every user the same, byte for byte."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from hypothesis import given
from hypothesis import strategies as st

from tests.api.support import create_user, delete_temporarily, fetch_user, link
from usersvc.db.queries import load
from usersvc.db.users import Users, _user
from usersvc.domain.model import SocialNetwork, UserStatus
from usersvc.http.presenters import present_row, present_user
from usersvc.serialization import dumps

moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
texts = st.text(max_size=20)

accounts = st.fixed_dictionaries(
    {
        "linked_account_id": st.uuids(),
        "user_id": st.uuids(),
        "social_network": st.sampled_from([network.value for network in SocialNetwork]),
        "connection_link": texts,
        "link_key": texts,
        "connected_for": st.none() | texts,
        "connected_at": moments,
    }
)

rows = st.fixed_dictionaries(
    {
        "user_id": st.uuids(),
        "firstname": texts,
        "lastname": texts,
        "middlename": st.none() | texts,
        "email": st.none() | texts,
        "phone": st.none() | st.integers(1, 10**15 - 1),
        "status": st.sampled_from([status.value for status in UserStatus]),
        "created_at": moments,
        "deleted_at": st.none() | moments,
        "version": st.integers(1, 2**31 - 1),
        # The view's ARRAY(...) is never null, but a row may come from elsewhere.
        "linked_accounts": st.none() | st.lists(accounts, max_size=3),
    }
)


@given(row=rows)
def test_a_row_is_presented_as_its_record_is(row: dict[str, Any]) -> None:
    ours, theirs = present_row(row), present_user(_user(row))
    assert ours == theirs
    assert dumps(ours) == dumps(theirs)


async def test_stored_users_are_presented_from_their_rows_as_from_their_records(
    api, pool: asyncpg.Pool
) -> None:
    """Real rows (asyncpg records, linked accounts as composite values), every shape a
    user takes: no accounts, several, temporarily deleted."""
    plain = await create_user(api)
    linked = await create_user(api)
    await link(api, linked, "vk")
    await link(api, linked, "telegram", "https://t.me/someone", connected_for=None)
    deleted = await create_user(api)
    await delete_temporarily(api, deleted)
    users = Users(pool, load())
    for user_id in (plain, linked, deleted):
        row = await users.get_row(UUID(user_id))
        assert row is not None
        assert dumps(present_row(row)) == dumps(present_user(_user(row)))
        assert dumps(await fetch_user(api, user_id)) == dumps(present_row(row))
