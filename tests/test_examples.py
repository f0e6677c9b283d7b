"""The shell examples of the documentation run, in the order shown, on a fresh service,
and answer what they show.

A page takes part by carrying the line :data:`MARKER`; then every fenced block of it
whose info string is ``sh`` or ``console`` runs, in order, in one bash session (so ids
captured into shell variables carry over), against ``usersvc serve`` on a database of
its own: ``localhost:8000`` in a command is that service. A block whose info string
names more than the language (```` ```sh not-run ````) is shown only.

- ``sh``: a command is one or more lines (``\\`` continues one); the comment lines right
  after it are what it answers when they hold JSON (a ``{``, ``[`` or digit starts
  them), and prose otherwise.
- ``console``: a command starts with ``$ ``; the lines up to the next one are its answer.

An answer shown is compared with the one given by shape: the same keys, list lengths
and JSON types throughout, and the same value of every ``status`` and ``code`` key (so
a 404 shown as a 200, or another error code, fails); a number alone must be equal
(an HTTP status printed by ``curl -w``).
"""

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.test_cli import _env, _free_port, _stop, _usersvc, _wait_healthy

ROOT = Path(__file__).resolve().parent.parent
MARKER = (
    "<!-- examples: the sh and console blocks of this page run in order "
    "(tests/test_examples.py) -->"
)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
RUN = {"sh", "console"}
EXACT_KEYS = {"status", "code"}


@attrs.frozen
class Step:
    command: str
    shown: str | None  # the answer shown after it, when it is JSON
    line: int  # where the command starts in its page


def _answer(lines: list[str]) -> str | None:
    text = "\n".join(lines).strip()
    return text if text[:1] in ("{", "[") or text[:1].isdigit() else None


def _complete(command: str) -> bool:
    """Whether the command ends here: no ``\\`` continues it, no quote is left open."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def _sh_steps(body: str, first_line: int) -> Iterator[Step]:
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        start = i
        while not _complete("\n".join(lines[start : i + 1])):
            i += 1
        command = "\n".join(lines[start : i + 1])
        i += 1
        shown = []
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            shown.append(lines[i].lstrip()[1:].removeprefix(" "))
            i += 1
        yield Step(command, _answer(shown), first_line + start)


def _console_steps(body: str, first_line: int) -> Iterator[Step]:
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        start = i
        command = [lines[i][2:]]
        while not _complete("\n".join(command)):
            i += 1
            command.append(lines[i].removeprefix("> "))
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        yield Step("\n".join(command), _answer(shown), first_line + start)


def steps(markdown: str) -> list[Step]:
    """The commands of the page's runnable blocks, in order, with their shown answers."""
    found: list[Step] = []
    for block in FENCE.finditer(markdown):
        info = block["info"].strip()
        if info not in RUN:
            continue
        first_line = markdown.count("\n", 0, block.start("body")) + 1
        read = _sh_steps if info == "sh" else _console_steps
        found.extend(read(block["body"], first_line))
    return found


