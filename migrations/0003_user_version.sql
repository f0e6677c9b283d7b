-- Every user has a version that each change increments: clients send it back in
-- If-Match to change only what they have seen (no lost updates), and events carry it
-- so consumers can drop stale ones. Users that exist already start at 1.
-- depends: 0002_outbox

ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);
