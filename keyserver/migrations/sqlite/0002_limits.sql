-- Long-window failure count per identifier: a successful login does not reset it.
ALTER TABLE guesses ADD COLUMN window_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE guesses ADD COLUMN window_start_ms INTEGER NOT NULL DEFAULT 0;

-- Fixed-window attempt budgets (registration probes per subscriber, ...).
CREATE TABLE attempt_windows (
    scope           TEXT NOT NULL,
    item            TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, item)
);

CREATE INDEX accounts_by_subject ON accounts (subject_der);
CREATE INDEX guesses_by_last_attempt ON guesses (last_attempt_ms);
