"""compose.yml holds the stack's rules (the compose specification itself is checked by
check-jsonschema in .ci/run and pre-commit)."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import COMPOSE, MONITORING, PROMETHEUS_CONFIG, REPO, compose, load_yaml

SERVICES = compose()["services"]
# An exact version, optionally with a variant (`4.2.5-management`): three numbers, except for
# PostgreSQL, whose releases since 10 are MAJOR.MINOR (`17.7-trixie`).
EXACT_TAG = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?$")
EXACT_POSTGRES_TAG = re.compile(r"^postgres:\d+\.\d+(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?$")


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "build" not in s))
def test_every_image_is_pinned_to_an_exact_version(name: str) -> None:
    image = SERVICES[name]["image"]
    exact = EXACT_POSTGRES_TAG if image.startswith("postgres:") else EXACT_TAG
    assert exact.match(image), f"{name}: {image!r} is not pinned to an exact version"


def test_the_service_and_its_migration_are_built_from_the_dockerfile() -> None:
    for name in ("usersvc", "migrate"):
        assert SERVICES[name]["build"]["context"] == "."
        assert (REPO / SERVICES[name]["build"].get("dockerfile", "Dockerfile")).is_file()
    assert SERVICES["usersvc"]["image"] == SERVICES["migrate"]["image"]


def test_migrate_is_a_one_shot_usersvc_migrate_the_service_waits_for() -> None:
    assert SERVICES["migrate"]["command"] == ["usersvc", "migrate"]
    assert SERVICES["migrate"].get("restart", "no") == "no"
    depends = SERVICES["usersvc"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_the_service_scales_without_a_fixed_host_port_per_replica() -> None:
    for port in SERVICES["usersvc"].get("ports", []):
        published = str(port).rsplit(":", 1)[0]
        # Either no host port (an ephemeral one per replica) or a range to pick from.
        assert ":" not in published or "-" in published.rsplit(":", 1)[-1], port
    assert "container_name" not in SERVICES["usersvc"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_dependency_waits_for_health_or_completion(name: str) -> None:
    depends: Any = SERVICES[name].get("depends_on", {})
    assert isinstance(depends, dict), f"{name}: depends_on as a list waits only for a start"
    for dependency, how in depends.items():
        expected = (
            "service_completed_successfully" if dependency == "migrate" else "service_healthy"
        )
        assert how["condition"] == expected, (name, dependency)
        if expected == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"


@pytest.mark.parametrize("name", ["postgres", "rabbitmq"])
def test_postgres_and_rabbitmq_have_a_healthcheck_and_a_named_volume(name: str) -> None:
    service = SERVICES[name]
    assert service["healthcheck"]["test"][0] == "CMD"
    named = [v.split(":", 1)[0] for v in service["volumes"] if not v.startswith((".", "/"))]
    assert named
    assert all(v in compose()["volumes"] for v in named)


def test_postgres_is_17_and_rabbitmq_is_4_with_management() -> None:
    assert SERVICES["postgres"]["image"].startswith("postgres:17.")
    assert re.match(r"^rabbitmq:4\.\d+\.\d+-management", SERVICES["rabbitmq"]["image"])


def test_the_service_and_its_migration_reach_the_stacks_database_and_broker() -> None:
    for name in ("usersvc", "migrate"):
        assert "@postgres:5432/" in env(name)["USERSVC_DATABASE_URL"]
        assert "@rabbitmq:5672/" in env(name)["USERSVC_AMQP_URL"]
    database = env("postgres")["POSTGRES_DB"]
    assert env("usersvc")["USERSVC_DATABASE_URL"].endswith(f"@postgres:5432/{database}")
    assert env("migrate")["USERSVC_MIGRATE_DATABASE_URL"].endswith(f"@postgres:5432/{database}")


def test_migrations_run_as_the_schema_owner_and_the_service_as_the_runtime_role() -> None:
    # deploy/postgres/roles.sql makes both roles, run by init-roles.sh at the first boot
    # (tests/database/test_roles.py runs that script on a real server).
    volumes = SERVICES["postgres"]["volumes"]
    assert (
        "./deploy/postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-usersvc-roles.sh:ro"
        in volumes
    )
    assert "./deploy/postgres/roles.sql:/usersvc/roles.sql:ro" in volumes
    script = (REPO / "deploy" / "postgres" / "init-roles.sh").read_text()
    assert "${USERSVC_ROLES_SQL:-/usersvc/roles.sql}" in script
    owner = re.search(r"-v owner=(\w+) -v owner_password=\"\$POSTGRES_OWNER_PASSWORD\"", script)
    app = re.search(r"-v app=(\w+) -v app_password=\"\$POSTGRES_APP_PASSWORD\"", script)
    assert owner
    assert app
    postgres = env("postgres")
    for name in ("POSTGRES_OWNER_PASSWORD", "POSTGRES_APP_PASSWORD"):
        assert postgres[name].startswith(f"${{{name}:?"), name  # required, from .env
    runtime = env("usersvc")["USERSVC_DATABASE_URL"]
    assert runtime.startswith(f"postgresql://{app[1]}:${{POSTGRES_APP_PASSWORD:?")
    assert env("migrate")["USERSVC_DATABASE_URL"] == runtime
    migrations = env("migrate")["USERSVC_MIGRATE_DATABASE_URL"]
    assert migrations.startswith(f"postgresql://{owner[1]}:${{POSTGRES_OWNER_PASSWORD:?")
    assert "USERSVC_MIGRATE_DATABASE_URL" not in env("usersvc")


def test_the_service_sends_traces_to_jaeger_over_otlp() -> None:
    variables = env("usersvc")
    assert variables["OTEL_SERVICE_NAME"] == "usersvc"
    assert variables["OTEL_TRACES_EXPORTER"] == "otlp"
    endpoint = variables["OTEL_EXPORTER_OTLP_ENDPOINT"]
    protocol = variables["OTEL_EXPORTER_OTLP_PROTOCOL"]
    jaeger = load_yaml(MONITORING / "jaeger" / "config.yaml")
    protocols = jaeger["receivers"]["otlp"]["protocols"]
    port = protocols["grpc" if protocol == "grpc" else "http"]["endpoint"].rsplit(":", 1)[1]
    assert endpoint == f"http://jaeger:{port}"
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")


def test_the_service_logs_json_for_the_agents_to_parse() -> None:
    assert env("usersvc")["USERSVC_LOG_FORMAT"] == "json"


def test_prometheus_finds_every_replica_by_the_compose_service_name() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "usersvc")
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["usersvc"]
    assert sd["type"] == "A"
    assert sd["port"] == int(env("usersvc")["USERSVC_PORT"])


def test_alloy_runs_by_default_and_promtail_only_in_its_profile() -> None:
    assert "profiles" not in SERVICES["alloy"]
    assert SERVICES["promtail"]["profiles"] == ["promtail"]


def test_every_service_carries_the_label_the_log_agents_collect_by() -> None:
    alloy = (MONITORING / "alloy" / "config.alloy").read_text()
    promtail = load_yaml(MONITORING / "promtail" / "promtail.yml")
    (docker_sd,) = promtail["scrape_configs"][0]["docker_sd_configs"]
    (label_filter,) = docker_sd["filters"]
    (selector,) = label_filter["values"]
    assert f'"{selector}"' in alloy
    key, value = selector.split("=")
    for name, service in SERVICES.items():
        assert service["labels"].get(key) == value, name


@pytest.mark.parametrize(
    "name",
    [
        "usersvc",
        "migrate",
        "postgres",
        "prometheus",
        "loki",
        "alloy",
        "promtail",
        "jaeger",
        "grafana",
        "rabbitmq",
        "docker-socket-proxy",
    ],
)
def test_every_mounted_file_of_the_repository_exists(name: str) -> None:
    for volume in SERVICES[name].get("volumes", []):
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (REPO / source).exists(), (name, source)


def _entrypoint_default(variable: str) -> str:
    """A path monitoring/rabbitmq/entrypoint.sh uses unless told otherwise."""
    script = (MONITORING / "rabbitmq" / "entrypoint.sh").read_text()
    (path,) = re.findall(rf'"\$\{{{variable}:-([^}}]+)\}}"', script)
    return path


def test_rabbitmq_loads_the_definitions_its_entrypoint_writes_from_the_repositorys() -> None:
    service = SERVICES["rabbitmq"]
    volumes = service["volumes"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in volumes if v.startswith("./")}
    conf = mounted["./monitoring/rabbitmq/rabbitmq.conf"]
    assert conf.startswith("/etc/rabbitmq/conf.d/")
    # The template is the repository's file, where the entrypoint reads it; the entrypoint
    # runs first, then the image's own (its ENTRYPOINT and CMD).
    template = _entrypoint_default("USERSVC_DEFINITIONS_TEMPLATE")
    assert mounted["./monitoring/rabbitmq/definitions.json"] == template
    script = mounted["./monitoring/rabbitmq/entrypoint.sh"]
    assert service["entrypoint"] == ["sh", script, "docker-entrypoint.sh"]
    assert service["command"] == ["rabbitmq-server"]
    settings = dict(
        line.split(" = ", 1)
        for line in (MONITORING / "rabbitmq" / "rabbitmq.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["definitions.import_backend"] == "local_filesystem"
    written = _entrypoint_default("USERSVC_DEFINITIONS")
    assert settings["definitions.local.path"] == written
    # Where the passwords are written: memory, not the container's disk.
    assert written.rsplit("/", 1)[0] in service["tmpfs"]


def test_the_broker_credentials_of_the_service_are_a_user_of_the_definitions() -> None:
    definitions = json.loads((MONITORING / "rabbitmq" / "definitions.json").read_text())
    url = env("usersvc")["USERSVC_AMQP_URL"]
    user, password = url.removeprefix("amqp://").split("@", 1)[0].split(":", 1)
    (record,) = [u for u in definitions["users"] if u["name"] == user]
    # The same variable of .env: in the service's URL, and given to the broker's
    # entrypoint, which writes it where the definitions' placeholder of that name is.
    (variable,) = REQUIRED.fullmatch(password).groups()[:1]
    assert record["password"] == f"@{variable}@"
    assert env("rabbitmq")[variable] == password
    (permission,) = [p for p in definitions["permissions"] if p["user"] == user]
    assert permission["vhost"] == "/"
    assert record["tags"] == []  # no management: tests/deploy/test_rabbitmq_permissions.py


# ---------------------------------------------------------------------------- secrets

# `${NAME:?message}`: compose stops, saying the message, while NAME is unset or empty.
REQUIRED = re.compile(r"\$\{([A-Z][A-Z0-9_]*):\?([^}]+)\}")
ANY_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)([^}]*)\}")
ENV_EXAMPLE = REPO / ".env.example"
SECRET_NAME = re.compile(r"PASSWORD|PASS$|SECRET|TOKEN|_KEY$")


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) of the compose file, the keys of the innermost mapping."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _strings(v, str(k))]
    if isinstance(value, list):
        return [pair for item in value for pair in _strings(item, key)]
    return [(key, str(value))]


def _example_variables() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_no_password_is_written_in_compose_every_one_is_required_from_the_env_file() -> None:
    found = _strings(compose())
    secrets = [(k, v) for k, v in found if SECRET_NAME.search(k)]
    assert secrets
    for key, value in secrets:
        assert REQUIRED.fullmatch(value), (key, value)
    # A password in a URL (scheme://user:password@host) too.
    in_urls = [m for _, v in found for m in re.findall(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s/]+)@", v)]
    assert len(in_urls) >= 2
    for password in in_urls:
        assert REQUIRED.fullmatch(password), password


def test_every_variable_compose_requires_is_in_the_env_example_and_only_those_default() -> None:
    text = COMPOSE.read_text()
    required = {name for name, _ in REQUIRED.findall(text)}
    assert {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert required <= set(_example_variables())
    for name, how in ANY_VARIABLE.findall(text):
        # A default (":-") only for what is no secret.
        assert how.startswith(":?") or (how.startswith(":-") and not SECRET_NAME.search(name))


def test_the_env_example_holds_no_value_and_the_env_file_is_not_committed() -> None:
    for name, value in _example_variables().items():
        if SECRET_NAME.search(name):
            assert value == "", name  # a copy as it is does not start
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/.env" in ignored or ".env" in ignored


def test_the_documented_line_writes_an_env_file_with_a_new_password_for_each(
    tmp_path: Path,
) -> None:
    (line,) = [
        line.removeprefix("#").strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "secrets.token_hex" in line
    ]
    for page in (COMPOSE, REPO / "README.md", REPO / "docs" / "operations.md"):
        assert line in page.read_text(), page.name  # the same line everywhere it is shown
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    subprocess.run(["sh", "-c", line], cwd=tmp_path, check=True, timeout=30)
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o077 == 0
    written = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert written.keys() == _example_variables().keys()
    passwords = [v for k, v in written.items() if SECRET_NAME.search(k)]
    assert len(set(passwords)) == len(passwords) >= 4
    for password in passwords:
        # Long, and safe in a URL and in the broker's definitions as it is.
        assert re.fullmatch(r"[0-9a-f]{48}", password), password


# ---------------------------------------------------------------------------- exposure


def test_the_docker_socket_is_mounted_only_into_the_read_only_proxy() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            if "docker.sock" in volume:
                assert name == "docker-socket-proxy", name
                assert volume == "/var/run/docker.sock:/var/run/docker.sock:ro"
    proxy = SERVICES["docker-socket-proxy"]
    allowed = {k: str(v) for k, v in proxy["environment"].items()}
    assert allowed["POST"] == "0"  # GET and HEAD only
    for section in ("EXEC", "BUILD", "IMAGES", "VOLUMES", "SECRETS", "AUTH", "ALLOW_START"):
        assert allowed.get(section, "0") == "0", section
    assert "ports" not in proxy
    # Its network: the log agents and it, no way out.
    (network,) = proxy["networks"]
    assert compose()["networks"][network]["internal"] is True
    users = {n for n, s in SERVICES.items() if network in s.get("networks", [])}
    assert users == {"docker-socket-proxy", "alloy", "promtail"}


def test_the_log_agents_read_docker_through_the_proxy() -> None:
    proxy = "tcp://docker-socket-proxy:2375"
    alloy = (MONITORING / "alloy" / "config.alloy").read_text()
    assert re.findall(r'host\s*=\s*"([^"]+)"', alloy) == [proxy, proxy]
    promtail = load_yaml(MONITORING / "promtail" / "promtail.yml")
    (job,) = promtail["scrape_configs"]
    assert [sd["host"] for sd in job["docker_sd_configs"]] == [proxy]
    for name in ("alloy", "promtail"):
        assert SERVICES[name]["depends_on"]["docker-socket-proxy"]["condition"] == (
            "service_healthy"
        )


def test_grafana_has_no_anonymous_access_unless_asked_and_its_admin_password_from_env() -> None:
    grafana = env("grafana")
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS_ENABLED:-false}"
    assert REQUIRED.fullmatch(grafana["GF_SECURITY_ADMIN_PASSWORD"])
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_prometheus_cannot_be_stopped_or_wiped_over_http() -> None:
    flags = SERVICES["prometheus"]["command"]
    assert not any(
        f.startswith(("--web.enable-lifecycle", "--web.enable-admin-api")) for f in flags
    )


def test_grafana_provisions_from_the_repository() -> None:
    volumes = SERVICES["grafana"]["volumes"]
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    provider = load_yaml(MONITORING / "grafana/provisioning/dashboards/dashboards.yml")
    (provider_path,) = {p["options"]["path"] for p in provider["providers"]}
    assert f"./monitoring/grafana/dashboards:{provider_path}:ro" in volumes
    home = env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (MONITORING / "grafana/dashboards" / home.removeprefix(provider_path + "/")).is_file()


def test_postgres_accepts_every_connection_the_largest_scale_can_open() -> None:
    # gunicorn.conf.py: each worker holds up to 11 connections (a pool of 10, the relay's 1).
    command = SERVICES["postgres"]["command"]
    limit = int(next(a.split("=")[1] for a in command if a.startswith("max_connections=")))
    ports = next(p for p in SERVICES["usersvc"]["ports"] if str(p).endswith(":8000"))
    first, last = (int(n) for n in str(ports).rsplit(":", 1)[0].rsplit(":", 1)[1].split("-"))
    replicas = last - first + 1
    workers = int(env("usersvc")["WEB_CONCURRENCY"])
    assert limit >= replicas * workers * 11 + 1  # + the one-shot migration


def test_the_service_is_healthy_by_its_readiness_probe_as_in_the_image() -> None:
    test = SERVICES["usersvc"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "/readyz'" in test[3]
    assert f":{env('usersvc')['USERSVC_PORT']}/" in test[3]
