-- Long-window failure count per identifier: a successful login does not reset it.
ALTER TABLE guesses ADD COLUMN window_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE guesses ADD COLUMN window_start_ms BIGINT NOT NULL DEFAULT 0;

-- Fixed-window attempt budgets (registration probes per subscriber, ...).
CREATE TABLE attempt_windows (
    scope           TEXT NOT NULL,
    item            TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, item)
);

CREATE INDEX accounts_by_subject ON accounts (subject_der);
CREATE INDEX guesses_by_last_attempt ON guesses (last_attempt_ms);
