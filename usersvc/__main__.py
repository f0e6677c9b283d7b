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

from aiohttp import web

from usersvc import __version__
from usersvc.amqp import Relay, RelaySettings
from usersvc.config import DEFAULTS, SettingError, Settings, mask_password
from usersvc.db.embedded import start_embedded_postgres
from usersvc.db.migrations import MigrationsNotAllowedError, apply_migrations
from usersvc.db.pool import create_pool
from usersvc.db.queries import load
from usersvc.db.startup import DatabaseUnreachableError, wait_for_database
from usersvc.http import server
from usersvc.http.app import (
    RELAY_CLOSE_SECONDS,
    SERVER_OPTIONS,
    create_app,
    create_relay_app,
    openapi_document,
)
from usersvc.http.callers import quotas_of, tokens_of, warn_if_open
from usersvc.http.connections import Connections
from usersvc.http.shutdown import Shutdown
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
                         (unset: an embedded development PostgreSQL in .pgdata/);
                         TLS: ?sslmode=verify-full&sslrootcert=/path/ca.pem
  USERSVC_MIGRATE_DATABASE_URL  the schema owner's URL: migrations run as it, the
                         service as USERSVC_DATABASE_URL's role (unset: that one does both)
  USERSVC_DATABASE_WAIT  seconds to keep trying an unreachable database at start ({wait})
  USERSVC_DATABASE_STATEMENT_CACHE  prepared statements a connection keeps ({cache});
                         0 behind PgBouncer older than 1.21 (transaction mode)
  USERSVC_RELAY_DATABASE_URL  a direct connection to the same database, for the
                         relay's session (advisory lock, LISTEN) and migrations, where
                         USERSVC_DATABASE_URL is a pooler (unset: USERSVC_DATABASE_URL)
  USERSVC_AMQP_URL       the RabbitMQ the events go to ({amqp});
                         optional: events wait in the outbox until it can be reached;
                         TLS: amqps://user:password@host:5671/?cafile=/path/ca.pem
  USERSVC_AMQP_EXCHANGE  the topic exchange events are published to ({exchange})
  USERSVC_AMQP_QUEUE     the durable queue bound to it with '#' ({queue})
  USERSVC_RELAY          on: serving processes (serve, gunicorn) relay the outbox too;
                         off: they serve only, as --no-relay ({relay})
  USERSVC_LOG_LEVEL      DEBUG, INFO, WARNING or ERROR ({level})
  USERSVC_LOG_FORMAT     json or console (unset: console on a terminal, else json)
  USERSVC_HOST, USERSVC_PORT  where to listen ({host}, {port})
  USERSVC_AUTH           jwt (callers show a bearer token) or none (every caller may
                         do everything); unset: none, with a warning
  USERSVC_AUTH_ISSUER    with jwt: the token issuer (its discovery document names the keys)
  USERSVC_AUTH_JWKS_URL  optional: the provider's key set, instead of discovery
  USERSVC_AUTH_AUDIENCE  what a token's aud must hold ({audience})
  USERSVC_RATE_LIMIT     each caller's requests ({rate_limit})
  USERSVC_RATE_LIMIT_LOOKUPS  look-ups, batch gets, listing pages ({lookups})
  USERSVC_RATE_LIMIT_STORAGE  memory:// (each process counts) or redis://host:6379/0
  USERSVC_MAX_CONNECTIONS, USERSVC_MAX_CONNECTIONS_PER_PEER  connections kept open, in all
                         and per peer address ({connections}, {per_peer}; 0: no bound)
  USERSVC_DRAIN_SECONDS  after SIGTERM or SIGINT, seconds to go on serving with /readyz
                         answering 503, before the listener closes ({drain})
  USERSVC_RELAY_PORT     where 'usersvc relay' serves /metrics, /livez, /readyz ({relay_port})

probes: GET /livez (200 while the process serves), GET /readyz (200 when the database
answers, every migration is applied and the process is not shutting down, else 503).

stopping: SIGTERM or SIGINT drains (as above), then answers every request received,
lets the relay confirm what it sent, and exits; a repeated signal changes nothing.

