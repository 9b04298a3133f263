-- Each subscriber's favourite channels, in their order (comma-separated numbers): they follow
-- the subscriber to any box, and a box keeps nothing.
CREATE TABLE favourites (
    subscriber TEXT PRIMARY KEY NOT NULL REFERENCES subscribers (name) ON DELETE CASCADE,
    channels   TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
