"""No log line holds personal data: the API suite runs again with every log line (at
DEBUG, every logger) and every request it sent captured, and each email, phone, name,
link and connection reason it sent is searched for in the log.

The fuzz test is left out: its random strings are too short and arbitrary to search
for without false hits; every other API test runs (each failure path, conflicts with
their asyncpg errors, a lost database, malformed bodies).
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.telemetry.processes import REPO

PERSONAL_KEYS = {
    "email",
    "phone",
    "firstname",
    "lastname",
    "middlename",
    "connection_link",
    "connected_for",
    "reason",
}
# Shorter values would be found by chance (in a word of a traceback, a number).
SHORTEST = 4
# yoyo logs the migrations' SQL at DEBUG: a connection reason such as "work" that is
# a word of that text is no one's personal data there.
SCHEMA_WORDS = {
    word
    for path in (REPO / "migrations").glob("*.sql")
    for word in re.findall(r"[A-Za-z_]+", path.read_text())
}
SOURCE_FILE = re.compile(r'File "[^"]*"')
# Written by us, never from a request body: ids and times, which hold random hex digits.
GENERATED = ("time", "trace_id", "span_id", "request_id", "duration_ms", "pid", "size")


def _personal_values(value: object, key: str | None = None) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _personal_values(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _personal_values(item, key)
    elif key in PERSONAL_KEYS and isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def test_no_log_line_of_the_api_suite_holds_an_email_phone_name_link_or_reason(
    tmp_path: Path,
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/api",
            "--ignore=tests/api/test_fuzz.py",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        env={**os.environ, "USERSVC_TEST_CAPTURE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:]

    values: set[str] = set()
    for line in (tmp_path / "sent.jsonl").read_text().splitlines():
        sent = json.loads(line)
        try:
            values.update(_personal_values(json.loads(sent)))
        except (ValueError, RecursionError):
            continue  # a URL, or a deliberately malformed (or deeply nested) body
    values = {v for v in values if len(v) >= SHORTEST and v not in SCHEMA_WORDS}
    assert len(values) > 300, "the suite sent too few personal values to prove anything"
    assert any("@" in v for v in values)
    assert any(v.startswith("https://") for v in values)

    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) > 1000, "too few log lines: was the capture on?"
    assert any("exception" in line for line in lines), "no error was logged: a weak sample"
    # Whole values only ("work" is not found in "network").
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    any_value = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    leaks = []
    for line in lines:
        shown = {k: v for k, v in line.items() if k not in GENERATED}
        if "exception" in shown:  # the source files' paths ("/work/...") are not sent data
            shown["exception"] = SOURCE_FILE.sub("File", shown["exception"])
        text = json.dumps(shown, ensure_ascii=False)
        leaks.extend((found, text) for found in any_value.findall(text))
    assert not leaks, leaks[:5]
