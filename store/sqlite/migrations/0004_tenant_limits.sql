-- stopline schema, version 4: the ledger of tenant counters that limits
-- spanning runs are checked against (tenant_budget, tenant_rate_limit).
-- These are counters, not evidence: every step's amounts are in its trace
-- record. Amounts are integers (cost in millionths of a cent). Every
-- charge goes through the store's single write connection, in one
-- statement or one BEGIN IMMEDIATE transaction, so it is atomic.

-- A calendar window (a UTC day or month): one total per window.
CREATE TABLE ledger_windows (
    tenant_id    TEXT    NOT NULL,
    counter      TEXT    NOT NULL, -- prevention.Counter.Key: metric/window
    window_start INTEGER NOT NULL, -- unix nanoseconds
    used         INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id, counter, window_start)
) STRICT;

-- A rolling window: one row per hold, added up over the window.
CREATE TABLE ledger_events (
    id        INTEGER PRIMARY KEY,
    tenant_id TEXT    NOT NULL,
    counter   TEXT    NOT NULL,
    at_ns     INTEGER NOT NULL,
    amount    INTEGER NOT NULL CHECK (amount >= 0)
) STRICT;

CREATE INDEX ledger_events_by_time ON ledger_events (tenant_id, counter, at_ns);
