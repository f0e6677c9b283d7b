-- Idempotency keys (same format as users.sql): a keyed command claims its key, runs,
-- and stores its response, all in the command's own transaction.

-- name: claim_idempotency_key
-- Claim a key that is new, or whose 24 hours are over (then as if new): true. No row
-- when the key is live; the caller then reads what it holds. While another
-- transaction holds the key uncommitted, this waits for it (commit: the key is live;
-- rollback: the claim succeeds), as long as lock_timeout allows.
-- $1 endpoint, $2 key, $3 request_hash
INSERT INTO idempotency_keys AS k (endpoint, key, request_hash)
VALUES ($1, $2, $3)
ON CONFLICT (endpoint, key) DO UPDATE
SET request_hash = excluded.request_hash, status = NULL, body = NULL, etag = NULL,
    created_at = now()
WHERE k.created_at < now() - interval '24 hours'
RETURNING true;

-- name: idempotent_response
-- What a live key holds: the first request's hash and its response.
-- $1 endpoint, $2 key
SELECT request_hash, status, body, etag
FROM idempotency_keys
WHERE endpoint = $1 AND key = $2;

-- name: store_idempotent_response
-- The response to the request that claimed the key, to replay to its repeats.
-- $1 endpoint, $2 key, $3 status, $4 body, $5 etag (null: none)
UPDATE idempotency_keys
SET status = $3, body = $4, etag = $5
WHERE endpoint = $1 AND key = $2;

-- name: delete_expired_idempotency_keys
-- Forget keys older than 24 hours, a slice at a time (index idempotency_keys_created_at).
-- A key a request is claiming anew meanwhile is locked by it: SKIP LOCKED leaves it
-- be, so replicas cleaning up at once never wait on each other or on a request.
-- $1 most rows to delete
DELETE FROM idempotency_keys
WHERE ctid = ANY(ARRAY(
    SELECT ctid
    FROM idempotency_keys
    WHERE created_at < now() - interval '24 hours'
    ORDER BY created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
));

-- name: bound_lock_waits
-- For the rest of the transaction, wait at most this long for a lock (the claim's
-- wait for the first request with its key).
-- $1 the wait ('5s')
SELECT set_config('lock_timeout', $1, true);

-- name: unbound_lock_waits
-- Back to the session's lock_timeout (the pool's), for the command's own locks.
SET LOCAL lock_timeout TO DEFAULT;
