-- The service's session settings as the defaults of its role in its database: what a
-- pooler in transaction mode (PgBouncer) cannot pass on at connect. Compose's PostgreSQL
-- runs this at its first start (docker-entrypoint-initdb.d); for an existing database:
--   psql -U usersvc -d usersvc -f deploy/pgbouncer/session-defaults.sql  (as a superuser)
-- The values are those of usersvc/db/pool.py (SERVER_SETTINGS).
ALTER ROLE usersvc_app IN DATABASE usersvc SET statement_timeout = '15s';
ALTER ROLE usersvc_app IN DATABASE usersvc SET lock_timeout = '12s';
ALTER ROLE usersvc_app IN DATABASE usersvc SET idle_in_transaction_session_timeout = '60s';
