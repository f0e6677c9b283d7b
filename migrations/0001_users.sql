-- Users and their linked accounts. The database holds every rule it can, so that
-- a race between two requests ends in a constraint violation, never in bad data.

CREATE TABLE users (
    user_id     uuid PRIMARY KEY,
    firstname   text NOT NULL CHECK (char_length(firstname) BETWEEN 1 AND 100),
    lastname    text NOT NULL CHECK (char_length(lastname) BETWEEN 1 AND 100),
    middlename  text CHECK (char_length(middlename) BETWEEN 1 AND 100),
    email       text CHECK (char_length(email) <= 254),
    phone       bigint CHECK (phone BETWEEN 1 AND 999999999999999),  -- E.164: at most 15 digits
    status      text NOT NULL CHECK (status IN ('active', 'deleted')),
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    CONSTRAINT users_has_contacts CHECK (email IS NOT NULL OR phone IS NOT NULL),
    CONSTRAINT users_deleted_at_iff_deleted CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

-- Contacts stay reserved while a user is temporarily deleted: the indexes cover every row.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_phone_key ON users (phone);

CREATE TABLE linked_accounts (
    linked_account_id  uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    social_network     text NOT NULL
        CHECK (social_network IN ('vk', 'telegram', 'discord', 'tiktok', 'instagram', 'twitter')),
    connection_link    text NOT NULL CHECK (char_length(connection_link) BETWEEN 1 AND 2048),
    -- The link normalised (no scheme, host lower-cased without www., no query,
    -- fragment or trailing /): two links with the same key are the same link.
    link_key           text NOT NULL,
    connected_for      text CHECK (char_length(connected_for) <= 500),
    connected_at       timestamptz NOT NULL,
    -- Also the index behind the foreign key: look-ups by user_id use its first column.
    CONSTRAINT linked_accounts_one_per_network UNIQUE (user_id, social_network),
    CONSTRAINT linked_accounts_link_key_key UNIQUE (link_key)
);
