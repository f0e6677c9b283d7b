"""Fixtures of the telemetry tests: the API tests' app, the relay tests' broker names."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import api
from tests.relay.conftest import broker, names, settings
from usersvc.telemetry.logs import configure_logging, reset_logging

__all__ = ["api", "broker", "names", "settings"]


@pytest.fixture
def log_lines(tmp_path: Path) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every log line as JSON, at DEBUG: ``log_lines()`` reads what was written so far."""
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        configure_logging("DEBUG", "json", stream)

        def read() -> list[dict[str, Any]]:
            stream.flush()
            return [json.loads(line) for line in path.read_text().splitlines()]

        try:
            yield read
        finally:
            reset_logging()
