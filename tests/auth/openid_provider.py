"""A real OpenID provider for the tests: oidc-provider (a certified implementation) on
the machine's Node, from tests/auth/oidc/, and ``usersvc serve`` checking its tokens."""

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.telemetry.processes import environment, free_port, stop, usersvc, wait_ready

PROVIDER_DIR = Path(__file__).parent / "oidc"


def _node_modules() -> None:
    """The provider's npm packages, as package-lock.json pins them (once per checkout)."""
    if (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the test OpenID provider (oidc-provider)"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PROVIDER_DIR,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """The provider, started on a free port; its issuer URL."""
    _node_modules()
    node = shutil.which("node")
    assert node, "node is needed to run the test OpenID provider"
    port = free_port()
    process = subprocess.Popen(
        [node, "provider.mjs", str(port)],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("listening "):
                break
        else:
            pytest.fail(f"the provider exited {process.wait()}")
        yield line.split()[1]
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@pytest.fixture
def served(issuer: str, database_url: str) -> Iterator[str]:
    """`usersvc serve` checking the provider's tokens; its base URL."""
    port = free_port()
    env = environment(
        USERSVC_DATABASE_URL=database_url,
        USERSVC_AUTH="jwt",
        USERSVC_AUTH_ISSUER=issuer,
    )
    process = usersvc("serve", "--no-relay", "--port", str(port), env=env)
    try:
        wait_ready(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)
