-- Schema version 3: the OpenID Connect provider. Authorization codes and access tokens are kept
-- by the SHA-256 of their value; signing keys sealed under the server key (never in the clear);
-- local users get an immutable id.
-- Times are milliseconds since the epoch.
CREATE TABLE oidc_codes (
    code_hash BLOB PRIMARY KEY,
    -- The sign-in flow that issued it: one redeemable code per flow. Kept until the flow's
    -- cookie has expired too, so a saved cookie can never mint a code after pruning.
    flow TEXT NOT NULL UNIQUE,
    flow_expires_at INTEGER NOT NULL,
    client TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    nonce TEXT,
    scope TEXT NOT NULL,
    -- The subject and how they signed in.
    sub TEXT NOT NULL,
    username TEXT NOT NULL,
    name TEXT,
    email TEXT,
    auth_time INTEGER NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    -- When it was redeemed; a second redemption is a replay, and marks it so: tokens written
    -- after that (a replay racing the first exchange) are revoked as they are written.
    used_at INTEGER,
    replayed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE oidc_tokens (
    token_hash BLOB PRIMARY KEY,
    code_hash BLOB NOT NULL,
    client TEXT NOT NULL,
    sub TEXT NOT NULL,
    username TEXT NOT NULL,
    name TEXT,
    email TEXT,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oidc_tokens_by_code ON oidc_tokens (code_hash);

CREATE TABLE oidc_keys (
    kid TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    sealed BLOB NOT NULL
);

-- A local user's immutable id (the OpenID Connect `sub` is made from it, so a user keeps theirs
-- and a username given to someone else later does not carry it on). Made for the users there
-- are; new users get one when added.
ALTER TABLE local_user ADD COLUMN entry_id TEXT;
UPDATE local_user SET entry_id = lower(hex(randomblob(16))) WHERE entry_id IS NULL;
CREATE UNIQUE INDEX local_user_entry_id ON local_user (directory, entry_id);
