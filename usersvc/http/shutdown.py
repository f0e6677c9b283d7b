"""Whether this process is shutting down (§6), for the probes and the middleware."""

from aiohttp import web


class Shutdown:
    """Begun by the first SIGTERM or SIGINT (or a gunicorn worker's own end). From then
    /readyz answers 503 and every answer closes its connection, so that a client's
    next request opens a connection to a process that stays (the middleware reads
    ``begun`` on each request: one attribute)."""

    __slots__ = ("begun",)

    def __init__(self) -> None:
        self.begun = False

    def begin(self) -> bool:
        """True the first time only: a repeated signal changes nothing."""
        first = not self.begun
        self.begun = True
        return first


SHUTDOWN = web.AppKey("shutdown", Shutdown)