def same_shape(shown: Any, given: Any, where: str = "$") -> None:
    """Raise AssertionError where ``given`` is not of ``shown``'s shape (module doc)."""
    assert type(shown) is type(given) or (
        isinstance(shown, int | float) and isinstance(given, int | float)
    ), f"{where}: shown {shown!r}, answered {given!r}"
    if where == "$" and not isinstance(shown, dict | list):  # a number or a word alone
        assert shown == given, f"{shown!r} shown, {given!r} given"
    if isinstance(shown, dict):
        assert shown.keys() == given.keys(), f"{where}: keys {sorted(shown)} != {sorted(given)}"
        for key, value in shown.items():
            if key in EXACT_KEYS and not isinstance(value, dict | list):
                assert value == given[key], (
                    f"{where}.{key}: shown {value!r}, answered {given[key]!r}"
                )
            same_shape(value, given[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert len(shown) == len(given), f"{where}: {len(shown)} items shown, {len(given)} answered"
        for n, (one, other) in enumerate(zip(shown, given, strict=True)):
            same_shape(one, other, f"{where}[{n}]")


def run_in_order(page_steps: list[Step], port: int, folder: Path) -> list[str]:
    """Each command in one bash session, its output kept apart; stops at the first that
    fails (``set -e``). The outputs of the commands that ran."""
    outputs = folder / "outputs"
    outputs.mkdir()
    script = ["set -euo pipefail"]
    for n, step in enumerate(page_steps):
        command = step.command.replace("localhost:8000", f"127.0.0.1:{port}")
        script += ["{", command, f"}} > {outputs}/{n} 2>&1"]
    run = subprocess.run(
        [shutil.which("bash") or "bash", "-c", "\n".join(script)],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    done = [(outputs / str(n)).read_text() for n in range(len(page_steps))
            if (outputs / str(n)).exists()]  # fmt: skip
    if run.returncode != 0:
        failed = page_steps[len(done) - 1]
        pytest.fail(
            f"line {failed.line}: exit status {run.returncode}:\n{failed.command}\n"
            f"{done[-1] if done else ''}{run.stderr}"
        )
    return done


def opted_in() -> list[Path]:
    return [page for page in PAGES if MARKER in page.read_text()]


def test_the_api_page_opts_in_and_each_opted_in_page_has_examples_with_answers():
    assert ROOT / "docs" / "api.md" in opted_in()
    for page in opted_in():
        found = steps(page.read_text())
        assert found, page
        assert any(step.shown for step in found), page


@pytest.mark.parametrize("page", opted_in(), ids=lambda page: page.name)
def test_the_examples_run_in_order_on_a_fresh_service_and_answer_as_shown(
    page: Path, database_url: str, tmp_path: Path
):
    assert shutil.which("curl"), "the examples use curl"
    assert shutil.which("jq"), "the examples use jq"
    page_steps = steps(page.read_text())
    port = _free_port()
    service = _usersvc(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-relay",
        env=_env(USERSVC_DATABASE_URL=database_url, USERSVC_LOG_LEVEL="WARNING"),
    )
    try:
        _wait_healthy(service, port)
        outputs = run_in_order(page_steps, port, tmp_path)
    finally:
        _stop(service)
    for step, output in zip(page_steps, outputs, strict=True):
        if step.shown is None:
            continue
        try:
            given = json.loads(output)
        except ValueError:
            pytest.fail(f"line {step.line}: answered no JSON:\n{step.command}\n{output}")
        try:
            same_shape(json.loads(step.shown), given)
        except AssertionError as error:
            pytest.fail(f"line {step.line}: {error}\n{step.command}\nanswered: {output}")


@pytest.mark.parametrize(
    ("shown", "given"),
    [
        ({"status": 200, "result": None}, {"status": 404, "result": None}),
        (
            {"status": 404, "error": {"data": {"code": "a"}}},
            {"status": 404, "error": {"data": {"code": "b"}}},
        ),
        ({"status": 200, "result": [1, 2]}, {"status": 200, "result": [1]}),
        ({"status": 200, "result": {"a": 1}}, {"status": 200, "result": {"b": 1}}),
        ({"status": 200, "result": "x"}, {"status": 200, "result": None}),
        (304, 200),
    ],
)
def test_an_answer_of_another_shape_status_or_code_is_not_the_one_shown(shown: Any, given: Any):
    with pytest.raises(AssertionError):
        same_shape(shown, given)


def test_ids_and_times_may_differ_from_the_ones_shown():
    shown = {
        "status": 200,
        "result": {"user_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "version": 1},
    }
    given = {
        "status": 200,
        "result": {"user_id": "0b6cf1e4-8f5e-4c7e-9a63-2a1d8e0f7b10", "version": 2},
    }
    same_shape(shown, given)
