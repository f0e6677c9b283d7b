-- The readiness probe's query (same format as users.sql).

-- name: missing_migrations
-- How many of the migrations the code needs are not applied: 0 when ready. Fails when
-- yoyo's table does not exist (a database never migrated): not ready either.
-- $1 the migration ids (text[])
SELECT count(*)
FROM unnest($1::text[]) AS needed (migration_id)
WHERE NOT EXISTS (
    SELECT FROM _yoyo_migration AS applied WHERE applied.migration_id = needed.migration_id
);
