-- Queries on users. Each block starts with `-- name: <name>` and a comment saying
-- what it is for; parameters are PostgreSQL's own $1, $2, … in the order listed.

-- name: load_user
-- One user with their linked accounts (oldest connection first), for reading.
-- $1 user_id
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE u.user_id = $1;

-- name: lock_user
-- The same as load_user, with the user's row locked until the transaction ends,
-- so commands on one user run one after another (and their events keep order).
-- $1 user_id
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE u.user_id = $1
FOR UPDATE OF u;

-- name: load_users
-- Users by id, in the order the ids are listed (the caller lists each id once);
-- an id no user has is left out. One look-up by index users_pkey per id, whatever
-- the table's size: the LIMIT keeps the planner from making the lateral subquery a
-- join, which on a small table it would answer by reading every user.
-- $1 user_ids (uuid[])
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM unnest($1::uuid[]) WITH ORDINALITY AS asked (user_id, position)
CROSS JOIN LATERAL (
    SELECT * FROM user_with_linked_accounts v WHERE v.user_id = asked.user_id LIMIT 1
) u
ORDER BY asked.position;

-- name: find_user_by_email
-- The user with this email, compared case-insensitively (index users_email_key).
-- $1 email
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE lower(u.email) = lower($1);

-- name: find_user_by_phone
-- The user with this phone (index users_phone_key).
-- $1 phone
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE u.phone = $1;

-- name: find_user_by_linked_account
-- The user who linked this account: its social network and its link normalised as
-- the domain normalises it (the link_key column; index linked_accounts_link_key_key).
-- $1 social_network, $2 link_key
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM linked_accounts la
JOIN user_with_linked_accounts u ON u.user_id = la.user_id
WHERE la.link_key = $2 AND la.social_network = $1;

-- name: list_users
-- One page of users after a position, in (created_at, user_id) order: keyset
-- pagination, so a page never repeats or skips a user that exists throughout the
-- walk, however many are added or deleted meanwhile (index users_created_at).
-- $1 created_at and $2 user_id of the last user of the previous page (the first
-- page: the smallest timestamp and the nil UUID), $3 most users
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE (u.created_at, u.user_id) > ($1, $2)
ORDER BY u.created_at, u.user_id
LIMIT $3;

-- name: list_users_by_status
-- As list_users, only users of one status (index users_status_created_at).
-- $1 status, $2 created_at and $3 user_id of the previous page's last user, $4 most users
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
FROM user_with_linked_accounts u
WHERE u.status = $1 AND (u.created_at, u.user_id) > ($2, $3)
ORDER BY u.created_at, u.user_id
LIMIT $4;

-- name: delete_user
-- Permanent deletion; the user's linked accounts go with it (ON DELETE CASCADE).
-- $1 user_id
DELETE FROM users WHERE user_id = $1;

-- name: ping
-- The health check: the database answers.
SELECT 1;
