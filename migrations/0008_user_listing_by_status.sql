-- Listing one status through an index of that status alone, instead of the index on
-- (status, created_at, user_id) of 0004, which it replaces:
--
-- * the listing of a status is its own query with the status written in it
--   (sql/users.sql: list_active_users, list_deleted_users), so the plan PostgreSQL
--   keeps for the prepared statement (its generic plan) can prove a partial index
--   serves it; with the status a parameter, that plan guessed half the users of any
--   status and walked users_created_at, filtering out the deleted users' rare rows one
--   by one (at a million users, 156 rows read for 21 sent; to the end of the table for
--   a last page);
-- * new users are active and the newest: they go at the right end of
--   users_active_created_at, whose pages fill, where in the middle of
--   (status, created_at, user_id) they split pages half-empty (that index was twice
--   the size of users_created_at); users_deleted_created_at holds only the deleted.
--
-- CONCURRENTLY: on a table of a million users the service keeps writing meanwhile.
-- depends: 0007_outbox_actor
-- transactional: false

CREATE INDEX CONCURRENTLY users_active_created_at ON users (created_at, user_id)
    WHERE status = 'active';
CREATE INDEX CONCURRENTLY users_deleted_created_at ON users (created_at, user_id)
    WHERE status = 'deleted';
DROP INDEX CONCURRENTLY users_status_created_at;
