"""What the privacy tests search for: the personal values a test suite sent (captured to
``sent.jsonl`` under ``USERSVC_TEST_CAPTURE_DIR``), and a pattern that finds them whole."""

import json
import re
from collections.abc import Iterator, Set
from pathlib import Path

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


def _personal_values(value: object, key: str | None = None) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _personal_values(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _personal_values(item, key)
    elif key in PERSONAL_KEYS and isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def sent_values(capture_dir: Path, own_words: Set[str]) -> set[str]:
    """The personal values of every body the suite sent, but those too short to find
    by anything but chance and the project's own words (the log may quote its SQL)."""
    values: set[str] = set()
    for line in (capture_dir / "sent.jsonl").read_text().splitlines():
        try:
            values.update(_personal_values(json.loads(json.loads(line))))
        except (ValueError, RecursionError):
            continue  # a URL, or a deliberately malformed (or deeply nested) body
    return {v for v in values if len(v) >= SHORTEST and v not in own_words}


def finder(values: set[str]) -> re.Pattern[str]:
    """Whole values only ("work" is not found in "network")."""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
