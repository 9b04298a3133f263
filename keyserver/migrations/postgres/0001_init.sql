-- Accounts: one sealed record per identifier, bound to the certificate subject that made it.
CREATE TABLE accounts (
    identifier   TEXT PRIMARY KEY NOT NULL,
    suite        BIGINT NOT NULL,
    verifier     BYTEA NOT NULL,
    sealed       BYTEA NOT NULL,
    subject_der  BYTEA NOT NULL,
    subject_name TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

-- Guess counters, for known and unknown identifiers alike, with the one pending confirmation
-- (the spacing rule allows at most one useful exchange per identifier at a time).
CREATE TABLE guesses (
    identifier         TEXT PRIMARY KEY NOT NULL,
    failures           INTEGER NOT NULL,
    last_attempt_ms    BIGINT NOT NULL,
    locked             BIGINT NOT NULL, -- 0 or 1
    pending_suite      BIGINT,
    pending_session    BYTEA,
    pending_tag        BYTEA,
    pending_expires_ms BIGINT
);

-- Server-wide secrets shared by every instance (fake-record secret).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);
