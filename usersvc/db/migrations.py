"""Applies the yoyo migrations of ``migrations/`` (plain SQL, each with a rollback)."""

import functools
import logging
from functools import cache
from typing import Any

import psycopg
from psycopg import sql
from yoyo import read_migrations
from yoyo.connections import default_migration_table, get_backend_class, parse_uri

from usersvc.db.queries import MIGRATIONS_DIR

log = logging.getLogger(__name__)


class MigrationsNotAllowedError(PermissionError):
    """Migrations are pending and the URL's role may not apply them (a runtime role)."""


def yoyo_url(database_url: str) -> str:
    """yoyo talks to PostgreSQL through psycopg 3; asyncpg's URL names no driver."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    return database_url if sep else f"postgresql+psycopg://{database_url}"


def pending_migrations(database_url: str) -> int:
    """How many migrations are not applied, read without yoyo. Raises
    :class:`MigrationsNotAllowedError` when some are and the role may not create in its
    schema: a runtime role, which yoyo would only have fail at length (it tries to
    create its tables, then waits 10 s for a lock it cannot take)."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT to_regclass(%s) IS NOT NULL, current_user,"
            " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)",
            (default_migration_table,),
        ).fetchone()
        assert row is not None
        recorded, role, may_create = row
        applied: set[str] = set()
        if recorded:
            query = sql.SQL("SELECT migration_hash FROM {}").format(
                sql.Identifier(default_migration_table)
            )
            applied = {hash_ for (hash_,) in connection.execute(query)}
    pending = sum(1 for migration in migrations if migration.hash not in applied)
    if pending and not may_create:
        raise MigrationsNotAllowedError(
            f"{pending} migration(s) pending, and role {role!r} may not change the schema:"
            " apply them as the schema's owner (usersvc migrate with"
            " USERSVC_MIGRATE_DATABASE_URL)"
        )
    return pending


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
    """Apply what is pending (under yoyo's lock, so replicas may start together).

    With nothing pending yoyo is not run at all: a start costs one query, which a role
    that may not change the schema may run too, and leaves nothing in the server's log
    (yoyo's start logs two errors there: its lock table exists already, and its probe
    of transactional DDL drops a table that is not there). Raises
    :class:`MigrationsNotAllowedError` when migrations are pending and the role may not
    apply them."""
    if not pending_migrations(database_url):
        return 0
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    except psycopg.errors.InsufficientPrivilege as error:
        raise MigrationsNotAllowedError(
            f"this role may not apply the pending migrations: {str(error).splitlines()[0]}"
        ) from None
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
