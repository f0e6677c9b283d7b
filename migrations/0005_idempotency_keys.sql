-- Idempotent retries: the response to the first request with an Idempotency-Key,
-- per endpoint, replayed to a repeat of that request for 24 hours. A row is written
-- in the same transaction as the command's change and event, so a key is either
-- claimed with its response stored, or free again (the request failed and rolled back).
-- depends: 0004_user_listing

CREATE TABLE idempotency_keys (
    endpoint      text NOT NULL,  -- the operation's id: the same key on two endpoints is two keys
    key           text NOT NULL CHECK (key ~ '^[\x21-\x7e]{1,255}$'),
    -- sha256 of the request's canonical JSON body and its If-Match: a repeat with
    -- another request is refused rather than answered with the first's response.
    request_hash  bytea NOT NULL CHECK (octet_length(request_hash) = 32),
    status        smallint CHECK (status BETWEEN 100 AND 599),
    body          bytea,
    etag          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint, key)
);

-- What the clean-up reads: keys by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
