"""What gunicorn runs (``gunicorn.conf.py`` names them): the app factory, the worker and
the logger.

Imported by gunicorn's master for the logger, so nothing here imports the metrics at
module level: in multiprocess mode a metric made in the master would be a phantom
"live" process in every scrape.
"""

import logging
import sys

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker
from gunicorn import glogging

from usersvc.config import SettingError, Settings, mask_password
from usersvc.telemetry.logs import configure_logging

log = logging.getLogger("usersvc")


class GunicornLogger(glogging.Logger):
    """gunicorn's own lines (boot, workers, signals) through our renderer, not its format."""

    def setup(self, cfg: object) -> None:
        self.cfg = cfg
        try:
            settings = Settings.from_env()
        except SettingError as error:
            # The master's first look at the settings: one line and exit status 2, as
            # `usersvc` says it, rather than gunicorn's traceback.
            print(f"usersvc: error: {error}", file=sys.stderr)
            sys.exit(2)
        configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
        for gunicorn_log in (self.error_log, self.access_log):
            for handler in list(gunicorn_log.handlers):
                gunicorn_log.removeHandler(handler)
            gunicorn_log.propagate = True
        self.error_log.setLevel(settings.log_level)


class Worker(GunicornUVLoopWebWorker):
    """aiohttp's uvloop worker, serving through usersvc's runner, so that a request
    aiohttp's parser refuses is answered in the contract's envelope
    (``usersvc.http.server``): the factory hands the worker that runner, made with
    what aiohttp's worker gives its own."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        make_app = self.wsgi

        async def runner() -> web.AppRunner:
            from usersvc.http.server import Runner

            return Runner(
                await make_app(),
                logger=self.log,
                keepalive_timeout=self.cfg.keepalive,
                access_log=None,  # the app writes its own access line
                shutdown_timeout=self.cfg.graceful_timeout / 100 * 95,
            )

        self.wsgi = runner


async def app() -> web.Application:
    """One worker's app: the API and a relay (one relay of all the workers leads; none
    with USERSVC_RELAY=off).

    Needs USERSVC_DATABASE_URL (no embedded PostgreSQL in production) and a migrated
    database: gunicorn does not migrate (run ``usersvc migrate`` once, before).
    """
    from usersvc.amqp import RelaySettings
    from usersvc.http.app import create_app
    from usersvc.telemetry.tracing import configure_tracing

    settings = Settings.from_env()
    if not settings.database_url:
        raise RuntimeError("USERSVC_DATABASE_URL is not set: gunicorn needs a real database")
    configure_tracing()  # in the worker (after the fork): the span exporter's thread is its own
    relay = (
        RelaySettings(
            amqp_url=settings.amqp_url, exchange=settings.amqp_exchange, queue=settings.amqp_queue
        )
        if settings.relay
        else None  # USERSVC_RELAY=off: `usersvc relay` publishes the outbox elsewhere
    )
    log.info(
        "worker ready: database %s; broker %s",
        mask_password(settings.database_url),
        "not used (USERSVC_RELAY=off)" if relay is None else mask_password(settings.amqp_url),
    )
    return create_app(
        settings.database_url,
        relay=relay,
        relay_database_url=settings.relay_database_url,
        statement_cache=settings.database_statement_cache,
    )
