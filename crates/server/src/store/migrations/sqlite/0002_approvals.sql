-- Schema version 2: Approved OTP. Approval requests, the outbox, and what the audit keeps
-- about a login (application, policy, profile, login id).
-- A released migration is never edited: a change of schema is a new numbered file.
-- Times are milliseconds since the epoch, as in version 1.
CREATE TABLE approval_requests (
    -- The login id its application waits on (random, hex).
    id TEXT PRIMARY KEY,
    -- SHA-256 of the link token; the token itself is never stored.
    token_hash BLOB NOT NULL UNIQUE,
    -- The user's key: directory and normalized DN.
    user_directory TEXT NOT NULL,
    user_dn_norm TEXT NOT NULL,
    -- The DN as the directory spelt it, for people.
    user_dn TEXT NOT NULL,
    username TEXT NOT NULL,
    display_name TEXT,
    application TEXT NOT NULL,
    profile TEXT NOT NULL,
    front TEXT NOT NULL,
    client TEXT,
    recipient TEXT NOT NULL,
    approver TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
    decided_at INTEGER,
    -- Who decided (all NULL while undecided and for expiry): `link` or `cli`, and from where.
    decided_channel TEXT,
    decided_address TEXT,
    decided_user_agent TEXT,
    decided_operator TEXT,
    -- When the courier took the approval message (NULL until then).
    sent_at INTEGER
);
-- One pending request per user and application: two concurrent logins cannot both create one;
-- the second insert fails and that login joins the first request.
CREATE UNIQUE INDEX approval_requests_one_pending
    ON approval_requests (user_directory, user_dn_norm, application) WHERE state = 'pending';
-- The newest request of a user for an application (grace period, joining).
CREATE INDEX approval_requests_latest
    ON approval_requests (user_directory, user_dn_norm, application, created_at);
-- The expiry job's scan.
CREATE INDEX approval_requests_pending_expiry
    ON approval_requests (expires_at) WHERE state = 'pending';
-- Listing by decision time (`approvals list`, the decided_since filter).
CREATE INDEX approval_requests_decided_at ON approval_requests (decided_at);

-- Every request leaving pending, in order: a process waiting on logins learns of decisions
-- taken by another (the command line, another node) by reading what follows the last one it
-- saw, with no clock involved. Only the newest 100,000 are kept.
CREATE TABLE approval_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL
);
CREATE TRIGGER approval_decided AFTER UPDATE OF state ON approval_requests
WHEN OLD.state = 'pending' AND NEW.state != 'pending'
BEGIN
    INSERT INTO approval_decisions (id) VALUES (NEW.id);
    DELETE FROM approval_decisions
        WHERE seq <= (SELECT MAX(seq) FROM approval_decisions) - 100000;
END;

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    -- The approval profile whose courier carries it.
    profile TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    about_user TEXT NOT NULL,
    application TEXT NOT NULL,
    -- The address the login it tells about came from.
    client TEXT,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    last_error TEXT,
    sent_at INTEGER
);
-- The worker's scan for queued messages that are due.
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
-- The newest message about a user's logins to an application from one address (information
-- messages are not repeated within a profile's inform_interval).
CREATE INDEX outbox_about ON outbox (about_user, application, client, created_at);

ALTER TABLE audit ADD COLUMN application TEXT;
ALTER TABLE audit ADD COLUMN policy TEXT;
ALTER TABLE audit ADD COLUMN profile TEXT;
ALTER TABLE audit ADD COLUMN login TEXT;
-- Everything about one login: its request, its decision, its expiry.
CREATE INDEX audit_login ON audit (login);
