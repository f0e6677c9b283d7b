CREATE INDEX CONCURRENTLY users_status_created_at ON users (status, created_at, user_id);
DROP INDEX CONCURRENTLY users_deleted_created_at;
DROP INDEX CONCURRENTLY users_active_created_at;
