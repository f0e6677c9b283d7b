-- Queries of the outbox relay (same format as users.sql); all prefixed relay_.

-- name: relay_try_lock
-- Become the one active relay: a session-level advisory lock, held on the relay's
-- own connection until it closes (so a dead relay's lock goes with its session).
-- Advisory locks are per database, so every database has its own relay.
SELECT pg_try_advisory_lock(hashtextextended('usersvc.outbox_relay', 0));

-- name: relay_fetch_batch
-- The oldest unpublished rows, locked until the batch is marked. NOWAIT: a row
-- locked by a permanent deletion's erasure (or a second relay) makes the relay
-- back off rather than wait, so it never deadlocks with the erasure, never skips
-- a row (which could reorder a user's events) and never sends personal data that
-- an erasure committed before it.
-- $1 batch size
SELECT position, event_id, event_name, user_id, occurred_at, data, headers
FROM outbox
WHERE published_at IS NULL
ORDER BY position
LIMIT $1
FOR UPDATE NOWAIT;

-- name: relay_delete_sent
-- The rows whose publish the broker confirmed: their events are out, so the rows go,
-- in the batch's transaction. (A row is written once and deleted once: the outbox
-- holds only what waits, and stays small.)
-- $1 positions (bigint[])
DELETE FROM outbox
WHERE position = ANY($1::bigint[])
  AND published_at IS NULL;

-- name: relay_delete_marked
-- Rows that a relay of an earlier version marked published (published_at set) rather
-- than deleting: gone at the next clean-up, a slice at a time so no single statement
-- holds many locks or runs long.
-- $1 most rows to delete
DELETE FROM outbox
WHERE position = ANY(ARRAY(
    SELECT position
    FROM outbox
    WHERE published_at IS NOT NULL
    LIMIT $1
));

-- name: relay_vacuum_outbox
-- Each deleted row leaves its entry in outbox_unpublished until a vacuum, and every
-- fetch walks past those from the oldest position: run by the relay as events go out,
-- so the fetch stays cheap wherever autovacuum is off or slow to come. Skipped with a
-- warning when the service's role may not vacuum.
VACUUM outbox;

-- name: relay_count_backlog
-- Events waiting to be published (for the health check).
SELECT count(*) FROM outbox WHERE published_at IS NULL;

-- name: relay_outbox_stats
-- For the metrics: events waiting, and how long the oldest of them has waited
-- (0 when none), the same in every process that asks.
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0)::float8
           AS oldest_age
FROM outbox
WHERE published_at IS NULL;
