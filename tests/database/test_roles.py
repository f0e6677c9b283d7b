"""Two database roles (deploy/postgres/roles.sql, run by compose's init-roles.sh): the
schema's owner runs the migrations; the runtime role, which the service and its relay
run as, reads and writes rows and cannot change the schema."""

import asyncio
import logging
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import aiormq
import asyncpg
import psycopg
import pytest
from attrs import frozen

from tests.api.support import call as call_api
from tests.api.support import create_user, expect_error, expect_result, fetch_user, link, user_body
from tests.database.conftest import new_database
from tests.relay.support import FAST, Consumer, every_event, succeed
from tests.relay.support import create_user as new_user
from tests.reliability.private_postgres import PrivatePostgres, _binary
from tests.telemetry.processes import environment, free_port, request, stop, usersvc, wait_ready
from usersvc.amqp import Relay, RelaySettings
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.users import Users
from usersvc.http.app import create_app

REPO = Path(__file__).resolve().parents[2]
INIT_ROLES = REPO / "deploy" / "postgres" / "init-roles.sh"
ROLES_SQL = REPO / "deploy" / "postgres" / "roles.sql"
OWNER, APP = "usersvc_owner", "usersvc_app"  # init-roles.sh's names, as compose's
# One password each for the session: the roles are the whole private server's, and every
# database's run of the script sets them again.
PASSWORDS = {OWNER: secrets.token_hex(16), APP: secrets.token_hex(16)}


@frozen
class Roles:
    database: str
    owner_url: str
    app_url: str


def run_init_roles(server: PrivatePostgres, database: str) -> subprocess.CompletedProcess[str]:
    """compose's init script, as the postgres image runs it at first boot (its psql
    reaching the server as the superuser)."""
    psql_dir = str(Path(_binary("psql")).parent)
    env = {
        **os.environ,
        "PATH": f"{psql_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": database,
        "POSTGRES_OWNER_PASSWORD": PASSWORDS[OWNER],
        "POSTGRES_APP_PASSWORD": PASSWORDS[APP],
        "USERSVC_ROLES_SQL": str(ROLES_SQL),
    }
    return subprocess.run(
        ["sh", str(INIT_ROLES)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _url(server: PrivatePostgres, role: str, database: str) -> str:
    return f"postgresql://{role}:{quote(PASSWORDS[role])}@127.0.0.1:{server.port}/{database}"


@pytest.fixture
def roles(private_server: PrivatePostgres) -> Roles:
    """A new database with both roles, not migrated."""
    database = new_database(private_server, migrate=False)
    ran = run_init_roles(private_server, database)
    assert ran.returncode == 0, ran.stderr
    return Roles(
        database, _url(private_server, OWNER, database), _url(private_server, APP, database)
    )


@pytest.fixture
def migrated(roles: Roles) -> Roles:
    """Both roles, migrated by the owner."""
    assert apply_migrations(roles.owner_url) > 0
    return roles


# --- what each role may do --------------------------------------------------------------

SCHEMA_CHANGES = [
    "DROP TABLE users",
    "DROP TABLE outbox",
    "ALTER TABLE users ADD COLUMN note text",
    "ALTER TABLE users DROP CONSTRAINT users_has_contacts",
    "ALTER TABLE outbox DISABLE TRIGGER outbox_notify",
    "DROP INDEX users_email_key",
    "CREATE INDEX ON users (firstname)",
    "CREATE TABLE stolen (id int)",
    "CREATE TEMP TABLE stolen (id int)",
    "CREATE SCHEMA stolen",
    "CREATE VIEW stolen AS SELECT 1",
    "DROP VIEW user_with_linked_accounts",
    "DROP FUNCTION outbox_notify() CASCADE",
    "TRUNCATE users CASCADE",
]


async def test_the_runtime_role_cannot_change_the_schema(migrated: Roles) -> None:
    connection = await asyncpg.connect(migrated.app_url)
    allowed = []
    try:
        for statement in SCHEMA_CHANGES:  # each its own transaction: one refusal ends it
            try:
                await connection.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                continue
            allowed.append(statement)
    finally:
        await connection.close()
    assert not allowed


async def test_the_owner_owns_every_table_and_the_runtime_role_may_only_use_their_rows(
    private_server: PrivatePostgres, migrated: Roles
) -> None:
    connection = await asyncpg.connect(private_server.url_for(migrated.database))
    try:
        owners = await connection.fetch(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'S')"
        )
        privileges = await connection.fetch(
            "SELECT c.relname, p.privilege, has_table_privilege($1, c.oid, p.privilege) AS has"
            " FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',"
            " 'REFERENCES', 'TRIGGER']) AS p(privilege)"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')",
            APP,
        )
        super_or_create = await connection.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles"
            " WHERE rolname = $1",
            APP,
        )
    finally:
        await connection.close()
    assert {row["owner"] for row in owners} == {OWNER}
    tables = {row["relname"] for row in owners}
    assert {"users", "linked_accounts", "outbox", "idempotency_keys"} <= tables
    rows = {"SELECT", "INSERT", "UPDATE", "DELETE"}
    granted = {(row["relname"], row["privilege"]) for row in privileges if row["has"]}
    assert granted == {(row["relname"], p) for row in privileges for p in rows}
    assert not any(super_or_create.values())


