"""§5's modes: `usersvc serve` takes none with a WARNING when nobody chose; the production
entry (gunicorn, which the Docker image runs) refuses to start until somebody chooses;
compose chooses, and says so."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.telemetry.processes import REPO, environment, free_port, stop, usersvc, wait_ready


def _unchosen(**values: str) -> dict[str, str]:
    env = environment(**values)
    del env["USERSVC_AUTH"]
    return env


def test_gunicorn_refuses_to_start_until_the_mode_is_chosen(database_url: str):
    run = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"],
        env=_unchosen(USERSVC_DATABASE_URL=database_url, USERSVC_PORT=str(free_port())),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("usersvc: error: USERSVC_AUTH: "), lines


def test_serve_without_a_mode_takes_none_and_says_so_in_one_warning(database_url: str):
    port = free_port()
    process = usersvc(
        "serve", "--no-relay", "--port", str(port), env=_unchosen(USERSVC_DATABASE_URL=database_url)
    )
    try:
        wait_ready(process, port)
    finally:
        output = stop(process)
    warnings = [line for line in output.splitlines() if '"USERSVC_AUTH is not set' in line]
    assert len(warnings) == 1, output
    assert '"level":"warning"' in warnings[0].replace(" ", "")


def test_the_image_does_not_choose_for_its_operator():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USERSVC_AUTH" not in dockerfile
    assert re.search(r'^CMD \["gunicorn"', dockerfile, re.MULTILINE)


def test_compose_chooses_the_mode_and_says_why_beside_it():
    text = (REPO / "compose.yml").read_text()
    service_env = yaml.safe_load(text)["x-usersvc-env"]
    assert service_env["USERSVC_AUTH"] in ("none", "jwt")
    line = next(i for i, ln in enumerate(text.splitlines()) if "USERSVC_AUTH:" in ln)
    before = text.splitlines()[line - 1].strip()
    assert before.startswith("#"), "a comment above USERSVC_AUTH says why"
