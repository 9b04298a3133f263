-- Subscribers: one package each; KS sealed under the operator's key-encryption key.
CREATE TABLE subscribers (
    name       TEXT PRIMARY KEY NOT NULL,
    package    TEXT NOT NULL,
    status     TEXT NOT NULL, -- active | suspended | revoked
    ks_sealed  BYTEA NOT NULL,
    created_ms BIGINT NOT NULL
);

-- One-time enrollment codes, stored as a keyed hash.
CREATE TABLE enrollment_codes (
    code_hash  BYTEA PRIMARY KEY NOT NULL,
    subscriber TEXT NOT NULL REFERENCES subscribers (name),
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT
);

-- Certificates issued, by serial, for revocation checks on every request.
CREATE TABLE certificates (
    serial       TEXT PRIMARY KEY NOT NULL,
    subscriber   TEXT NOT NULL REFERENCES subscribers (name),
    issued_ms    BIGINT NOT NULL,
    not_after_ms BIGINT NOT NULL,
    revoked      BIGINT NOT NULL -- 0 or 1
);

-- Failed enrollment attempts per peer address (their own attempt limit).
CREATE TABLE enroll_failures (
    peer            TEXT PRIMARY KEY NOT NULL,
    failures        BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL
);
