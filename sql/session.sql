-- Queries about the database session itself (same format as users.sql).

-- name: session_settings_not_as_wanted
-- Of the session settings the service wants ($1 names, $2 values such as '15s'), those
-- this session does not have, with the role and database whose defaults would carry
-- them: behind a pooler in transaction mode (PgBouncer), which refuses them as startup
-- parameters, the server's defaults for the role in the database are what applies.
SELECT wanted.name, current_setting(wanted.name) AS setting, wanted.value AS wanted,
       current_user AS role, current_database() AS database
FROM unnest($1::text[], $2::text[]) AS wanted (name, value)
WHERE current_setting(wanted.name)::interval IS DISTINCT FROM wanted.value::interval;
