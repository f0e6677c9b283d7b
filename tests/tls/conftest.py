"""TLS servers of the tests' own: a PostgreSQL that accepts only TLS connections, and a
RabbitMQ node that listens only for amqps, both with a certificate of a private
authority made here."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.private_postgres import PrivatePostgres
from tests.tls.certificates import Certificates, make_certificates
from tests.tls.rabbit_node import TlsRabbit

# TLS or nothing: a client that does not ask for it is turned away.
HBA = """\
local all all trust
hostssl all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
"""


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_postgres(certificates: Certificates) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(hba=HBA)
    try:
        # The server reads its key only if no one else may (it runs as postgres when
        # the tests run as root): copies in its own folder.
        tls = server.directory / "tls"
        tls.mkdir()
        for source in (certificates.certificate, certificates.key):
            shutil.copy(source, tls / source.name)
            (tls / source.name).chmod(0o600)
            if server.directory.owner() == "postgres":
                shutil.chown(tls / source.name, "postgres", "postgres")
        if server.directory.owner() == "postgres":
            shutil.chown(tls, "postgres", "postgres")
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "ssl = on\n"
                f"ssl_cert_file = '{tls / certificates.certificate.name}'\n"
                f"ssl_key_file = '{tls / certificates.key.name}'\n"
            )
        server.start()
        yield server
    finally:
        server.destroy()


def tls_url(server: PrivatePostgres, database: str, ca: Path, password: str = "") -> str:
    """The URL as a deployer writes it: verify the server's certificate and its name."""
    user = f"postgres:{password}" if password else "postgres"
    return (
        f"postgresql://{user}@127.0.0.1:{server.port}/{database}"
        f"?sslmode=verify-full&sslrootcert={ca}"
    )


@pytest.fixture(scope="session")
def tls_rabbit(certificates: Certificates) -> Iterator[TlsRabbit]:
    node = TlsRabbit(certificates)
    try:
        node.start()
        yield node
    finally:
        node.stop()
