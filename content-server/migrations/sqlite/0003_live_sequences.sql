-- Sequence numbers of live channels, handed out in blocks: a segment's number is its
-- AES-CTR IV, so no two segments of a channel may ever get the same one, across restarts
-- and across instances that ingest the same input.
CREATE TABLE live_sequences (
    channel INTEGER PRIMARY KEY,
    next    INTEGER NOT NULL
);