def test_the_roles_script_runs_again_on_a_database_that_has_them(
    private_server: PrivatePostgres, migrated: Roles
) -> None:
    ran = run_init_roles(private_server, migrated.database)
    assert ran.returncode == 0, ran.stderr


def test_the_roles_script_without_the_passwords_stops_naming_them(
    private_server: PrivatePostgres,
) -> None:
    database = new_database(private_server, migrate=False)
    run = subprocess.run(
        [
            _binary("psql"),
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-d",
            private_server.url_for(database),
            "-v",
            f"database={database}",
            "-f",
            str(ROLES_SQL),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert "roles.sql needs -v owner_password=" in run.stderr


# --- the service as the runtime role ------------------------------------------------------


async def test_the_service_works_as_the_runtime_role(aiohttp_client, migrated: Roles) -> None:
    api = await aiohttp_client(create_app(migrated.app_url))
    body = user_body()
    user_id = await create_user(api, **body)
    same_email = {**user_body(), "email": body["email"]}
    await expect_error(await call_api(api, "create_user", same_email), 409, "user_already_exists")
    other = await create_user(api)
    taken = {"user_id": other, "email": body["email"], "phone": None}
    await expect_error(await call_api(api, "change_contacts", taken), 409, "user_already_exists")
    await link(api, user_id, "vk", "https://vk.com/runtime.role")
    linked_again = {
        "user_id": other,
        "social_network": "vk",
        "connection_link": "vk.com/runtime.role",
        "connected_for": None,
    }
    await expect_error(
        await call_api(api, "link", linked_again), 409, "linked_account_already_exists"
    )
    assert (await fetch_user(api, user_id))["email"] == body["email"]
    keyed = await api.post(
        "/api/v1/users/create_user", json=user_body(), headers={"Idempotency-Key": "runtime-1"}
    )
    await expect_result(keyed, 201)
    await expect_result(await call_api(api, "delete_permanently", {"user_id": user_id}))
    health = await api.post("/api/v1/healthcheck")
    assert health.status == 200


@pytest.fixture
async def exchange(amqp_url: str) -> AsyncIterator[str]:
    """An exchange and queue of the same name, this test's own, deleted after it."""
    name = f"users.test.roles.{uuid4().hex[:12]}"
    try:
        yield name
    finally:
        async with aiormq.connect(amqp_url) as connection:
            channel = await connection.channel()
            await channel.queue_delete(name)
            await channel.exchange_delete(name)


async def consume(amqp_url: str, name: str, consumer: Consumer) -> aiormq.abc.AbstractConnection:
    connection = await aiormq.connect(amqp_url)
    channel = await connection.channel()
    await channel.exchange_declare(name, exchange_type="topic", durable=True)
    await channel.queue_declare(name, durable=True)
    await channel.queue_bind(name, name, routing_key="#")
    await channel.basic_consume(name, consumer._on_message, no_ack=True)
    return connection


async def test_the_relay_publishes_as_the_runtime_role_and_leaves_vacuum_to_autovacuum_quietly(
    private_server: PrivatePostgres,
    migrated: Roles,
    amqp_url: str,
    exchange: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = Consumer()
    broker = await consume(amqp_url, exchange, consumer)
    pool = await create_pool(migrated.app_url, min_size=1, max_size=4)
    queries = load()
    users = Users(pool, queries)
    settings = RelaySettings(
        amqp_url=amqp_url,
        exchange=exchange,
        queue=exchange,
        vacuum_after=3,  # a vacuum due after every few events
        vacuum_interval=0,
        **FAST,
    )
    relay = Relay(pool, migrated.app_url, queries, settings)
    start = private_server.log.stat().st_size
    with caplog.at_level(logging.INFO, logger="usersvc.amqp.relay"):
        task = asyncio.create_task(relay.run())
        try:
            await every_event(lambda command: succeed(users, command))
            for _ in range(6):
                await succeed(users, new_user())
            await consumer.wait_count(16)
            await asyncio.sleep(0.5)  # vacuums due meanwhile would have run
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pool.close()
            await broker.close()
    assert len(consumer.messages) == 16
    # A VACUUM by a role that may not would be a WARNING in the server's log each time.
    logged = private_server.log.read_bytes()[start:].decode(errors="replace")
    assert "WARNING" not in logged, logged[:2000]
    assert "ERROR" not in logged, logged[:2000]
    said = [r for r in caplog.records if "vacuum" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"], [r.getMessage() for r in said]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- usersvc migrate and serve as processes -----------------------------------------------


@pytest.fixture
def process_env(amqp_url: str) -> dict[str, str]:
    return environment(USERSVC_AMQP_URL=amqp_url, USERSVC_DATABASE_WAIT="5")


def _serve(env: dict[str, str]) -> tuple[object, int]:
    port = free_port()
    process = usersvc("serve", "--no-relay", "--host", "127.0.0.1", "--port", str(port), env=env)
    wait_ready(process, port)
    return process, port


def _create(port: int) -> int:
    status, _ = request(f"http://127.0.0.1:{port}/api/v1/users/create_user", user_body())
    return status


def _sessions(server: PrivatePostgres, database: str) -> set[str]:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s", (database,)
        )
        return {row[0] for row in rows}


def test_usersvc_migrate_runs_as_the_owner_and_serve_as_the_runtime_role(
    private_server: PrivatePostgres, roles: Roles, process_env: dict[str, str]
) -> None:
    migrate = usersvc(
        "migrate", env=process_env | {"USERSVC_MIGRATE_DATABASE_URL": roles.owner_url}
    )
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output
    process, port = _serve(process_env | {"USERSVC_DATABASE_URL": roles.app_url})
    try:
        assert _create(port) == 201
        assert _sessions(private_server, roles.database) == {APP}
    finally:
        output = stop(process)
    assert "0 migration(s) applied" in output
    assert PASSWORDS[APP] not in output


def test_serve_given_both_urls_migrates_as_the_owner_and_serves_as_the_runtime_role(
    private_server: PrivatePostgres, roles: Roles, process_env: dict[str, str]
) -> None:
    env = process_env | {
        "USERSVC_DATABASE_URL": roles.app_url,
        "USERSVC_MIGRATE_DATABASE_URL": roles.owner_url,
    }
    process, port = _serve(env)
    try:
        assert _create(port) == 201
        assert _sessions(private_server, roles.database) == {APP}  # the owner's is closed
    finally:
        output = stop(process)
    assert "migration(s) applied" in output
    assert "0 migration(s)" not in output
    assert PASSWORDS[OWNER] not in output
    assert PASSWORDS[APP] not in output


def test_serving_as_the_runtime_role_with_migrations_pending_stops_with_one_line(
    roles: Roles, process_env: dict[str, str]
) -> None:
    process = usersvc("serve", env=process_env | {"USERSVC_DATABASE_URL": roles.app_url})
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    [line] = [line for line in output.splitlines() if line.startswith("usersvc: error:")]
    assert line.startswith("usersvc: error: USERSVC_DATABASE_URL: ")
    assert f"role '{APP}' may not change the schema" in line
    assert PASSWORDS[APP] not in output
