"""Applies the yoyo migrations of ``migrations/`` (plain SQL, each with a rollback)."""

import functools
import logging

from yoyo import get_backend, read_migrations

from usersvc.db.queries import MIGRATIONS_DIR

log = logging.getLogger(__name__)


def yoyo_url(database_url: str) -> str:
    """yoyo talks to PostgreSQL through psycopg 3; asyncpg's URL names no driver."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    return database_url if sep else f"postgresql+psycopg://{database_url}"


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


@functools.cache
def migration_ids() -> tuple[str, ...]:
    """The ids of every migration this code needs (yoyo's, the file names)."""
    return tuple(migration.id for migration in read_migrations(str(MIGRATIONS_DIR)))


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
