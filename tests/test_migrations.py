"""Every migration rolls back cleanly and applies again."""

import psycopg

from usersvc.db.migrations import apply_migrations, rollback_migrations
from usersvc.db.queries import MIGRATIONS_DIR

SCHEMA = {"users", "linked_accounts", "outbox", "idempotency_keys"}
# Every migration's id (file name without .sql), in the order they apply.
MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql")
    for p in MIGRATIONS_DIR.glob("*.sql")
    if not p.name.endswith(".rollback.sql")
)
MIGRATIONS = len(MIGRATION_IDS)


def _tables(database_url: str) -> set[str]:
    """The project's tables (yoyo's own bookkeeping tables left out)."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'"
        )
        return {row[0] for row in rows}


def test_rolling_back_every_migration_leaves_no_table_and_they_apply_again(
    database_url: str,
) -> None:
    assert _tables(database_url) == SCHEMA
    assert rollback_migrations(database_url, count=MIGRATIONS) == MIGRATIONS
    assert _tables(database_url) == set()
    assert apply_migrations(database_url) == MIGRATIONS
    assert _tables(database_url) == SCHEMA
