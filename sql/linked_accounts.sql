-- Queries on linked accounts (same format as users.sql).

-- name: insert_linked_account
-- A new linked account. Fails on linked_accounts_one_per_network when the user
-- has an account of that network, on linked_accounts_link_key_key when the link
-- is linked already (to anyone, also a temporarily deleted user).
-- $1 linked_account_id, $2 user_id, $3 social_network, $4 connection_link,
-- $5 link_key, $6 connected_for, $7 connected_at
INSERT INTO linked_accounts
    (linked_account_id, user_id, social_network, connection_link, link_key,
     connected_for, connected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: delete_linked_account
-- $1 linked_account_id
DELETE FROM linked_accounts WHERE linked_account_id = $1;

-- name: update_connected_for
-- $1 linked_account_id, $2 connected_for
UPDATE linked_accounts SET connected_for = $2 WHERE linked_account_id = $1;
