-- Identifiers are stored as keyed hashes (identifier) with the identifier itself wrapped under
-- the KEK for listing (src/kek.rs); the key server converts older rows at start.
ALTER TABLE accounts ADD COLUMN identifier_sealed BYTEA;
