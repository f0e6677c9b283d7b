"""Redocly's linter, with its recommended rules (redocly.yaml), passes on the document the
service serves (with tokens and quotas: every refusal declared), but for the warnings
redocly.yaml lists with their reasons.

Redocly's CLI is the npm package of package.json; it is installed here (``npm ci``, a few
seconds) when the checkout has not installed it yet, as ``.ci/run`` does.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from usersvc.http.app import create_app
from usersvc.http.auth import Tokens
from usersvc.http.keys import SigningKeys
from usersvc.http.quotas import LocalQuotas, parse_limits

ROOT = Path(__file__).resolve().parent.parent.parent
REDOCLY = ROOT / "node_modules" / ".bin" / "redocly"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nope"
# Each warning left, where: the reasons are redocly.yaml's.
LEFT = {
    ("info-license", "#/info"),
    ("operation-4xx-response", "#/paths/~1api~1v1~1healthcheck/post/responses"),
    ("operation-4xx-response", "#/paths/~1livez/get/responses"),
    ("operation-4xx-response", "#/paths/~1readyz/get/responses"),
}


@pytest.fixture(scope="module")
def redocly() -> Path:
    if not REDOCLY.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install Redocly's CLI (package.json)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=300)
    return REDOCLY


@pytest.fixture
async def served(aiohttp_client) -> dict[str, Any]:
    """The document as the app serves it, checking tokens and counting quotas."""
    keys = SigningKeys("https://sso.example.com/realms/services")
    app = create_app(
        UNREACHABLE,
        pool_min_size=0,
        tokens=Tokens(keys, "usersvc"),
        quotas=LocalQuotas(parse_limits("1000/second", "50/second")),
    )
    api: TestClient = await aiohttp_client(app)
    response = await api.get("/api/docs/openapi.json")
    assert response.status == 200
    return await response.json()


def test_redoclys_recommended_rules_pass_but_the_listed_warnings(
    served: dict[str, Any], redocly: Path, tmp_path: Path
):
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(served, indent=1))
    run = subprocess.run(
        [str(redocly), "lint", str(document), "--format=json"],
        cwd=ROOT,  # where redocly.yaml is
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(run.stdout)
    found = {
        (problem["ruleId"], location["pointer"])
        for problem in report["problems"]
        for location in problem["location"]
    }
    assert found == LEFT, json.dumps(report["problems"], indent=1)
    assert report["totals"]["errors"] == 0
    assert run.returncode == 0, run.stderr
