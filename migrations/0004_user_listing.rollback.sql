DROP INDEX users_status_created_at;
DROP INDEX users_created_at;
