-- The writes of the commands (same format as users.sql): each one changes its rows
-- AND writes the command's event to the outbox, in ONE statement, so a command costs
-- one round trip to PostgreSQL for its write. A single statement is atomic on its own:
-- either the change and its event are both there, or neither is.
--
-- Every query here starts with the event's seven parameters, as insert_event has them:
--   $1 event_id, $2 event_name, $3 user_id, $4 occurred_at, $5 data, $6 headers,
--   $7 actor (who asked: the caller's client id, or null)
-- and the change's own parameters follow from $8.
--
-- A contact or link another user holds is an expected answer (409), not an error:
-- create_user and link_account insert with ON CONFLICT DO NOTHING and write the event
-- only for a row they inserted; change_contacts checks in its own statement. So the
-- server raises nothing for them, and its log never holds the value that was taken
-- (a unique violation's DETAIL quotes it). The unique indexes stay the final word:
-- a violation they still raise (a writer that is not the service) is a 409 as well.

-- name: create_user
-- A new user and its UserCreated, unless another user holds the email or the phone
-- (then nothing is written, and the caller asks taken_contacts which). Takes the
-- contacts' locks first, as lock_user_and_contacts does, so that a change of contacts
-- in flight never meets this row as an error. true when inserted, no row when not.
-- $8 firstname, $9 lastname, $10 middlename, $11 email, $12 phone, $13 status,
-- $14 created_at, $15 version
WITH locked AS (
    SELECT pg_advisory_xact_lock(hashtextextended('usersvc.email:' || lower($11::text), 0)),
           pg_advisory_xact_lock(hashtextextended('usersvc.phone:' || $12::bigint, 0))
), new_user AS (
    INSERT INTO users
        (user_id, firstname, lastname, middlename, email, phone, status, created_at, version)
    SELECT $3, $8, $9, $10, $11, $12, $13, $14, $15
    FROM locked
    ON CONFLICT DO NOTHING
    RETURNING user_id
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
SELECT $1, $2, $3, $4, $5, $6, $7
FROM new_user
RETURNING true;

-- name: change_status
-- Temporary deletion and recovery.
-- $8 status, $9 deleted_at (null when active), $10 version
WITH changed AS (
    UPDATE users SET status = $8, deleted_at = $9, version = $10 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: change_fullname
-- $8 firstname, $9 lastname, $10 middlename, $11 version
WITH changed AS (
    UPDATE users SET firstname = $8, lastname = $9, middlename = $10, version = $11
    WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: change_contacts
-- A full replacement, unless another user holds the email or the phone (keeping one's
-- own is no conflict: it is the same row); then nothing is written. Run after
-- lock_user_and_contacts in the same transaction: with those locks held, no other
-- command can give these contacts to anyone before this commits, and this
-- statement's snapshot (taken after the locks) sees every one that did. Which contact
-- is taken (both false: changed).
-- $8 email, $9 phone, $10 version
WITH taken AS (
    SELECT EXISTS (SELECT FROM users o
                   WHERE lower(o.email) = lower($8::text) AND o.user_id <> $3) AS email,
           EXISTS (SELECT FROM users o
                   WHERE o.phone = $9::bigint AND o.user_id <> $3) AS phone
), changed AS (
    UPDATE users SET email = $8, phone = $9, version = $10
    WHERE user_id = $3 AND NOT (SELECT email OR phone FROM taken)
    RETURNING user_id
), event AS (
    INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
    SELECT $1, $2, $3, $4, $5, $6, $7
    FROM changed
)
SELECT email, phone FROM taken;

-- name: link_account
-- A new linked account, unless the user has an account of that network
-- (linked_accounts_one_per_network) or the link is linked already, to anyone, also a
-- temporarily deleted user (linked_accounts_link_key_key): then nothing is written,
-- and the caller asks taken_link which. true when inserted, no row when not.
-- $8 linked_account_id, $9 social_network, $10 connection_link, $11 link_key,
-- $12 connected_for, $13 connected_at, $14 the user's new version (a change of the
-- user's linked accounts is a change of the user)
WITH linked AS (
    INSERT INTO linked_accounts
        (linked_account_id, user_id, social_network, connection_link, link_key,
         connected_for, connected_at)
    VALUES ($8, $3, $9, $10, $11, $12, $13)
    ON CONFLICT DO NOTHING
    RETURNING user_id
), versioned AS (
    UPDATE users SET version = $14 WHERE user_id IN (SELECT user_id FROM linked)
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
SELECT $1, $2, $3, $4, $5, $6, $7
FROM linked
RETURNING true;

-- name: unlink_account
-- $8 linked_account_id, $9 the user's new version
WITH unlinked AS (
    DELETE FROM linked_accounts WHERE linked_account_id = $8
), versioned AS (
    UPDATE users SET version = $9 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: change_connected_for
-- $8 linked_account_id, $9 connected_for, $10 the user's new version
WITH changed AS (
    UPDATE linked_accounts SET connected_for = $9 WHERE linked_account_id = $8
), versioned AS (
    UPDATE users SET version = $10 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);
