-- Schema version 1 (countersign 0.1): OTPs, audit, local users.
-- A released migration is never edited: a change of schema is a new numbered file.
CREATE TABLE otp (
    directory TEXT NOT NULL,
    dn TEXT NOT NULL,
    id TEXT NOT NULL,
    hash BLOB NOT NULL,
    issued_at INTEGER NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (directory, dn)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    front TEXT NOT NULL,
    identity TEXT NOT NULL,
    user_dn TEXT,
    client TEXT,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    mechanism TEXT,
    recipient TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE local_user (
    directory TEXT NOT NULL,
    username TEXT NOT NULL COLLATE NOCASE,
    dn TEXT NOT NULL,
    dn_norm TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    display_name TEXT,
    mail TEXT NOT NULL,
    mobile TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sponsor_name TEXT,
    sponsor_email TEXT,
    sponsor_phone TEXT,
    preferred_mechanisms TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    password_expires_at INTEGER,
    PRIMARY KEY (directory, username)
);
CREATE UNIQUE INDEX local_user_dn ON local_user (directory, dn_norm);
CREATE TABLE local_user_value (
    directory TEXT NOT NULL,
    username TEXT NOT NULL COLLATE NOCASE,
    attribute TEXT NOT NULL,
    value TEXT NOT NULL,
    FOREIGN KEY (directory, username) REFERENCES local_user (directory, username)
        ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX local_user_value_lookup ON local_user_value (directory, attribute, value);
