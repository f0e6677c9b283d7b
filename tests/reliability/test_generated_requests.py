"""Generated input: schemathesis reads the service's own API document and sends its
examples, then positive and negative cases (boundary values, wrong types, missing
keys, other methods) to every operation, with a fixed seed, on a real socket and a
real database. Every answer is checked: never a 5xx, and status codes, content types,
headers and bodies as the document says."""

from collections import Counter
from collections.abc import Iterator
from uuid import uuid4

import attrs
import psycopg
import pytest
import schemathesis
from psycopg import sql
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from tests.conftest import ADMIN_URL, _url_for
from tests.reliability.threaded import Service

DOCUMENT = "/api/docs/openapi.json"
SEED = 20261127
EXAMPLES_PER_OPERATION = 200
MINIMUM_CASES = 2000

# The document cannot say everything the rules refuse (a name of spaces only, an email
# already taken, a link of another network, no contact at all): a schema-valid request
# may still get one of its documented refusals.
# 412: a generated If-Match names another version than the user has.
DOCUMENTED_REFUSALS = ["2xx", "400", "404", "409", "412", "422"]


@attrs.define
class Run:
    cases: int = 0
    statuses: Counter[int] = attrs.field(factory=Counter)
    failures: list[str] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


def generate(base: str, examples: int) -> Run:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base,
            "cache": {"enabled": False},  # each run the same, and nothing left behind
            "generation": {
                "mode": "all",  # positive and negative cases
                "max-examples": examples,
                "database": "none",
            },
            "checks": {"positive_data_acceptance": {"expected-statuses": DOCUMENTED_REFUSALS}},
        }
    )
    schema = schemathesis.openapi.from_url(base + DOCUMENT, config=config)
    run = Run()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            run.cases += len(recorder.cases)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    run.statuses[interaction.response.status_code] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    case = recorder.cases[case_id].value
                    run.failures.append(
                        f"{case.method} {case.formatted_path} {check.name}:"
                        f" {check.failure_info.failure}"[:1000]
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(str(event.info if hasattr(event, "info") else event)[:1000])
    return run


@pytest.fixture(scope="module")
def service(template_database: str) -> Iterator[Service]:
    name = f"usersvc_test_generated_{uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    try:
        with Service(_url_for(name)) as running:
            yield running
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_generated_requests_are_answered_as_documented_and_never_with_a_5xx(service: Service):
    run = generate(f"http://127.0.0.1:{service.port}", EXAMPLES_PER_OPERATION)
    print(
        f"\n{DOCUMENT}: {run.cases} generated cases"
        f" (seed {SEED}); statuses {sorted(run.statuses.items())}"
    )
    assert not run.errors, run.errors
    assert not run.failures, "\n".join(sorted(set(run.failures)))
    assert not [status for status in run.statuses if status >= 500]
    assert run.cases >= MINIMUM_CASES
