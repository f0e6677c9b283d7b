"""Idempotency keys in PostgreSQL: what a keyed command answers, and their expiry.

A keyed command claims its key, runs and stores its rendered response in its own
transaction (:meth:`usersvc.db.users.Users.execute_once`): a repeat then replays
that response, and a request that failed (rolled back) leaves the key free.
"""

import asyncpg
from attrs import frozen

from usersvc.db.queries import Queries
from usersvc.domain.commands import Decision

# How long a repeat waits for the first request with its key to finish before it is
# answered 409 request_in_progress (PostgreSQL's lock_timeout for the claim only).
CLAIM_WAIT = "5s"
CLEANUP_SLICE = 10_000  # expired keys deleted per statement


@frozen
class IdempotencyKey:
    """A request's key, scoped to its endpoint, and the hash of what it asks."""

    endpoint: str
    key: str
    request_hash: bytes


@frozen
class StoredResponse:
    """A response as the client got it: replayed byte for byte."""

    status: int
    body: bytes
    etag: str | None


@frozen
class Fresh:
    """The first request with its key: the command ran, its response is stored."""

    decision: Decision
    response: StoredResponse


@frozen
class Replayed:
    """A repeat: the first request's response."""

    response: StoredResponse


@frozen
class KeyReused:
    """The key was used for another request (another body or If-Match)."""


@frozen
class InProgress:
    """The first request with the key was still running when the wait ended."""


type Once = Fresh | Replayed | KeyReused | InProgress


async def delete_expired_keys(pool: asyncpg.Pool, queries: Queries) -> int:
    """Forget every key older than 24 hours; how many. Harmless when several processes
    run it at once (each skips the rows another is deleting)."""
    deleted = 0
    while True:
        status = await pool.execute(queries.delete_expired_idempotency_keys, CLEANUP_SLICE)
        count = int(status.split()[-1])
        deleted += count
        if count < CLEANUP_SLICE:
            return deleted
