"""The usersvc command: serve the API (the default), apply migrations, or run the outbox
relay alone."""

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from usersvc import __version__
from usersvc.amqp import Relay, RelaySettings
from usersvc.config import DEFAULTS, SettingError, Settings, mask_password
from usersvc.db.embedded import start_embedded_postgres
from usersvc.db.migrations import apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.startup import DatabaseUnreachableError, wait_for_database
from usersvc.http import server
from usersvc.http.app import SERVER_OPTIONS, create_app, openapi_document
from usersvc.telemetry import metrics
from usersvc.telemetry.logs import configure_logging
from usersvc.telemetry.tracing import configure_tracing

log = logging.getLogger("usersvc")

EMBEDDED_PGDATA = Path(".pgdata")
SHUTDOWN_TIMEOUT = 10.0  # seconds for requests in flight at SIGTERM
COMMANDS = ("serve", "migrate", "relay", "openapi")

# Exit codes: 2 for a setting that cannot work (as argparse does for a bad option),
# 1 for what may work later (the database did not answer, the port is taken).
BAD_SETTING = 2
UNAVAILABLE = 1
CANNOT_LISTEN = {errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES}

USAGE = """\
usersvc [serve] [--host HOST] [--port PORT] [--no-relay]
       usersvc migrate
       usersvc relay
       usersvc openapi
       usersvc --version"""

EPILOG = """\
settings (environment variables; the command line wins for host and port):
  USERSVC_DATABASE_URL   postgresql://user:password@host:5432/database
                         (unset: an embedded development PostgreSQL in .pgdata/)
  USERSVC_DATABASE_WAIT  seconds to keep trying an unreachable database at start ({wait})
  USERSVC_AMQP_URL       the RabbitMQ the events go to ({amqp});
                         optional: events wait in the outbox until it can be reached
  USERSVC_AMQP_EXCHANGE  the topic exchange events are published to ({exchange})
  USERSVC_AMQP_QUEUE     the durable queue bound to it with '#' ({queue})
  USERSVC_LOG_LEVEL      DEBUG, INFO, WARNING or ERROR ({level})
  USERSVC_LOG_FORMAT     json or console (unset: console on a terminal, else json)
  USERSVC_HOST, USERSVC_PORT  where to listen ({host}, {port})

exit status: 0 stopped on SIGTERM or SIGINT; 1 the database did not answer or the
port could not be opened; 2 a setting or an option cannot work.""".format(
    wait=DEFAULTS["USERSVC_DATABASE_WAIT"],
    amqp=DEFAULTS["USERSVC_AMQP_URL"],
    exchange=DEFAULTS["USERSVC_AMQP_EXCHANGE"],
    queue=DEFAULTS["USERSVC_AMQP_QUEUE"],
    level=DEFAULTS["USERSVC_LOG_LEVEL"],
    host=DEFAULTS["USERSVC_HOST"],
    port=DEFAULTS["USERSVC_PORT"],
)


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number (1 to 65535)")
    return int(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usersvc",
        usage=USAGE,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"usersvc {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", prog="usersvc")
    serve = commands.add_parser(
        "serve",
        help="apply pending migrations, then serve the API and relay the outbox (the default)",
        description="Apply pending migrations, then serve the API (with the outbox relay).",
    )
    serve.add_argument("--host", help="the address to listen on (USERSVC_HOST)")
    serve.add_argument("--port", type=_port, help="the port to listen on (USERSVC_PORT)")
    serve.add_argument(
        "--no-relay",
        action="store_true",
        help="do not publish the outbox from this process (run 'usersvc relay' elsewhere)",
    )
    commands.add_parser(
        "migrate",
        help="apply pending migrations and exit",
        description="Apply pending migrations and exit.",
    )
    commands.add_parser(
        "relay",
        help="apply pending migrations, then only publish the outbox",
        description="Apply pending migrations, then only publish the outbox to RabbitMQ.",
    )
    commands.add_parser(
        "openapi",
        help="print the OpenAPI document the API serves (for client generators, linters)",
        description="Print the OpenAPI document served at /api/docs/openapi.json; "
        "needs no database.",
    )
    return parser


def _with_command(argv: Sequence[str]) -> list[str]:
    """``serve`` when no command is named: ``usersvc --port 8001`` serves on 8001."""
    if argv and (argv[0] in COMMANDS or argv[0] in {"-h", "--help", "--version"}):
        return list(argv)
    return ["serve", *argv]


def _fail(status: int, message: str) -> NoReturn:
    """One line, the way argparse reports a bad option, and the exit status."""
    print(f"usersvc: error: {message}", file=sys.stderr)
    sys.exit(status)


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
    args = _parser().parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    if args.command == "openapi":
        print(json.dumps(openapi_document(), indent=2))
        return
    try:
        settings = Settings.from_env()
    except SettingError as error:
        _fail(BAD_SETTING, str(error))
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    loop = _new_loop()
    try:
        database_url = _database_url(settings)
        attempts = loop.run_until_complete(wait_for_database(database_url, settings.database_wait))
    except SettingError as error:
        _fail(BAD_SETTING, str(error))
    except RuntimeError as error:  # the embedded server is not installed or did not start
        _fail(BAD_SETTING, str(error))
    except DatabaseUnreachableError as error:
        _fail(UNAVAILABLE, f"USERSVC_DATABASE_URL: {error}")
    if attempts > 1:
        log.info("the database answered after %d attempts", attempts)
    applied = apply_migrations(database_url)
    log.info("%d migration(s) applied", applied)
    if args.command == "migrate":
        return
    configure_tracing()  # spans with ids for the logs and events; exported when configured
    if args.command == "relay":
        log.info(
            "relaying the outbox of %s to exchange %r on %s",
            mask_password(database_url),
            settings.amqp_exchange,
            mask_password(settings.amqp_url),
        )
        loop.run_until_complete(_run_relay(database_url, _relay_settings(settings)))
        return
    host = args.host or settings.host
    port = args.port or settings.port
    relay = None if args.no_relay else _relay_settings(settings)
    app = create_app(database_url, relay=relay)

    def serving() -> None:  # once the port is ours: said before, it was said of a taken one
        log.info(
            "serving on http://%s:%d (API under /api/v1, docs at /api/docs, metrics at "
            "/metrics); database %s; broker %s",
            host,
            port,
            mask_password(database_url),
            "not used (--no-relay)" if relay is None else mask_password(settings.amqp_url),
        )

    # SIGTERM: stop accepting, let requests in flight finish (bounded), then the
    # cleanup: the relay after its current confirms, then the pool. Exit status 0.
    # (``server.run``: ``web.run_app`` with the runner that answers malformed requests
    # with envelopes.)
    try:
        server.run(
            app,
            host=host,
            port=port,
            loop=loop,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            on_serving=serving,
            **SERVER_OPTIONS,  # header and body read timeouts
        )
    except OSError as error:
        if error.errno not in CANNOT_LISTEN:
            raise
        _fail(UNAVAILABLE, f"cannot listen on {host}:{port}: {error.strerror}")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main(sys.argv[1:])
