-- stopline schema: the outbox. CloseRun writes a run's deliveries (its end,
-- its incident, one row per sink) in the transaction that ends the run; a
-- dispatcher claims them (a lease: next_attempt_at moves to the lease's
-- end and attempts goes up by one), then acknowledges (delivered_at) or
-- fails them (a later next_attempt_at, or dead_at). These rows are not
-- evidence: they say what was sent where, not what happened.

CREATE TABLE outbox (
    tenant_id       TEXT NOT NULL,
    id              TEXT NOT NULL, -- the idempotency key, the same on every attempt
    sink            TEXT NOT NULL,
    event           TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    incident_id     TEXT NOT NULL DEFAULT '',
    payload         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    owner           TEXT NOT NULL DEFAULT '',
    last_error      TEXT NOT NULL DEFAULT '',
    delivered_at    INTEGER,
    dead_at         INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
) STRICT;

-- What a dispatcher claims: the due rows, earliest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

CREATE INDEX outbox_by_run ON outbox (tenant_id, run_id);
