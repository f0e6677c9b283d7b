"""The documentation in the repository stays whole: it links only inside the
repository, and names every setting, error code, social network and event the code has."""

import re
from pathlib import Path

import pytest

from usersvc.config import DEFAULTS
from usersvc.domain.events import EVENT_TYPES
from usersvc.domain.model import SOCIAL_NETWORK_HOSTS
from usersvc.http.failures import (
    FAILURES,
    HTTP_ERRORS,
    IDEMPOTENT,
    INTERNAL_ERROR,
    MALFORMED,
    SERVICE_UNAVAILABLE,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
API = ROOT / "docs" / "api.md"
SECURITY = ROOT / "docs" / "security.md"
OPERATIONS = ROOT / "docs" / "operations.md"
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>")


@pytest.mark.parametrize(
    "page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_a_page_links_only_inside_the_repository(page: Path):
    text = page.read_text()
    assert "shared/" not in text
    for inline, bare in LINK.findall(text):
        target = inline or bare
        if target.startswith("#"):
            continue
        if target.startswith(("http://", "https://")):
            # The running service's own pages, nothing beyond this machine.
            assert target.startswith("http://localhost:"), target
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), target
        assert path.exists(), target


def test_the_readme_opens_with_the_command_that_runs_the_service_and_the_one_that_tests_it():
    text = README.read_text()
    first_block = text.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert commands == ["uv run usersvc", "uv run pytest"]
    assert text.index("```") < text.index("\n## ")  # before any section
    assert "(docs/api.md)" in text


def test_the_operations_page_lists_every_setting():
    text = OPERATIONS.read_text()
    for name in DEFAULTS:
        assert f"`{name}`" in text, name


def test_the_api_document_names_every_code_network_host_and_event():
    text = API.read_text()
    answers = [
        *FAILURES.values(),
        *HTTP_ERRORS.values(),
        *MALFORMED,
        *IDEMPOTENT,
        INTERNAL_ERROR,
        SERVICE_UNAVAILABLE,
    ]
    for answer in answers:
        row = re.search(rf"\| {answer.status} \| `{answer.code}` \| ", text)
        assert row, f"{answer.status} {answer.code}"
    for network, hosts in SOCIAL_NETWORK_HOSTS.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{network.value}` |"))
        assert all(f"`{host}`" in row for host in hosts), network
    for event in EVENT_TYPES:
        assert f"| `{event.__name__}` |" in text, event.__name__
