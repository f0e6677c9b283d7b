"""Every migration rolls back cleanly and applies again."""

import psycopg

from usersvc.db.migrations import apply_migrations, rollback_migrations

SCHEMA = {"users", "linked_accounts", "outbox"}


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
    assert rollback_migrations(database_url, count=2) == 2
    assert _tables(database_url) == set()
    assert apply_migrations(database_url) == 2
    assert _tables(database_url) == SCHEMA
