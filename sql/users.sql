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

-- name: insert_user
-- A new user. Fails on users_email_key or users_phone_key when the contact is taken.
-- $1 user_id, $2 firstname, $3 lastname, $4 middlename, $5 email, $6 phone,
-- $7 status, $8 created_at, $9 version
INSERT INTO users
    (user_id, firstname, lastname, middlename, email, phone, status, created_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: update_status
-- Temporary deletion and recovery.
-- $1 user_id, $2 status, $3 deleted_at (null when active), $4 version
UPDATE users SET status = $2, deleted_at = $3, version = $4 WHERE user_id = $1;

-- name: update_fullname
-- $1 user_id, $2 firstname, $3 lastname, $4 middlename, $5 version
UPDATE users SET firstname = $2, lastname = $3, middlename = $4, version = $5
WHERE user_id = $1;

-- name: update_contacts
-- A full replacement. Fails on users_email_key or users_phone_key when another
-- user holds the contact (keeping one's own is no conflict: it is the same row).
-- $1 user_id, $2 email, $3 phone, $4 version
UPDATE users SET email = $2, phone = $3, version = $4 WHERE user_id = $1;

-- name: update_version
-- A change to the user's linked accounts is a change to the user.
-- $1 user_id, $2 version
UPDATE users SET version = $2 WHERE user_id = $1;

-- name: delete_user
-- Permanent deletion; the user's linked accounts go with it (ON DELETE CASCADE).
-- $1 user_id
DELETE FROM users WHERE user_id = $1;

-- name: ping
-- The health check: the database answers.
SELECT 1;
