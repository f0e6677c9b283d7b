"""TLS to PostgreSQL and RabbitMQ, as a deployer asks for it: ``sslmode=verify-full`` and
``sslrootcert`` in USERSVC_DATABASE_URL (asyncpg for the service, psycopg for the
migrations), ``amqps://`` with ``cafile`` in USERSVC_AMQP_URL (aiormq). The servers take
TLS connections only; a client given another authority refuses them, in one line."""

import asyncio
import json
import ssl
import time
from uuid import uuid4

import aiormq
import asyncpg
import psycopg
import pytest
from psycopg import sql

from tests.reliability.private_postgres import PrivatePostgres
from tests.telemetry.processes import environment, free_port, request, stop, usersvc, wait_ready
from tests.tls.certificates import Certificates
from tests.tls.conftest import tls_url
from tests.tls.rabbit_node import TlsRabbit
from usersvc.db.migrations import pending_migrations

PASSWORD = "Secret-Pw-4242"  # never to be shown


def new_database(server: PrivatePostgres, certificates: Certificates) -> str:
    name = f"usersvc_{uuid4().hex[:12]}"
    with psycopg.connect(tls_url(server, "postgres", certificates.ca), autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


async def declare(amqp_url: str, name: str) -> None:
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.exchange_declare(name, exchange_type="topic", durable=True)
        await channel.queue_declare(name, durable=True)
        await channel.queue_bind(name, name, routing_key="#")


async def first_message(amqp_url: str, queue: str, within: float = 30) -> dict:
    async with aiormq.connect(amqp_url) as connection:
        channel = await connection.channel()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            message = await channel.basic_get(queue, no_ack=True)
            if message.body:
                return json.loads(message.body)
            await asyncio.sleep(0.2)
    raise AssertionError(f"no message in {queue} within {within} s")


def tls_sessions(server: PrivatePostgres, certificates: Certificates, database: str) -> list:
    with psycopg.connect(tls_url(server, "postgres", certificates.ca)) as db:
        return db.execute(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
            " WHERE a.datname = %s",
            (database,),
        ).fetchall()


async def test_the_service_and_its_relay_speak_tls_to_postgresql_and_rabbitmq(
    certificates: Certificates, tls_postgres: PrivatePostgres, tls_rabbit: TlsRabbit
) -> None:
    database = new_database(tls_postgres, certificates)
    amqp_url = tls_rabbit.url(certificates.ca)
    exchange = f"users.tls.{uuid4().hex[:8]}"
    await declare(amqp_url, exchange)
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=tls_url(tls_postgres, database, certificates.ca),
        USERSVC_AMQP_URL=amqp_url,
        USERSVC_AMQP_EXCHANGE=exchange,
        USERSVC_AMQP_QUEUE=exchange,
    )
    # Migrations (yoyo and psycopg) at start, then the pool (asyncpg) and the relay
    # (aiormq): neither server takes anything but TLS.
    process = usersvc("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    try:
        wait_ready(process, port)
        body = {
            "email": f"tls.{uuid4().hex[:8]}@example.com",
            "phone": None,
            "firstname": "Ivan",
            "lastname": "Petrov",
            "middlename": None,
        }
        status, created = request(f"http://127.0.0.1:{port}/api/v1/users/create_user", body)
        assert status == 201, created
        event = await first_message(amqp_url, exchange)
        assert event["user_id"] == json.loads(created)["result"]
        sessions = tls_sessions(tls_postgres, certificates, database)
        assert sessions
        assert all(ssl_on for ssl_on, _ in sessions), sessions
    finally:
        output = stop(process)
    assert "migration(s) applied" in output
    assert "0 migration(s) applied" not in output


def test_a_database_whose_certificate_another_authority_signed_is_refused_in_one_line(
    certificates: Certificates, tls_postgres: PrivatePostgres
) -> None:
    database = new_database(tls_postgres, certificates)
    url = tls_url(tls_postgres, database, certificates.other_ca, password=PASSWORD)
    process = usersvc(
        "migrate", env=environment(USERSVC_DATABASE_URL=url, USERSVC_DATABASE_WAIT="0")
    )
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output  # a setting that cannot work: not retried
    [line] = [line for line in output.splitlines() if "error" in line.lower()]
    assert line == (
        "usersvc: error: USERSVC_DATABASE_URL: the database's TLS certificate is not"
        " accepted: unable to get local issuer certificate (sslrootcert, sslmode and the"
        f" host name in {url.replace(PASSWORD, '***')})"
    )
    assert PASSWORD not in output


def test_the_migrations_verify_the_database_with_the_authority_in_the_url(
    certificates: Certificates, tls_postgres: PrivatePostgres
) -> None:
    # psycopg (yoyo's driver) reads sslmode and sslrootcert from the same URL.
    database = new_database(tls_postgres, certificates)
    assert pending_migrations(tls_url(tls_postgres, database, certificates.ca)) > 0
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        pending_migrations(tls_url(tls_postgres, database, certificates.other_ca))


async def test_the_pool_verifies_the_database_with_the_authority_in_the_url(
    certificates: Certificates, tls_postgres: PrivatePostgres
) -> None:
    connection = await asyncpg.connect(tls_url(tls_postgres, "postgres", certificates.ca))
    try:
        assert await connection.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await connection.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(tls_url(tls_postgres, "postgres", certificates.other_ca))
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # hostnossl: reject
        await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:{tls_postgres.port}/postgres?sslmode=disable"
        )


def test_a_broker_whose_certificate_another_authority_signed_is_refused_in_one_line(
    certificates: Certificates, tls_postgres: PrivatePostgres, tls_rabbit: TlsRabbit
) -> None:
    database = new_database(tls_postgres, certificates)
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=tls_url(tls_postgres, database, certificates.ca),
        USERSVC_AMQP_URL=tls_rabbit.url(certificates.other_ca, "guest", PASSWORD),
    )
    process = usersvc("serve", "--host", "127.0.0.1", "--port", str(port), env=env)
    try:
        wait_ready(process, port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the relay has tried, and failed
            _, health = request(f"http://127.0.0.1:{port}/api/v1/healthcheck", method="POST")
            if json.loads(health)["result"].get("relay_last_error"):
                break
            time.sleep(0.3)
        time.sleep(2)  # and tried again a few times
    finally:
        output = stop(process)
    lines = [json.loads(line) for line in output.splitlines()]
    said = [line for line in lines if "certificate verify failed" in json.dumps(line)]
    assert len(said) == 1, said  # once for the outage, not at each attempt
    [warning] = said
    assert warning["level"] == "warning"
    assert warning["logger"] == "usersvc.amqp.relay"
    assert "\n" not in warning["message"]
    assert "exception" not in warning  # no traceback
    assert not [line for line in lines if line["level"] in {"error", "critical"}]
    assert PASSWORD not in output
