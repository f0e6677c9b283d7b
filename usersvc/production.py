"""What gunicorn runs (``gunicorn.conf.py`` names them): the app factory, the worker and
the logger.

Imported by gunicorn's master for the logger, so nothing here imports the metrics at
module level: in multiprocess mode a metric made in the master would be a phantom
"live" process in every scrape.
"""

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker
from gunicorn import glogging

from usersvc.config import SettingError, Settings, mask_password
from usersvc.telemetry.logs import configure_logging

log = logging.getLogger("usersvc")

# What stops a worker gracefully (§6); SIGABRT (the master's timeout) stays aiohttp's.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
SHUTDOWN_TIMEOUT = 10.0  # seconds for the requests received, once the listener closed


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
        if settings.auth is None:
            # §5: the production server never chooses who may call it.
            print(
                "usersvc: error: USERSVC_AUTH: set it to jwt (with USERSVC_AUTH_ISSUER) or "
                "to none (every caller may do everything); gunicorn does not choose for you",
                file=sys.stderr,
            )
            sys.exit(2)
        configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
        for gunicorn_log in (self.error_log, self.access_log):
            for handler in list(gunicorn_log.handlers):
                gunicorn_log.removeHandler(handler)
            gunicorn_log.propagate = True
        self.error_log.setLevel(settings.log_level)


class Worker(GunicornUVLoopWebWorker):
    """aiohttp's uvloop worker, serving through usersvc's runner (a request aiohttp's
    parser refuses is answered in the contract's envelope, ``usersvc.http.server``) and
    stopping as §6 says.

    SIGTERM, SIGINT or SIGQUIT (the master's SIGTERM sends its workers SIGTERM, its
    SIGINT sends SIGQUIT; a container runtime or systemd may signal them all as well)
    begins the shutdown: /readyz answers 503, the worker serves USERSVC_DRAIN_SECONDS
    more, then closes its listener, answers every request it received and lets its
    relay confirm what it sent. A repeated signal changes nothing (gunicorn's own
    handlers would exit at once). A worker replaced after its ``max_requests`` stops
    the same way without the drain: the other workers go on accepting.
    """

    signalled: signal.Signals | None = None

    def init_signals(self) -> None:
        super().init_signals()
        for signum in STOP_SIGNALS:
            self.loop.add_signal_handler(signum, self._stop_signalled, signum)

    def _stop_signalled(self, signum: signal.Signals) -> None:
        if self.signalled is None:
            self.signalled = signum
            log.info("%s: shutting down", signum.name)
        else:
            log.info("%s again: already shutting down", signum.name)
        self.alive = False
        self._notify_waiter_done()  # the serving loop below sees it at once

    def run(self) -> None:
        try:
            super().run()
        finally:
            from usersvc.http.server import hold_signals

            hold_signals()  # the loop is closed: a late signal must not kill the exit

    async def _run(self) -> None:
        """aiohttp's worker loop (serve, tell the master it lives, stop when asked or
        after ``max_requests``), with the drain and usersvc's runner."""
        from usersvc.http.connections import Connections
        from usersvc.http.server import Runner, drain
        from usersvc.http.shutdown import SHUTDOWN

        settings = Settings.from_env()
        made = await self.wsgi()  # usersvc.production:app
        runner = Runner(
            made,
            logger=self.log,
            keepalive_timeout=self.cfg.keepalive,
            access_log=None,  # the app writes its own access line
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            listeners_of=self.ppid,  # the master's sockets
            connections=Connections(settings.max_connections_per_peer, settings.max_connections),
        )
        await runner.setup()
        beat = None
        try:
            context = self._create_ssl_context(self.cfg) if self.cfg.is_ssl else None
            for sock in self.sockets:
                await web.SockSite(runner, sock, ssl_context=context).start()
            self.booted = True  # the master now counts it as started
            await self._serve(runner)
            made[SHUTDOWN].begin()
            # Told it lives while it drains and stops, or the master would kill it.
            beat = asyncio.create_task(self._beat())
            if self.signalled is not None:
                await drain(settings.drain_seconds)
        finally:
            await runner.cleanup()
            if beat is not None:
                beat.cancel()

    async def _serve(self, runner: web.BaseRunner) -> None:
        pid = os.getpid()
        while self.alive:
            self.notify()
            server = runner.server
            if (
                self.max_requests
                and server is not None
                and server.requests_count > self.max_requests
            ):
                self.alive = False
                self.log.info("Max requests, shutting down: %s", self)
            elif pid == os.getpid() and self.ppid != os.getppid():
                self.alive = False
                self.log.info("Parent changed, shutting down: %s", self)
            else:
                await self._wait_next_notify()

    async def _beat(self) -> None:
        while True:
            self.notify()
            await asyncio.sleep(1.0)


async def app() -> web.Application:
    """One worker's app: the API and a relay (one relay of all the workers leads; none
    with USERSVC_RELAY=off).

    Needs USERSVC_DATABASE_URL (no embedded PostgreSQL in production) and a migrated
    database: gunicorn does not migrate (run ``usersvc migrate`` once, before).
    """
    from usersvc.amqp import RelaySettings
    from usersvc.http.app import create_app
    from usersvc.http.callers import quotas_of, tokens_of, warn_if_open
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
    warn_if_open(settings)
    return create_app(
        settings.database_url,
        relay=relay,
        relay_database_url=settings.relay_database_url,
        statement_cache=settings.database_statement_cache,
        tokens=tokens_of(settings),
        quotas=quotas_of(settings),
    )
