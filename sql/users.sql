-- Queries on users. Each block starts with `-- name: <name>` and a comment saying
-- what it is for; parameters are PostgreSQL's own $1, $2, … in the order listed.

-- name: load_user
-- One user with their linked accounts (oldest connection first), for reading.
-- $1 user_id
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version,
       ARRAY(SELECT la FROM linked_accounts la
             WHERE la.user_id = u.user_id
             ORDER BY la.connected_at, la.linked_account_id) AS linked_accounts
FROM users u
WHERE u.user_id = $1;

-- name: lock_user
-- The same as load_user, with the user's row locked until the transaction ends,
-- so commands on one user run one after another (and their events keep order).
-- $1 user_id
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version,
       ARRAY(SELECT la FROM linked_accounts la
             WHERE la.user_id = u.user_id
             ORDER BY la.connected_at, la.linked_account_id) AS linked_accounts
FROM users u
WHERE u.user_id = $1
FOR UPDATE OF u;

-- name: delete_user
-- Permanent deletion; the user's linked accounts go with it (ON DELETE CASCADE).
-- $1 user_id
DELETE FROM users WHERE user_id = $1;

-- name: ping
-- The health check: the database answers.
SELECT 1;
