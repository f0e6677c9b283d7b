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

-- name: lock_user_and_contacts
-- lock_user for a change of contacts: the user's row, then a lock on each contact it
-- asks for (the same keys create_user locks), held until the transaction ends. While
-- they are held no other command gives these contacts to anyone, so change_contacts,
-- the next statement, sees every holder and never meets one as an error. Lock order:
-- the row, the email, the phone, in every command; a null contact takes no lock.
-- $1 user_id, $2 email, $3 phone (as the decision will write them)
WITH u AS MATERIALIZED (
    SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
           u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
    FROM user_with_linked_accounts u
    WHERE u.user_id = $1
    FOR UPDATE OF u
)
SELECT u.*,
       pg_advisory_xact_lock(hashtextextended('usersvc.email:' || lower($2::text), 0))
           IS NULL AS email_unlocked,
       pg_advisory_xact_lock(hashtextextended('usersvc.phone:' || $3::bigint, 0))
           IS NULL AS phone_unlocked
FROM u;

-- name: taken_contacts
-- After a create_user that inserted nothing: which contact another user holds (the
-- indexes users_email_key and users_phone_key). Both false: the holder was deleted
-- for good meanwhile, and the create may be tried again.
-- $1 email, $2 phone
SELECT EXISTS (SELECT FROM users WHERE lower(email) = lower($1::text)) AS email,
       EXISTS (SELECT FROM users WHERE phone = $2::bigint) AS phone;

-- name: taken_link
-- After a link_account that inserted nothing: what is taken. network: the user has an
-- account of that social network; link: the link is linked to someone. Both false: it
-- was unlinked meanwhile, and the link may be tried again.
-- $1 user_id, $2 social_network, $3 link_key
SELECT EXISTS (SELECT FROM linked_accounts
               WHERE user_id = $1 AND social_network = $2) AS network,
       EXISTS (SELECT FROM linked_accounts WHERE link_key = $3) AS link;
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
-- The inner LIMIT 101 is the most the service asks for (a page of 100 and one more,
-- which tells whether a next page exists: usersvc/db/users.py LISTING_BOUND). It is
-- a constant so that the plan PostgreSQL keeps for the prepared statement (its
-- generic plan, taken after five runs when it is no dearer) expects a page, where
-- LIMIT $3 alone is guessed at a tenth of the rows: at a million users that plan was
-- estimated at 420,000, past jit_above_cost, and PostgreSQL planned every page anew
-- rather than use it (docs/performance.md, "Cost at a million users").
-- $1 created_at and $2 user_id of the last user of the previous page (the first
-- page: the smallest timestamp and the nil UUID), $3 most users (at most 101)
SELECT * FROM (
    SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
           u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
    FROM user_with_linked_accounts u
    WHERE (u.created_at, u.user_id) > ($1, $2)
    ORDER BY u.created_at, u.user_id
    LIMIT 101
) AS page
ORDER BY created_at, user_id
LIMIT $3;

-- name: list_active_users
-- As list_users, only active users (index users_active_created_at). The status is
-- written in the query, not a parameter, so that every plan of it may use the partial
-- index of its status.
-- $1 created_at and $2 user_id of the previous page's last user, $3 most users
SELECT * FROM (
    SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
           u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
    FROM user_with_linked_accounts u
    WHERE u.status = 'active' AND (u.created_at, u.user_id) > ($1, $2)
    ORDER BY u.created_at, u.user_id
    LIMIT 101
) AS page
ORDER BY created_at, user_id
LIMIT $3;

-- name: list_deleted_users
-- As list_active_users, only temporarily deleted users (index users_deleted_created_at,
-- which holds them alone: they are few, and a walk through every user to find them
-- would read the rest).
-- $1 created_at and $2 user_id of the previous page's last user, $3 most users
SELECT * FROM (
    SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
           u.status, u.created_at, u.deleted_at, u.version, u.linked_accounts
    FROM user_with_linked_accounts u
    WHERE u.status = 'deleted' AND (u.created_at, u.user_id) > ($1, $2)
    ORDER BY u.created_at, u.user_id
    LIMIT 101
) AS page
ORDER BY created_at, user_id
LIMIT $3;

-- name: delete_user
-- Permanent deletion; the user's linked accounts go with it (ON DELETE CASCADE).
-- $1 user_id
DELETE FROM users WHERE user_id = $1;

-- name: ping
-- The health check: the database answers.
SELECT 1;
