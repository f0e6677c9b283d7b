"""The Dockerfile's rules (hadolint lints it in .ci/run and pre-commit; tests/deploy/
test_running_service.py runs its CMD and HEALTHCHECK for real)."""

import re
import tomllib

from tests.deploy.support import (
    REPO,
    dockerfile_instructions,
    final_stage,
    image_cmd,
    image_healthcheck,
    image_healthcheck_options,
)
from usersvc.production import SHUTDOWN_TIMEOUT


def test_every_base_image_is_pinned_to_an_exact_version() -> None:
    images = [args.split()[0] for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(images) >= 2, "a build stage and a runtime stage"
    for image in images:
        assert re.match(r"^[\w./-]+:\d+\.\d+\.\d+(-[a-z0-9.-]+)?$", image), image


def test_dependencies_install_from_the_lock_without_the_development_group() -> None:
    syncs = [
        args
        for keyword, args in dockerfile_instructions()
        if keyword == "RUN" and "uv sync" in args
    ]
    assert syncs
    for sync in syncs:
        assert "--locked" in sync, sync
        assert "--no-dev" in sync, sync
        assert "--mount=type=cache,target=/root/.cache/uv" in sync, sync
    env = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env


def test_the_embedded_postgresql_is_a_development_dependency_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = " ".join(project["project"]["dependencies"])
    assert "pgserver" not in runtime
    assert any("pgserver" in d for d in project["dependency-groups"]["dev"])


def test_the_runtime_stage_copies_only_the_environment_code_and_data() -> None:
    copies = [args for keyword, args in final_stage() if keyword == "COPY"]
    sources = sorted(c.split()[-2] for c in copies)
    assert sources == [
        "/app/.venv",
        "/app/usersvc",
        "gunicorn.conf.py",
        "migrations",
        "sql",
    ], sources
    assert all(c.startswith("--from=build ") for c in copies if c.split()[-2].startswith("/app"))


def test_the_image_runs_as_an_unprivileged_user() -> None:
    (user,) = [args for keyword, args in final_stage() if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000


def test_the_image_runs_gunicorn_with_its_config_in_exec_form() -> None:
    assert image_cmd() == ["gunicorn", "--config", "gunicorn.conf.py"]


def test_the_healthcheck_gets_the_readiness_probe_with_python_only() -> None:
    command = image_healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "/readyz'" in command[2]
    assert "method=" not in command[2]  # a GET, as orchestrators' probes are
    options = image_healthcheck_options()
    timeout = int(options["timeout"].removesuffix("s"))
    assert re.search(r"timeout=(\d+)", command[2])
    assert int(re.search(r"timeout=(\d+)", command[2])[1]) < timeout


def test_the_image_drains_a_few_seconds_within_gunicorns_graceful_timeout() -> None:
    env = " ".join(args for keyword, args in final_stage() if keyword == "ENV")
    drain = float(re.search(r"USERSVC_DRAIN_SECONDS=(\S+)", env)[1])
    assert 1 <= drain <= 15
    graceful = re.search(
        r"^graceful_timeout\s*=\s*(\d+)", (REPO / "gunicorn.conf.py").read_text(), re.M
    )
    # the drain, then requests (at most SHUTDOWN_TIMEOUT) and the relay's confirms
    assert drain + SHUTDOWN_TIMEOUT + 5 < int(graceful[1])


def test_sigterm_stops_the_container_and_port_8000_is_exposed() -> None:
    stage = dict(final_stage())
    assert stage["STOPSIGNAL"] == "SIGTERM"
    assert stage["EXPOSE"] == "8000"


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".pgdata", "tests"):
        assert entry in ignored, entry
