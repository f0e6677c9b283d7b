"""A PostgreSQL server of these tests' own (initdb, pg_ctl), at its default log
settings: its log file is read, and its roles are made and dropped without touching the
machine's server."""

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from tests.reliability.private_postgres import PrivatePostgres
from usersvc.db.migrations import apply_migrations

# The superuser (the tests' own connections) as before; every other role by password, as
# in production (roles.sql's passwords are checked).
HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


@pytest.fixture(scope="session")
def private_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(hba=HBA)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def new_database(server: PrivatePostgres, migrate: bool = True) -> str:
    """A new database on the server (migrated as its superuser): its name."""
    name = f"usersvc_{uuid4().hex[:12]}"
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if migrate:
        apply_migrations(server.url_for(name))
    return name


@pytest.fixture
def private_database(private_server: PrivatePostgres) -> str:
    """A migrated database of the private server: its superuser's URL."""
    return private_server.url_for(new_database(private_server))
