-- Each subscriber's parental control: programmes rated above max_age (NULL: none) are locked
-- on the box until the PIN is typed. The PIN is kept as an HMAC-SHA-256 tag under a key
-- derived from the master key (not in the database); wrong PINs count and lock the checks for
-- a while (a 4-digit PIN must not be guessed by trying them all).
CREATE TABLE parental (
    subscriber      TEXT PRIMARY KEY NOT NULL REFERENCES subscribers (name) ON DELETE CASCADE,
    pin_hash        TEXT NOT NULL,
    max_age         INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    locked_until_ms BIGINT NOT NULL DEFAULT 0,
    updated_ms      BIGINT NOT NULL
);
