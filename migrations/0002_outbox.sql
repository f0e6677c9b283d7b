-- The transactional outbox: every command writes its event here in the same
-- transaction as its change; the relay publishes rows in `position` order.
-- depends: 0001_users

CREATE TABLE outbox (
    -- Commit order for one user: a command locks the user's row, so a user's
    -- events get increasing positions in the order their transactions commit.
    position      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    event_name    text NOT NULL,
    user_id       uuid NOT NULL,  -- no foreign key: events outlive the user they tell of
    occurred_at   timestamptz NOT NULL,
    data          jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    -- Message headers to carry along, such as the W3C traceparent of the request.
    headers       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    published_at  timestamptz
);

-- What the relay reads: the unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
-- What erasure reads: one user's unpublished rows.
CREATE INDEX outbox_unpublished_by_user ON outbox (user_id) WHERE published_at IS NULL;
-- What the clean-up reads: published rows by age.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay when a transaction that wrote events commits (NOTIFY is
-- delivered at commit, and once per transaction for the same payload).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('usersvc_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
