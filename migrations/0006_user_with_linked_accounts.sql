-- A user as the service reads one: the row and its linked accounts, oldest connection
-- first. Said once here for every query of sql/users.sql that reads users (a look-up,
-- a listing, the locked read of a command), so they differ only in what they ask.
-- PostgreSQL inlines the view: each query keeps its index, and FOR UPDATE through it
-- locks the users row.
-- depends: 0005_idempotency_keys

CREATE VIEW user_with_linked_accounts AS
SELECT u.user_id, u.firstname, u.lastname, u.middlename, u.email, u.phone,
       u.status, u.created_at, u.deleted_at, u.version,
       ARRAY(SELECT la FROM linked_accounts la
             WHERE la.user_id = u.user_id
             ORDER BY la.connected_at, la.linked_account_id) AS linked_accounts
FROM users u;
