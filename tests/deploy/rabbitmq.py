"""The broker's definitions (monitoring/rabbitmq) and `rabbitmqctl`, for the tests that put
them on a real broker: each in a vhost of its own, deleted after it. `rabbitmqctl` talks to
the broker (USERSVC_TEST_RABBITMQCTL overrides the command, e.g. `docker exec <container>
rabbitmqctl` where the broker is a container)."""

import json
import os
import shlex
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

from tests.conftest import AMQP_URL
from tests.deploy.support import MONITORING

RABBITMQCTL = shlex.split(os.environ.get("USERSVC_TEST_RABBITMQCTL", "rabbitmqctl"))
RABBITMQ = MONITORING / "rabbitmq"
DEFINITIONS = json.loads((RABBITMQ / "definitions.json").read_text())
ENTRYPOINT = RABBITMQ / "entrypoint.sh"
SERVICE_USER = "usersvc"  # compose.yml's USERSVC_AMQP_URL logs in as it


def ctl(*args: str) -> str:
    result = subprocess.run(
        [*RABBITMQCTL, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def url_for(vhost: str, user: str | None = None, password: str | None = None) -> str:
    """AMQP_URL in ``vhost``, as ``user`` if given."""
    parts = urllib.parse.urlsplit(AMQP_URL)
    if user is not None:
        host = parts.netloc.rpartition("@")[2]
        login = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password or '', safe='')}"
        parts = parts._replace(netloc=f"{login}@{host}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def render(
    output: Path, template: Path = RABBITMQ / "definitions.json", **passwords: str
) -> subprocess.CompletedProcess[str]:
    """The broker's entrypoint as compose runs it, writing the definitions to ``output``
    and then running ``true`` in place of the broker."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RABBITMQ_PASSWORD", "RABBITMQ_ADMIN_PASSWORD")
    }
    environment |= passwords | {
        "USERSVC_DEFINITIONS_TEMPLATE": str(template),
        "USERSVC_DEFINITIONS": str(output),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "true"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def service_user(definitions: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The service's user and its one permission."""
    (user,) = [u for u in definitions["users"] if u["name"] == SERVICE_USER]
    (permission,) = [p for p in definitions["permissions"] if p["user"] == SERVICE_USER]
    return user, permission
