"""Bounds on the connections one process holds open: per peer address and in all.

A connection costs a file descriptor and buffers from its first byte, before any
request on it can be read, judged or limited: a client opening thousands (slow
headers, slow bodies, or none at all) would exhaust them for everyone. Past either
bound a new connection is answered at once with a 503 envelope and closed, and the
connections already open are untouched. Behind a proxy every client shares the
proxy's address: set the per-peer bound to 0 (off) there, the proxy bounds its own.
"""

import logging
import time

from usersvc.http.failures import TOO_MANY_CONNECTIONS
from usersvc.serialization import dumps
from usersvc.telemetry import metrics

log = logging.getLogger(__name__)

SAY_EVERY = 10.0  # seconds at least between two warnings of refused connections


def _refusal() -> bytes:
    body = dumps(
        {
            "status": TOO_MANY_CONNECTIONS.status,
            "error": {
                "title": "Error occurred",
                "data": {
                    "message": TOO_MANY_CONNECTIONS.message,
                    "code": TOO_MANY_CONNECTIONS.code,
                },
            },
        }
    )
    head = (
        f"HTTP/1.1 {TOO_MANY_CONNECTIONS.status} Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


# Sent before the request is read (RFC 9112 §9.6 lets a server answer and close early).
REFUSAL = _refusal()


class Connections:
    """Counts of open connections; ``per_peer`` or ``total`` of 0 means no bound."""

    __slots__ = ("_by_peer", "_refused", "_said", "open", "per_peer", "total")

    def __init__(self, per_peer: int, total: int) -> None:
        self.per_peer = per_peer
        self.total = total
        self.open = 0
        self._by_peer: dict[str, int] = {}
        self._refused = 0
        self._said = 0.0

    def admit(self, peer: str) -> bool:
        """Count a new connection from ``peer``; False (and nothing counted) past a bound."""
        if self.total and self.open >= self.total:
            self._refuse("total")
            return False
        held = self._by_peer.get(peer, 0)
        if self.per_peer and held >= self.per_peer:
            self._refuse("per_peer")
            return False
        self._by_peer[peer] = held + 1
        self.open += 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        held = self._by_peer[peer] - 1
        if held:
            self._by_peer[peer] = held
        else:
            del self._by_peer[peer]

    def _refuse(self, bound: str) -> None:
        metrics.connection_refused(bound)
        self._refused += 1
        now = time.monotonic()
        if now - self._said >= SAY_EVERY:
            # The peer's address is not logged: it identifies a person's device as
            # well as a service; the count and the bound are what an operator acts on.
            log.warning(
                "connections refused past the %s bound (per peer %d, total %d): %d so far",
                bound.replace("_", " "),
                self.per_peer,
                self.total,
                self._refused,
            )
            self._said = now
