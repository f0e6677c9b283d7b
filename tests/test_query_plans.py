"""Each look-up and listing query is served by an index (never a scan of every user).

Sequential scans are priced out for the check: on a table of a few rows PostgreSQL
rightly prefers one, so what is checked is that an index CAN serve the query."""

import asyncpg
import pytest

from usersvc.db.queries import Queries

PLANS = {
    "find_user_by_email": (("ivan@example.com",), "users_email_key"),
    "find_user_by_phone": ((79161234567,), "users_phone_key"),
    # Many ids at once: each one looked up by the primary key, in the order asked.
    "load_users": (
        ("{3fa85f64-5717-4562-b3fc-2c963f66afa6,6f1c1e4b-58c4-4b8e-9c43-1f0f0a9a7d21}",),
        "users_pkey",
    ),
    "find_user_by_linked_account": (("vk", "vk.com/durov"), "users_pkey"),
    "list_users": (("-infinity", "00000000-0000-0000-0000-000000000000", 21), "users_created_at"),
    "list_users_by_status": (
        ("active", "-infinity", "00000000-0000-0000-0000-000000000000", 21),
        # Either serves it: by status first when that status is rare, else by time.
        ("users_status_created_at", "users_created_at"),
    ),
}


# The idempotency keys' queries: by primary key, the clean-up by age.
KEY_PLANS = {
    "claim_idempotency_key": (
        ("create_user", "k", "\\x00"),
        "Conflict Arbiter Indexes: idempotency_keys_pkey",
    ),
    "idempotent_response": (("create_user", "k"), "Index Scan using idempotency_keys_pkey"),
    "store_idempotent_response": (
        ("create_user", "k", 201, "\\x00", '"1"'),
        "Index Scan using idempotency_keys_pkey",
    ),
    "delete_expired_idempotency_keys": ((100,), "Index Scan on idempotency_keys_created_at"),
}


async def plan(
    connection: asyncpg.Connection, queries: Queries, name: str, plans: dict = PLANS
) -> str:
    args, _ = plans[name]
    # Literal arguments: EXPLAIN of a prepared statement with its parameters bound.
    await connection.execute(f"PREPARE q AS {queries[name]}")
    try:
        listed = ", ".join(f"'{a}'" if isinstance(a, str) else str(a) for a in args)
        rows = await connection.fetch(f"EXPLAIN EXECUTE q({listed})")
    finally:
        await connection.execute("DEALLOCATE q")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("name", sorted(PLANS))
async def test_a_look_up_or_listing_query_reads_the_users_through_its_index(
    pool: asyncpg.Pool, queries: Queries, name: str
):
    async with pool.acquire() as connection:
        await connection.execute("SET enable_seqscan = off")
        shown = await plan(connection, queries, name)
    indexes = PLANS[name][1]
    indexes = (indexes,) if isinstance(indexes, str) else indexes
    assert any(f"Index Scan using {index} on users u" in shown for index in indexes), shown
    assert "Seq Scan on users" not in shown, shown
    assert "Sort" not in shown.split("SubPlan")[0], shown  # the index gives the order


@pytest.mark.parametrize("name", sorted(KEY_PLANS))
async def test_an_idempotency_key_query_reads_the_keys_through_an_index(
    pool: asyncpg.Pool, queries: Queries, name: str
):
    async with pool.acquire() as connection:
        await connection.execute("SET enable_seqscan = off")
        shown = await plan(connection, queries, name, KEY_PLANS)
    assert KEY_PLANS[name][1] in shown, shown
    assert "Seq Scan" not in shown, shown


async def test_the_look_up_by_linked_account_finds_the_account_by_its_link_key_index(
    pool: asyncpg.Pool, queries: Queries
):
    async with pool.acquire() as connection:
        await connection.execute("SET enable_seqscan = off")
        shown = await plan(connection, queries, "find_user_by_linked_account")
    assert "Index Scan using linked_accounts_link_key_key on linked_accounts la" in shown, shown
    assert "Seq Scan" not in shown, shown
