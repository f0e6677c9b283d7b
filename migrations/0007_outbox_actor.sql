-- Who asked for each change (the caller's client id, from its access token; null when
-- the service runs without authentication): every event carries it as `actor`.
-- depends: 0006_user_with_linked_accounts

ALTER TABLE outbox ADD COLUMN actor text;
