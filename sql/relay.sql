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
SELECT position, event_id, event_name, user_id, occurred_at, data, headers, actor
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
-- so the fetch stays cheap wherever autovacuum is off or slow to come. Only when
-- relay_may_vacuum_outbox says this role may.
VACUUM outbox;

-- name: relay_may_vacuum_outbox
-- Whether this role may VACUUM the outbox. From PostgreSQL 17: a role with MAINTAIN on
-- it (its owner has it). Before: its owner, the database's owner or a superuser. Anyone
-- else's VACUUM only gets a WARNING, which the server logs too, each time: a runtime
-- role (docs/security.md) asks this once and leaves the outbox to autovacuum.
SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN has_table_privilege('outbox', 'MAINTAIN')
            ELSE pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')
       END
FROM pg_class c, pg_database d
WHERE c.oid = 'outbox'::regclass AND d.datname = current_database();

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
