"""Each look-up and listing query is served by an index (never a scan of every user).

Sequential scans are priced out for the first checks: on a table of a few rows
PostgreSQL rightly prefers one, so what is checked is that an index CAN serve the
query. The listing queries are also checked on a table of 150,000 users, where the
planner weighs its choices as it does in production: the plan PostgreSQL keeps for a
prepared statement (its generic plan) must read the listing's own index, cost little
(far below jit_above_cost, so no page is JIT-compiled) and be the one PostgreSQL uses."""

import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import psycopg
import pytest

from tests.conftest import copy_of
from usersvc.db.pool import create_pool
from usersvc.db.queries import Queries
from usersvc.db.users import FIRST_POSITION, LISTING_BOUND, LISTINGS, Users
from usersvc.http.schemas import UsersQuery

FIRST_PAGE = ("-infinity", "00000000-0000-0000-0000-000000000000", 21)
PLANS = {
    "find_user_by_email": (("ivan@example.com",), "users_email_key"),
    "find_user_by_phone": ((79161234567,), "users_phone_key"),
    # Many ids at once: each one looked up by the primary key, in the order asked.
    "load_users": (
        ("{3fa85f64-5717-4562-b3fc-2c963f66afa6,6f1c1e4b-58c4-4b8e-9c43-1f0f0a9a7d21}",),
        "users_pkey",
    ),
    "find_user_by_linked_account": (("vk", "vk.com/durov"), "users_pkey"),
    "list_users": (FIRST_PAGE, "users_created_at"),
    "list_active_users": (FIRST_PAGE, "users_active_created_at"),
    "list_deleted_users": (FIRST_PAGE, "users_deleted_created_at"),
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


# --- the listings on a table the planner takes seriously ---

USERS = 150_000
# Users a minute apart, one in twelve temporarily deleted; every third with a linked
# account (each page reads them).
SEED = f"""
INSERT INTO users (user_id, firstname, lastname, email, status, created_at, deleted_at)
SELECT gen_random_uuid(), 'Ivan', 'Petrov', 'user' || n || '@example.com',
       CASE WHEN n % 12 = 0 THEN 'deleted' ELSE 'active' END,
       timestamptz '2024-01-01' + n * interval '1 minute',
       CASE WHEN n % 12 = 0 THEN timestamptz '2025-01-01' END
FROM generate_series(1, {USERS}) AS n;
INSERT INTO linked_accounts
    (linked_account_id, user_id, social_network, connection_link, link_key, connected_at)
SELECT gen_random_uuid(), user_id, 'vk', 'https://vk.com/' || user_id, 'vk.com/' || user_id,
       created_at
FROM users
WHERE email LIKE '%3@%' OR email LIKE '%6@%' OR email LIKE '%9@%';
"""
LISTING_INDEXES = {
    "list_users": "users_created_at",
    "list_active_users": "users_active_created_at",
    "list_deleted_users": "users_deleted_created_at",
}


@pytest.fixture(scope="module")
def many_users(template_database: str) -> Iterator[str]:
    with copy_of(template_database, "usersvc_test_plans") as url:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(SEED)
            connection.execute("VACUUM ANALYZE users, linked_accounts")
        yield url


@pytest.fixture
async def connection(many_users: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(many_users)
    try:
        yield connection
    finally:
        await connection.close()


def _nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_every_listing_the_service_runs_is_checked_here() -> None:
    assert set(LISTINGS.values()) == set(LISTING_INDEXES)


@pytest.mark.parametrize("name", sorted(LISTING_INDEXES))
async def test_the_generic_plan_of_a_listing_reads_its_index_costs_a_page_and_is_used(
    connection: asyncpg.Connection, queries: Queries, name: str
):
    # Pages at several positions, as a pool connection runs them: past the five custom
    # plans PostgreSQL makes first, it takes the generic plan when that is no dearer.
    statement = await connection.prepare(queries[name])
    positions = [FIRST_POSITION]
    for _ in range(8):
        page = await statement.fetch(*positions[-1], 21)
        assert len(page) == 21
        positions.append((page[-1]["created_at"], page[-1]["user_id"]))
    used = await connection.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        queries[name],
    )
    assert used["generic_plans"] > 0, f"PostgreSQL planned every page anew: {dict(used)}"

    await connection.execute("SET plan_cache_mode = force_generic_plan")
    await connection.execute(f"PREPARE q AS {queries[name]}")
    shown = await connection.fetchval(
        "EXPLAIN (FORMAT JSON) EXECUTE q('2024-03-01', '00000000-0000-0000-0000-000000000000', 21)"
    )
    plan = json.loads(shown)[0]["Plan"]
    jit_above_cost = float(await connection.fetchval("SHOW jit_above_cost"))
    assert plan["Total Cost"] < jit_above_cost / 100, json.dumps(plan, indent=1)
    outer = [n for n in _nodes(plan) if n.get("Parent Relationship") != "SubPlan"]
    scans = [n for n in outer if n.get("Relation Name") == "users"]
    assert [n["Node Type"] for n in scans] == ["Index Scan"], json.dumps(plan, indent=1)
    assert scans[0]["Index Name"] == LISTING_INDEXES[name]
    assert "Filter" not in scans[0], scans[0]  # the index holds exactly the rows listed
    assert not any(n["Node Type"] == "Sort" for n in outer)


async def test_a_listing_returns_the_largest_page_the_api_asks_for_and_refuses_more(
    many_users: str, queries: Queries
):
    largest = max(v.max for v in UsersQuery().fields["limit"].validators if v.max is not None)
    assert largest + 1 == LISTING_BOUND  # a page, and one more to tell whether more follow
    pool = await create_pool(many_users, min_size=1, max_size=1)
    try:
        users = Users(pool, queries)
        for listing in LISTINGS:
            assert len(await users.page(listing, None, LISTING_BOUND)) == LISTING_BOUND
        with pytest.raises(ValueError, match="at most"):
            await users.page(None, None, LISTING_BOUND + 1)
    finally:
        await pool.close()


async def test_the_look_up_by_linked_account_finds_the_account_by_its_link_key_index(
    pool: asyncpg.Pool, queries: Queries
):
    async with pool.acquire() as connection:
        await connection.execute("SET enable_seqscan = off")
        shown = await plan(connection, queries, "find_user_by_linked_account")
    assert "Index Scan using linked_accounts_link_key_key on linked_accounts la" in shown, shown
    assert "Seq Scan" not in shown, shown
