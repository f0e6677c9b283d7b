-- The writes of the commands (same format as users.sql): each one changes its rows
-- AND writes the command's event to the outbox, in ONE statement, so a command costs
-- one round trip to PostgreSQL for its write. A single statement is atomic on its own:
-- either the change and its event are both there, or neither is.
--
-- Every query here starts with the event's six parameters, as insert_event has them:
--   $1 event_id, $2 event_name, $3 user_id, $4 occurred_at, $5 data, $6 headers
-- and the change's own parameters follow from $7.

-- name: create_user
-- A new user and its UserCreated. Fails on users_email_key or users_phone_key when
-- a contact is taken (and then writes no event either).
-- $7 firstname, $8 lastname, $9 middlename, $10 email, $11 phone, $12 status,
-- $13 created_at, $14 version
WITH new_user AS (
    INSERT INTO users
        (user_id, firstname, lastname, middlename, email, phone, status, created_at, version)
    VALUES ($3, $7, $8, $9, $10, $11, $12, $13, $14)
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: change_status
-- Temporary deletion and recovery.
-- $7 status, $8 deleted_at (null when active), $9 version
WITH changed AS (
    UPDATE users SET status = $7, deleted_at = $8, version = $9 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: change_fullname
-- $7 firstname, $8 lastname, $9 middlename, $10 version
WITH changed AS (
    UPDATE users SET firstname = $7, lastname = $8, middlename = $9, version = $10
    WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: change_contacts
-- A full replacement. Fails on users_email_key or users_phone_key when another
-- user holds the contact (keeping one's own is no conflict: it is the same row).
-- $7 email, $8 phone, $9 version
WITH changed AS (
    UPDATE users SET email = $7, phone = $8, version = $9 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: link_account
-- A new linked account. Fails on linked_accounts_one_per_network when the user
-- has an account of that network, on linked_accounts_link_key_key when the link
-- is linked already (to anyone, also a temporarily deleted user).
-- $7 linked_account_id, $8 social_network, $9 connection_link, $10 link_key,
-- $11 connected_for, $12 connected_at, $13 the user's new version (a change of the
-- user's linked accounts is a change of the user)
WITH linked AS (
    INSERT INTO linked_accounts
        (linked_account_id, user_id, social_network, connection_link, link_key,
         connected_for, connected_at)
    VALUES ($7, $3, $8, $9, $10, $11, $12)
), versioned AS (
    UPDATE users SET version = $13 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: unlink_account
-- $7 linked_account_id, $8 the user's new version
WITH unlinked AS (
    DELETE FROM linked_accounts WHERE linked_account_id = $7
), versioned AS (
    UPDATE users SET version = $8 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: change_connected_for
-- $7 linked_account_id, $8 connected_for, $9 the user's new version
WITH changed AS (
    UPDATE linked_accounts SET connected_for = $8 WHERE linked_account_id = $7
), versioned AS (
    UPDATE users SET version = $9 WHERE user_id = $3
)
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers)
VALUES ($1, $2, $3, $4, $5, $6);
