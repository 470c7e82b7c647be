-- stopline schema for PostgreSQL: the outbox. CloseRun writes a run's
-- deliveries (its end, its incident, one row per sink) in the transaction
-- that ends the run; dispatchers on any replica claim them with FOR
-- UPDATE SKIP LOCKED (a lease: next_attempt_at moves to the lease's end
-- and attempts goes up by one), so that two never hold the same row, then
-- acknowledge (delivered_at) or fail them (a later next_attempt_at, or
-- dead_at). These rows are not evidence: they say what was sent where,
-- not what happened.

CREATE TABLE outbox (
    tenant_id       text    NOT NULL,
    id              text    NOT NULL, -- the idempotency key, the same on every attempt
    sink            text    NOT NULL,
    event           text    NOT NULL,
    run_id          text    NOT NULL,
    incident_id     text    NOT NULL DEFAULT '',
    payload         text    NOT NULL,
    created_at      bigint  NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at bigint  NOT NULL,
    owner           text    NOT NULL DEFAULT '',
    last_error      text    NOT NULL DEFAULT '',
    delivered_at    bigint,
    dead_at         bigint,
    ord             bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
);

-- What a dispatcher claims: the due rows, earliest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;

CREATE INDEX outbox_by_run ON outbox (tenant_id, run_id);
