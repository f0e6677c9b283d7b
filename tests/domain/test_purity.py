"""Architecture: the functional core imports no I/O library and reads no clock or randomness."""

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import usersvc.domain

DOMAIN_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(usersvc.domain.__path__, f"{usersvc.domain.__name__}.")
)
DOMAIN_FILES = sorted(Path(usersvc.domain.__path__[0]).rglob("*.py"))

# Top-level modules that do I/O (network, database, broker, HTTP, event loops).
FORBIDDEN_TOP_LEVEL = {
    "aiohttp",
    "aiohttp_apigami",
    "aiohttp_apispec",
    "aiormq",
    "aiosignal",
    "asyncio",
    "asyncpg",
    "dns",
    "http",
    "httpx",
    "marshmallow",
    "opentelemetry",
    "pamqp",
    "prometheus_async",
    "prometheus_client",
    "psycopg",
    "psycopg2",
    "requests",
    "selectors",
    "socket",
    "sqlite3",
    "ssl",
    "subprocess",
    "urllib3",
    "uvloop",
    "yarl",
    "yoyo",
}
FORBIDDEN_MODULES = {"urllib.request", "email.mime", "smtplib", "ftplib"}


def test_the_domain_package_has_the_expected_modules():
    expected = {"commands", "events", "failures", "model", "values"}
    assert {name.rsplit(".", 1)[-1] for name in DOMAIN_MODULES} >= expected


def test_importing_the_domain_pulls_in_no_io_library_nor_another_part_of_the_service():
    imports = "; ".join(f"import {name}" for name in DOMAIN_MODULES)
    code = f"{imports}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(usersvc.domain.__path__[0]).parents[1],
    )
    # The subprocess's own "import json" is not the domain's doing.
    loaded = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    top_level = {name.split(".")[0] for name in loaded}
    assert top_level & FORBIDDEN_TOP_LEVEL == set()
    assert loaded & FORBIDDEN_MODULES == set()
    ours = {name for name in loaded if name == "usersvc" or name.startswith("usersvc.")}
    assert ours <= {"usersvc", "usersvc.domain", *DOMAIN_MODULES}


@pytest.mark.parametrize("name", DOMAIN_MODULES)
def test_every_domain_module_imports_cleanly(name):
    assert importlib.import_module(name).__name__ == name


# Calls that read a clock or make randomness/ids: the shell passes these in (Stamp).
IMPURE_ATTRIBUTE_CALLS = {
    "now",
    "utcnow",
    "today",
    "uuid1",
    "uuid4",
    "uuid7",
    "urandom",
    "getrandbits",
    "token_hex",
    "token_bytes",
    "token_urlsafe",
}
# time.time() and friends; a datetime's own .time() is pure, so only on the module.
CLOCK_CALLS = {"time", "time_ns", "monotonic", "perf_counter", "process_time"}
RANDOM_MODULES = {"random", "secrets"}
IMPURE_NAME_CALLS = IMPURE_ATTRIBUTE_CALLS | CLOCK_CALLS | {"random", "randint", "choice", "open"}
IMPURE_IMPORTS = {"random", "secrets", "time", "os", "socket", "asyncio", "logging"}


def impurities(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                receiver = func.value.id if isinstance(func.value, ast.Name) else None
                if (
                    func.attr in IMPURE_ATTRIBUTE_CALLS
                    or (receiver == "time" and func.attr in CLOCK_CALLS)
                    or receiver in RANDOM_MODULES
                ):
                    found.append(f"line {node.lineno}: call of {receiver}.{func.attr}()")
            if isinstance(func, ast.Name) and func.id in IMPURE_NAME_CALLS:
                found.append(f"line {node.lineno}: call of {func.id}()")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in IMPURE_IMPORTS
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in IMPURE_IMPORTS:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            found += [
                f"line {node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if a.name in IMPURE_NAME_CALLS
            ]
    return found


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: p.name)
def test_no_domain_source_reads_a_clock_or_makes_randomness_or_ids(path):
    assert impurities(ast.parse(path.read_text(), filename=str(path))) == []


def test_the_impurity_check_finds_what_it_looks_for():
    sample = (
        "import random\nfrom uuid import uuid4\nimport time\n"
        "datetime.now(UTC)\nuuid.uuid4()\ntime.time()\nrandom.random()\nuuid4()\n"
        "secrets.choice(x)\nmoment.time()\n"
    )
    found = impurities(ast.parse(sample))
    assert len(found) == 9, found  # all but the datetime's own .time()
