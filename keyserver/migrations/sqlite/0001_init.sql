-- Accounts: one sealed record per identifier, bound to the certificate subject that made it.
CREATE TABLE accounts (
    identifier   TEXT PRIMARY KEY NOT NULL,
    suite        INTEGER NOT NULL,
    verifier     BLOB NOT NULL,
    sealed       BLOB NOT NULL,
    subject_der  BLOB NOT NULL,
    subject_name TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

-- Guess counters, for known and unknown identifiers alike, with the one pending confirmation
-- (the spacing rule allows at most one useful exchange per identifier at a time).
CREATE TABLE guesses (
    identifier         TEXT PRIMARY KEY NOT NULL,
    failures           INTEGER NOT NULL,
    last_attempt_ms    INTEGER NOT NULL,
    locked             INTEGER NOT NULL, -- 0 or 1
    pending_suite      INTEGER,
    pending_session    BLOB,
    pending_tag        BLOB,
    pending_expires_ms INTEGER
);

-- Server-wide secrets shared by every instance (fake-record secret).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
