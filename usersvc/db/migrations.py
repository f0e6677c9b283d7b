"""Applies the yoyo migrations of ``migrations/`` (plain SQL, each with a rollback)."""

import logging
from functools import cache
from typing import Any

from yoyo import read_migrations
from yoyo.connections import default_migration_table, get_backend_class, parse_uri

from usersvc.db.queries import MIGRATIONS_DIR

log = logging.getLogger(__name__)


def yoyo_url(database_url: str) -> str:
    """yoyo talks to PostgreSQL through psycopg 3; asyncpg's URL names no driver."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    return database_url if sep else f"postgresql+psycopg://{database_url}"


@cache
def _quiet(backend_class: type) -> type:
    """yoyo's backend, without the two statements it sends at every start only to see
    them fail (each an ERROR in PostgreSQL's log): ``CREATE TABLE yoyo_lock`` when the
    table exists (here ``IF NOT EXISTS``), and the probe of whether DDL is transactional
    (dropping a table it rolled back; in PostgreSQL it is)."""

    class Quiet(backend_class):  # type: ignore[misc, valid-type]
        create_lock_table_sql = backend_class.create_lock_table_sql.replace(
            "CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1
        )

        def _check_transactional_ddl(self) -> bool:
            return True

    return Quiet


def get_backend(uri: str) -> Any:
    """``yoyo.get_backend``, with its backend :func:`_quiet`."""
    parsed = parse_uri(uri)
    backend = _quiet(get_backend_class(parsed.scheme.lower()))(parsed, default_migration_table)
    backend.init_database()
    return backend


def apply_migrations(database_url: str) -> int:
    """Apply what is pending (under yoyo's lock, so replicas may start together)."""
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    for migration in pending:
        log.info("migration %s applied", migration.id)
    return len(pending)


def rollback_migrations(database_url: str, count: int = 1) -> int:
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            applied = backend.to_rollback(migrations)[:count]
            backend.rollback_migrations(applied)
    finally:
        backend.connection.close()
    return len(applied)
