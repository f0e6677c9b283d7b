"""The PgBouncer files of compose's profile `pgbouncer` and of the docs agree with the
service: its session settings, the URLs its replica is given, the pooler's mode."""

import configparser
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.support import REPO, compose
from tests.pgbouncer.support import binary
from usersvc.db.pool import SERVER_SETTINGS

PGBOUNCER = REPO / "deploy" / "pgbouncer"
SERVICES = compose()["services"]
_ALTER = re.compile(r"ALTER ROLE (\w+) IN DATABASE (\w+) SET (\w+) = '([^']+)';")


def _interpolated(url: str) -> str:
    """A URL of compose.yml with each ``${VAR:?message}`` as compose fills it in (here: the
    variable's name in lower case, a value fit for a URL as .env's are)."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda found: found[1].lower(), url)


def ini() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(comment_prefixes=(";", "#"))
    parser.read(PGBOUNCER / "pgbouncer.ini")
    return parser


@pytest.mark.parametrize(
    "path",
    [PGBOUNCER / "session-defaults.sql", REPO / "docs" / "operations.md"],
    ids=["sql", "docs"],
)
def test_the_role_defaults_given_are_the_pools_session_settings(path: Path):
    found = {name: value for _, _, name, value in _ALTER.findall(path.read_text())}
    assert found == SERVER_SETTINGS


def test_compose_runs_pgbouncer_and_a_replica_through_it_only_in_the_profile():
    for name in ("pgbouncer", "usersvc-pgbouncer"):
        assert SERVICES[name]["profiles"] == ["pgbouncer"]
    assert "profiles" not in SERVICES["usersvc"]
    mounts = SERVICES["pgbouncer"]["volumes"]
    assert "./deploy/pgbouncer/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro" in mounts
    assert "./deploy/pgbouncer/entrypoint.sh:/usersvc/entrypoint.sh:ro" in mounts
    # after the roles' script (10-usersvc-roles.sh): the scripts run in name order
    initdb = "/docker-entrypoint-initdb.d/20-session-defaults.sql:ro"
    assert f"./deploy/pgbouncer/session-defaults.sql:{initdb}" in SERVICES["postgres"]["volumes"]


def test_pgbouncers_auth_file_is_written_from_the_environment_not_kept_in_the_repository(
    tmp_path: Path,
):
    service = SERVICES["pgbouncer"]
    assert service["environment"]["PGBOUNCER_PASSWORD"].startswith("${POSTGRES_APP_PASSWORD:?")
    assert not (PGBOUNCER / "userlist.txt").exists()
    auth_file = ini().get("pgbouncer", "auth_file")
    assert any(mount.startswith(str(Path(auth_file).parent)) for mount in service["tmpfs"])
    # the entrypoint writes the file it names, and refuses a password unfit for a URL
    script = (PGBOUNCER / "entrypoint.sh").read_text().replace(auth_file, str(tmp_path / "u"))
    script = script.replace("exec pgbouncer", "exit 0 #")
    env = {"PATH": os.environ["PATH"], "PGBOUNCER_USER": "usersvc_app"}
    ran = subprocess.run(["sh", "-c", script], env=env | {"PGBOUNCER_PASSWORD": "abc123"})
    assert ran.returncode == 0
    assert (tmp_path / "u").read_text() == '"usersvc_app" "abc123"\n'
    refused = subprocess.run(["sh", "-c", script], env=env | {"PGBOUNCER_PASSWORD": 'a"b'})
    assert refused.returncode == 2


def test_the_replica_through_pgbouncer_reaches_it_and_its_relay_goes_direct():
    config = ini()
    env = {k: str(v) for k, v in SERVICES["usersvc-pgbouncer"]["environment"].items()}
    pooled = urlsplit(_interpolated(env["USERSVC_DATABASE_URL"]))
    assert (pooled.hostname, pooled.port) == (
        "pgbouncer",
        config.getint("pgbouncer", "listen_port"),
    )
    [(name, target)] = config.items("databases")
    assert pooled.path == f"/{name}"
    assert f"dbname={name}" in target
    assert "host=postgres port=5432" in target
    direct = env["USERSVC_RELAY_DATABASE_URL"]
    assert direct == SERVICES["usersvc"]["environment"]["USERSVC_DATABASE_URL"]
    assert env["USERSVC_DATABASE_STATEMENT_CACHE"] == "0"
    assert config.get("pgbouncer", "pool_mode") == "transaction"
    assert pooled.username == SERVICES["pgbouncer"]["environment"]["PGBOUNCER_USER"]
    assert pooled.password == _interpolated(
        SERVICES["pgbouncer"]["environment"]["PGBOUNCER_PASSWORD"]
    )
    # every replica of the service, at its most, gets in
    ports = SERVICES["usersvc-pgbouncer"]["ports"][0].split(":")[1].split("-")
    replicas = int(ports[1]) - int(ports[0]) + 1
    assert config.getint("pgbouncer", "max_client_conn") >= replicas * 2 * 10


def test_debians_pgbouncer_accepts_the_configuration(tmp_path: Path):
    """Every key is one PgBouncer knows (it refuses to start on an unknown one or a bad
    value): Debian's PgBouncer is started on a copy pointed at this machine, and stopped
    once it says it is up."""
    text = (PGBOUNCER / "pgbouncer.ini").read_text()
    text = text.replace("host=postgres", "host=127.0.0.1").replace("0.0.0.0", "127.0.0.1")
    text = re.sub(r"listen_port = \d+", "listen_port = 0", text)
    text = text.replace(ini().get("pgbouncer", "auth_file"), str(tmp_path / "userlist.txt"))
    (tmp_path / "userlist.txt").write_text('"usersvc_app" "secret"\n')
    config = tmp_path / "pgbouncer.ini"
    config.write_text(text + "unix_socket_dir =\n")
    tmp_path.chmod(0o755)
    command = [binary(), str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = ""
        for line in process.stdout:
            output += line
            if "process up" in line or "FATAL" in line or "ERROR" in line:
                break
    finally:
        process.terminate()
        process.wait(10)
    assert "process up" in output, output
    assert "unknown parameter" not in output, output
