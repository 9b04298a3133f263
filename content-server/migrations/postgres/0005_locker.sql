-- The subscriber's locker: opaque objects sealed on the box (bytes on disk under locker_dir,
-- only their ids, sizes and times here), uploads under way, and one sealed index.

-- The operator's quota for this subscriber, bytes; NULL: the configured locker_quota_mb.
ALTER TABLE subscribers ADD COLUMN locker_quota_bytes BIGINT;

-- Committed objects: only these are listed and served (a file without a row is swept).
CREATE TABLE locker_objects (
    subscriber TEXT NOT NULL REFERENCES subscribers (name) ON DELETE CASCADE,
    id         TEXT NOT NULL, -- 32 lowercase hex, chosen by the box
    size       BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (subscriber, id)
);

-- Uploads under way: `received` bytes of the staging file are on disk (fsync'd first).
CREATE TABLE locker_uploads (
    id         TEXT PRIMARY KEY NOT NULL, -- 32 lowercase hex, random
    subscriber TEXT NOT NULL REFERENCES subscribers (name) ON DELETE CASCADE,
    object     TEXT NOT NULL,
    received   BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX locker_uploads_subscriber ON locker_uploads (subscriber, object);
CREATE INDEX locker_uploads_updated ON locker_uploads (updated_ms);

-- The sealed index, replaced only by a writer that names the version it replaces.
CREATE TABLE locker_index (
    subscriber TEXT PRIMARY KEY NOT NULL REFERENCES subscribers (name) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    body       BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
