-- Listing users page by page in a stable order: keyset pagination on
-- (created_at, user_id), all users or those of one status. Look-ups by email and
-- phone use the unique indexes of 0001 (lower(email), phone).
-- depends: 0003_user_version

CREATE INDEX users_created_at ON users (created_at, user_id);
CREATE INDEX users_status_created_at ON users (status, created_at, user_id);
