"""A PgBouncer in transaction mode for the tests of this folder (one per run)."""

from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_URL
from tests.pgbouncer.support import PgBouncer, running_pgbouncer


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    with running_pgbouncer(ADMIN_URL) as bouncer:
        yield bouncer


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, session_database_url: str) -> str:
    """This test's own database through PgBouncer (no role defaults set)."""
    _, _, database = session_database_url.rpartition("/")
    return f"{pgbouncer.url}/{database}"
