"""``usersvc``: serve the API (default), apply migrations, or run the outbox relay alone."""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from usersvc.amqp import Relay, RelaySettings
from usersvc.config import Settings
from usersvc.db.embedded import start_embedded_postgres
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.http.app import create_app
from usersvc.telemetry import metrics
from usersvc.telemetry.logs import configure_logging, mask_url
from usersvc.telemetry.tracing import configure_tracing

log = logging.getLogger("usersvc")

EMBEDDED_PGDATA = Path(".pgdata")
SHUTDOWN_TIMEOUT = 10.0  # seconds for requests in flight at SIGTERM


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    url = start_embedded_postgres(EMBEDDED_PGDATA.resolve())
    log.warning(
        "USERSVC_DATABASE_URL is not set: using the embedded development PostgreSQL in %s "
        "(for development only; set USERSVC_DATABASE_URL in production)",
        EMBEDDED_PGDATA.resolve(),
    )
    return url


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usersvc", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="apply pending migrations, then serve (default)")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument(
        "--no-relay",
        action="store_true",
        help="do not publish the outbox from this process (run 'usersvc relay' elsewhere)",
    )
    commands.add_parser("migrate", help="apply pending migrations and exit")
    commands.add_parser("relay", help="apply pending migrations, then only publish the outbox")
    return parser


def _relay_settings(settings: Settings) -> RelaySettings:
    return RelaySettings(
        amqp_url=settings.amqp_url, exchange=settings.amqp_exchange, queue=settings.amqp_queue
    )


async def _run_relay(database_url: str, relay_settings: RelaySettings) -> None:
    """The relay alone, until SIGTERM or SIGINT."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    metrics.track_pool(pool)
    relay = Relay(pool, database_url, load(), relay_settings, on_published=metrics.published)
    task = asyncio.create_task(relay.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # After the current batch's confirms; a second signal does not wait.
        loop.add_signal_handler(signum, lambda: task.cancel() if relay.stopping else relay.stop())
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    args = _parser(settings).parse_args(argv)
    database_url = _database_url(settings)
    applied = apply_migrations(database_url)
    log.info("%d migration(s) applied", applied)
    if args.command == "migrate":
        return
    loop = _new_loop()
    configure_tracing()  # spans with ids for the logs and events; exported when configured
    if args.command == "relay":
        log.info(
            "relaying the outbox of %s to exchange %r on %s",
            mask_url(database_url),
            settings.amqp_exchange,
            mask_url(settings.amqp_url),
        )
        loop.run_until_complete(_run_relay(database_url, _relay_settings(settings)))
        return
    host = getattr(args, "host", settings.host)
    port = getattr(args, "port", settings.port)
    relay = None if getattr(args, "no_relay", False) else _relay_settings(settings)
    app = create_app(database_url, relay=relay)
    log.info(
        "serving on http://%s:%d (API under /api/v1, docs at /api/docs, metrics at /metrics); "
        "database %s; broker %s",
        host,
        port,
        mask_url(database_url),
        "not used (--no-relay)" if relay is None else mask_url(settings.amqp_url),
    )
    # SIGTERM: stop accepting, let requests in flight finish (bounded), then the
    # cleanup: the relay after its current confirms, then the pool. Exit status 0.
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,  # ours is written by the telemetry middleware
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        loop=loop,
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main(sys.argv[1:])
