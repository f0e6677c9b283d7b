"""The image's commands on this machine: compose's one-shot migration, the Dockerfile's CMD
and HEALTHCHECK, and its STOPSIGNAL within compose's grace period."""

import re
import signal
import subprocess
import time

import pytest

from tests.deploy.conftest import Service, started_service
from tests.deploy.support import REPO, compose


def grace_seconds() -> int:
    grace = compose()["services"]["usersvc"]["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace), grace
    return int(grace[:-1])


def gunicorn_graceful_timeout() -> int:
    match = re.search(
        r"^graceful_timeout\s*=\s*(\d+)", (REPO / "gunicorn.conf.py").read_text(), re.M
    )
    assert match, "gunicorn.conf.py sets no graceful_timeout"
    return int(match[1])


def test_compose_waits_longer_than_gunicorn_lets_requests_finish() -> None:
    assert grace_seconds() > gunicorn_graceful_timeout()


def test_the_healthcheck_passes_while_the_service_answers(service: Service) -> None:
    status, body = service.request("POST", "/api/v1/healthcheck")
    assert status == 200, body


def test_sigterm_stops_the_service_cleanly_within_the_grace_period() -> None:
    with started_service() as running:
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        try:
            code = running.process.wait(grace_seconds())
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        if code != 0:
            pytest.fail(f"exit {code} after {took:.1f}s:\n{running.log_tail()}")
