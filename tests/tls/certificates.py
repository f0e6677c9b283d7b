"""A private certificate authority and a server certificate it signed, made with the
openssl command for the tests' TLS servers; and a second authority that signed nothing
here, for a client that must refuse the server."""

import subprocess
from pathlib import Path

from attrs import frozen

DAYS = "2"
# Python 3.13's default contexts verify strictly (RFC 5280): a CA marked critical, key
# identifiers on both certificates.
CA_EXTENSIONS = [
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-addext",
    "subjectKeyIdentifier=hash",
]
SERVER_EXTENSIONS = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


@frozen
class Certificates:
    ca: Path  # the authority that signed the server's certificate
    other_ca: Path  # an authority that signed nothing the servers hold
    certificate: Path  # the server's, for localhost and 127.0.0.1
    key: Path  # its private key, unencrypted


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _authority(directory: Path, name: str) -> tuple[Path, Path]:
    key, certificate = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key.name, "-out", certificate.name, "-days", DAYS,
        "-subj", f"/CN=usersvc tests {name}", *CA_EXTENSIONS,
        cwd=directory,
    )  # fmt: skip
    return key, certificate


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _authority(directory, "ca")
    _, other_ca = _authority(directory, "other-ca")
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
        "-CAcreateserial", "-out", "server.pem", "-days", DAYS, "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    return Certificates(ca, other_ca, directory / "server.pem", directory / "server.key")