exit status: 0 stopped on SIGTERM or SIGINT; 1 the database did not answer, the
port could not be opened, or 'migrate' was stopped; 2 a setting or an option cannot
work.""".format(
    wait=DEFAULTS["USERSVC_DATABASE_WAIT"],
    cache=DEFAULTS["USERSVC_DATABASE_STATEMENT_CACHE"],
    relay=DEFAULTS["USERSVC_RELAY"],
    amqp=DEFAULTS["USERSVC_AMQP_URL"],
    exchange=DEFAULTS["USERSVC_AMQP_EXCHANGE"],
    queue=DEFAULTS["USERSVC_AMQP_QUEUE"],
    level=DEFAULTS["USERSVC_LOG_LEVEL"],
    host=DEFAULTS["USERSVC_HOST"],
    port=DEFAULTS["USERSVC_PORT"],
    audience=DEFAULTS["USERSVC_AUTH_AUDIENCE"],
    rate_limit=DEFAULTS["USERSVC_RATE_LIMIT"],
    lookups=DEFAULTS["USERSVC_RATE_LIMIT_LOOKUPS"],
    connections=DEFAULTS["USERSVC_MAX_CONNECTIONS"],
    per_peer=DEFAULTS["USERSVC_MAX_CONNECTIONS_PER_PEER"],
    drain=DEFAULTS["USERSVC_DRAIN_SECONDS"],
    relay_port=DEFAULTS["USERSVC_RELAY_PORT"],
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
        help="do not publish the outbox from this process (run 'usersvc relay' elsewhere; "
        "USERSVC_RELAY=off)",
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
        description="Print the OpenAPI document served at /api/docs/openapi.json, as the "
        "settings (USERSVC_AUTH, the quotas) would serve it; needs no database.",
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


def _database_urls(settings: Settings, command: str) -> dict[str, str]:
    """The databases a command uses, by setting: the first one migrates. Two roles
    (docs/security.md): migrations as the schema's owner when its URL is given, the
    service as the runtime role; in the simple case one URL does both. Migrations need
    a session of their own, as the relay does: never through a pooler in transaction
    mode, so the relay's direct URL migrates when the owner's is not given."""
    migrate_url = settings.migrate_database_url
    relay_url = settings.relay_database_url
    if command == "migrate" and (migrate_url or relay_url):
        if migrate_url:
            return {"USERSVC_MIGRATE_DATABASE_URL": migrate_url}
        return {"USERSVC_RELAY_DATABASE_URL": relay_url}  # type: ignore[dict-item]
    # Serving beside an owner's URL with no runtime URL would fall back to the
    # embedded database: surely not what was meant. Migrating alone needs only it.
    if migrate_url and not settings.database_url:
        raise SettingError("USERSVC_MIGRATE_DATABASE_URL", "is set but USERSVC_DATABASE_URL is not")
    database_url = _database_url(settings)
    urls: dict[str, str] = {}
    if migrate_url:
        urls["USERSVC_MIGRATE_DATABASE_URL"] = migrate_url
    if relay_url:
        urls["USERSVC_RELAY_DATABASE_URL"] = relay_url
    urls["USERSVC_DATABASE_URL"] = database_url
    return {next(iter(urls)): urls[next(iter(urls))]} if command == "migrate" else urls


def _relay_settings(settings: Settings) -> RelaySettings:
    return RelaySettings(
        amqp_url=settings.amqp_url, exchange=settings.amqp_exchange, queue=settings.amqp_queue
    )


async def _run_relay(
    database_url: str,
    relay_url: str,
    relay_settings: RelaySettings,
    statement_cache: int,
    host: str,
    port: int,
) -> None:
    """The relay alone, its session on ``relay_url`` (a direct connection), its batches
    on a pool of ``database_url``, with /metrics and the probes on ``host:port``, until
    SIGTERM or SIGINT; then it stops after the current batch's confirms (a repeated
    signal changes nothing), and /readyz answers 503 meanwhile."""
    # One connection for the relay's batches, one for its housekeeping, one for a probe
    # or a scrape (its session with the lock is a connection of its own).
    pool = await create_pool(database_url, min_size=1, max_size=3, statement_cache=statement_cache)
    metrics.track_pool(pool)
    shutdown = Shutdown()
    relay = Relay(pool, relay_url, load(), relay_settings, on_published=metrics.published)
    runner = server.Runner(create_relay_app(pool, shutdown), access_log=None)

    loop = asyncio.get_running_loop()
    running: list[asyncio.Task[None]] = []

    def signalled(signum: signal.Signals) -> None:
        if shutdown.begin():
            log.info("%s: stopping the relay after its confirms", signum.name)
            relay.stop()
            for task in running:  # bounded, as beside the API
                loop.call_later(relay_settings.confirm_timeout + RELAY_CLOSE_SECONDS, task.cancel)
        else:
            log.info("%s again: already stopping", signum.name)

    for signum in server.STOP_SIGNALS:
        loop.add_signal_handler(signum, signalled, signum)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("relay metrics and probes on http://%s:%d (/metrics, /livez, /readyz)", host, port)
        if not shutdown.begun:
            running.append(asyncio.create_task(relay.run(), name="outbox-relay"))
            with contextlib.suppress(asyncio.CancelledError):
                await running[0]
    finally:
        await runner.cleanup()
        await pool.close()


def _stopped_while_starting(command: str) -> None:
    """Until it serves, SIGTERM or SIGINT stops the command where it is, without the
    traceback a KeyboardInterrupt prints: exit status 0, except for ``migrate``, whose
    migrations were then not applied (1)."""

    def stop(signum: int, frame: object) -> NoReturn:
        server.hold_signals()  # a second one must not break the exit hooks
        log.info("%s while starting: stopped", signal.Signals(signum).name)
        raise SystemExit(UNAVAILABLE if command == "migrate" else 0)

    for signum in server.STOP_SIGNALS:
        signal.signal(signum, stop)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(_with_command(sys.argv[1:] if argv is None else argv))
    if args.command == "openapi":
        try:
            settings = Settings.from_env()
        except SettingError as error:
            _fail(BAD_SETTING, str(error))
        # As this deployment's settings would serve it (USERSVC_AUTH, the quotas).
        document = openapi_document(tokens_of(settings), quotas_of(settings))
        print(json.dumps(document, indent=2))
        return
    _stopped_while_starting(args.command)
    try:
        _main(args)
    finally:
        server.hold_signals()


def _main(args: argparse.Namespace) -> None:
    try:
        settings = Settings.from_env()
    except SettingError as error:
        _fail(BAD_SETTING, str(error))
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    loop = _new_loop()
    try:
        urls = _database_urls(settings, args.command)
        for name, url in urls.items():
            try:
                attempts = loop.run_until_complete(
                    wait_for_database(url, settings.database_wait, name)
                )
            except DatabaseUnreachableError as error:
                _fail(UNAVAILABLE, f"{name}: {error}")
            if attempts > 1:
                log.info("the database answered after %d attempts", attempts)
        [(migrate_name, migrate_url), *_] = urls.items()
        database_url = urls.get("USERSVC_DATABASE_URL", migrate_url)
        relay_url = urls.get("USERSVC_RELAY_DATABASE_URL", database_url)
        applied = apply_migrations(migrate_url)
    except SettingError as error:
        _fail(BAD_SETTING, str(error))
    except RuntimeError as error:  # the embedded server is not installed or did not start
        _fail(BAD_SETTING, str(error))
    except MigrationsNotAllowedError as error:
        _fail(BAD_SETTING, f"{migrate_name}: {error}")
    log.info("%d migration(s) applied", applied)
    if args.command == "migrate":
        return
    configure_tracing()  # spans with ids for the logs and events; exported when configured
    if args.command == "relay":
        log.info(
            "relaying the outbox of %s to exchange %r on %s",
            mask_password(relay_url),
            settings.amqp_exchange,
            mask_password(settings.amqp_url),
        )
        try:
            loop.run_until_complete(
                _run_relay(
                    database_url,
                    relay_url,
                    _relay_settings(settings),
                    settings.database_statement_cache,
                    settings.host,
                    settings.relay_port,
                )
            )
        except OSError as error:
            if error.errno not in CANNOT_LISTEN:
                raise
            _fail(
                UNAVAILABLE,
                f"cannot listen on {settings.host}:{settings.relay_port}: {error.strerror}",
            )
        return
    host = args.host or settings.host
    port = args.port or settings.port
    relay = None if args.no_relay or not settings.relay else _relay_settings(settings)
    warn_if_open(settings)
    app = create_app(
        database_url,
        relay=relay,
        relay_database_url=relay_url,
        statement_cache=settings.database_statement_cache,
        tokens=tokens_of(settings),
        quotas=quotas_of(settings),
    )

    def serving() -> None:  # once the port is ours: said before, it was said of a taken one
        log.info(
            "serving on http://%s:%d (API under /api/v1, docs at /api/docs, metrics at "
            "/metrics); database %s; broker %s",
            host,
            port,
            mask_password(database_url),
            "not used (--no-relay)" if relay is None else mask_password(settings.amqp_url),
        )

    # SIGTERM or SIGINT: /readyz 503, serve the drain seconds, stop accepting, answer
    # the requests received (bounded), then the cleanup: the relay after its current
    # confirms, then the pool. Exit status 0. (``server.run``: ``web.run_app`` with the
    # runner that answers malformed requests with envelopes, and drains as §6 says.)
    try:
        server.run(
            app,
            host=host,
            port=port,
            loop=loop,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            drain_seconds=settings.drain_seconds,
            connections=Connections(settings.max_connections_per_peer, settings.max_connections),
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
