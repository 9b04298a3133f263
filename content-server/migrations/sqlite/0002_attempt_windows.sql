-- Fixed-window enrollment budgets per address, per network, per code and in all; they
-- replace the per-address enroll_failures.
DROP TABLE enroll_failures;
CREATE TABLE attempt_windows (
    scope           TEXT NOT NULL,
    item            TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, item)
);
