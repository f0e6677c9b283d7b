-- Queries on the event outbox (same format as users.sql).

-- name: insert_event
-- An event, in the transaction of the change it tells of.
-- $1 event_id, $2 event_name, $3 user_id, $4 occurred_at, $5 data, $6 headers, $7 actor
INSERT INTO outbox (event_id, event_name, user_id, occurred_at, data, headers, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: erase_personal_data
-- On permanent deletion: null every personal field in the user's events that are
-- still waiting to be published (the events themselves are still sent).
-- $1 user_id, $2 the personal field names (text[])
UPDATE outbox
SET data = data || (SELECT jsonb_object_agg(field, NULL::jsonb)
                    FROM unnest($2::text[]) AS field
                    WHERE data ? field)
WHERE user_id = $1
  AND published_at IS NULL
  AND data ?| $2::text[];
