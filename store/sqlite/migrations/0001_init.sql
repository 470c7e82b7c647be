-- stopline schema, version 1.
--
-- Every row carries tenant_id, and every primary key and index begins with
-- it. Times are INTEGER unix nanoseconds (UTC); NULL is the zero time.
-- Snapshots, policy versions and trace records are append-only: triggers
-- refuse UPDATE and DELETE on them. Runs and incidents are never deleted;
-- an ended run never changes, and an incident changes only its lifecycle
-- columns. Signed checkpoints (outside the database) catch a writer who
-- drops these triggers.

CREATE TABLE snapshots (
    tenant_id    TEXT    NOT NULL,
    snapshot_id  TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    policies     TEXT    NOT NULL, -- canonical JSON array
    thresholds   TEXT    NOT NULL, -- canonical JSON object
    policy_count INTEGER NOT NULL,
    created_at   INTEGER,
    PRIMARY KEY (tenant_id, snapshot_id)
) STRICT;

CREATE TRIGGER snapshots_no_update BEFORE UPDATE ON snapshots
BEGIN
    SELECT RAISE(ABORT, 'stopline: snapshots are immutable');
END;

CREATE TRIGGER snapshots_no_delete BEFORE DELETE ON snapshots
BEGIN
    SELECT RAISE(ABORT, 'stopline: snapshots are immutable');
END;

CREATE TABLE policy_versions (
    tenant_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    snapshot_id  TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    published_by TEXT    NOT NULL,
    published_at INTEGER,
    note         TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, version),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES snapshots (tenant_id, snapshot_id)
) STRICT;

-- Versions are numbered 1, 2, ... per tenant, without gaps.
CREATE TRIGGER policy_versions_next BEFORE INSERT ON policy_versions
WHEN NEW.version IS NOT (SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE tenant_id = NEW.tenant_id)
BEGIN
    SELECT RAISE(ABORT, 'stopline: policy version is not the next one');
END;

CREATE TRIGGER policy_versions_no_update BEFORE UPDATE ON policy_versions
BEGIN
    SELECT RAISE(ABORT, 'stopline: policy versions are append-only');
END;

CREATE TRIGGER policy_versions_no_delete BEFORE DELETE ON policy_versions
BEGIN
    SELECT RAISE(ABORT, 'stopline: policy versions are append-only');
END;

CREATE TABLE runs (
    tenant_id           TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    trace_id            TEXT    NOT NULL,
    snapshot_id         TEXT    NOT NULL,
    policy_version      INTEGER NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'failed_policy', 'cancelled')),
    termination_reason  TEXT    NOT NULL,
    stopped_at_step     INTEGER,
    violation_policy_id TEXT    NOT NULL,
    incident_id         TEXT    NOT NULL,
    message             TEXT    NOT NULL,
    labels              TEXT,            -- JSON object; NULL when none
    created_at          INTEGER,
    started_at          INTEGER,
    ended_at            INTEGER,
    -- Final values, written by CloseRun. While a run is open they are
    -- derived from its last record instead.
    step_count          INTEGER NOT NULL DEFAULT 0,
    total_tokens        INTEGER NOT NULL DEFAULT 0,
    total_cost_cents    REAL    NOT NULL DEFAULT 0,
    head_hash           TEXT    NOT NULL DEFAULT '',
    chain_length        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, run_id),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES snapshots (tenant_id, snapshot_id)
) STRICT;

CREATE INDEX runs_by_created ON runs (tenant_id, created_at);
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at);

CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN
    SELECT RAISE(ABORT, 'stopline: runs are never deleted');
END;

CREATE TRIGGER runs_ended_immutable BEFORE UPDATE ON runs
WHEN OLD.status IN ('succeeded', 'failed', 'failed_policy', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'stopline: run already ended');
END;

CREATE TRIGGER runs_identity_immutable BEFORE UPDATE ON runs
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.run_id IS NOT OLD.run_id
  OR NEW.trace_id IS NOT OLD.trace_id OR NEW.snapshot_id IS NOT OLD.snapshot_id
  OR NEW.policy_version IS NOT OLD.policy_version OR NEW.labels IS NOT OLD.labels
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'stopline: a run''s identity never changes');
END;

CREATE TABLE records (
    tenant_id        TEXT    NOT NULL,
    run_id           TEXT    NOT NULL,
    seq              INTEGER NOT NULL CHECK (seq >= 0),
    kind             TEXT    NOT NULL CHECK (kind IN ('run_start', 'step', 'run_end')),
    step_index       INTEGER NOT NULL,
    at_ns            INTEGER,
    status           TEXT,            -- ok, warning, violation; NULL on run_start and run_end
    inflection       INTEGER NOT NULL CHECK (inflection IN (0, 1)),
    policy_id        TEXT,            -- the deciding policy, when the record has a decision
    total_tokens     INTEGER NOT NULL,
    total_cost_cents REAL    NOT NULL,
    body             BLOB    NOT NULL, -- the exact canonical bytes the hash covers
    prev_hash        TEXT    NOT NULL,
    hash             TEXT    NOT NULL,
    content          TEXT,            -- JSON trace.Content; NULL when none
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
) STRICT;

-- A run has at most one inflection point and at most one run_end.
CREATE UNIQUE INDEX records_one_inflection ON records (tenant_id, run_id) WHERE inflection = 1;
CREATE UNIQUE INDEX records_one_end ON records (tenant_id, run_id) WHERE kind = 'run_end';

-- That a record extends its run's chain (prev_hash = the hash at seq-1)
-- is checked by the store against the head it keeps in memory; a writer
-- whose head is stale picks a seq that is already taken, which the
-- primary key refuses.

CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN
    SELECT RAISE(ABORT, 'stopline: records are append-only');
END;

CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN
    SELECT RAISE(ABORT, 'stopline: records are append-only');
END;

CREATE TABLE incidents (
    tenant_id       TEXT    NOT NULL,
    incident_id     TEXT    NOT NULL,
    run_id          TEXT    NOT NULL,
    trace_id        TEXT    NOT NULL,
    snapshot_id     TEXT    NOT NULL,
    policy_id       TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    step_index      INTEGER NOT NULL,
    record_hash     TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    threshold       TEXT    NOT NULL,
    limit_value     REAL    NOT NULL,
    observed        REAL    NOT NULL,
    severity        TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    created_at      INTEGER,
    -- Lifecycle: the only columns that ever change.
    status          TEXT    NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    acknowledged_at INTEGER,
    acknowledged_by TEXT    NOT NULL,
    resolved_at     INTEGER,
    resolved_by     TEXT    NOT NULL,
    resolution      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, incident_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
) STRICT;

CREATE INDEX incidents_by_created ON incidents (tenant_id, created_at);
CREATE INDEX incidents_by_run ON incidents (tenant_id, run_id);

CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents
BEGIN
    SELECT RAISE(ABORT, 'stopline: incidents are never deleted');
END;

CREATE TRIGGER incidents_facts_immutable BEFORE UPDATE ON incidents
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.incident_id IS NOT OLD.incident_id
  OR NEW.run_id IS NOT OLD.run_id OR NEW.trace_id IS NOT OLD.trace_id
  OR NEW.snapshot_id IS NOT OLD.snapshot_id OR NEW.policy_id IS NOT OLD.policy_id
  OR NEW.source IS NOT OLD.source OR NEW.step_index IS NOT OLD.step_index
  OR NEW.record_hash IS NOT OLD.record_hash OR NEW.reason IS NOT OLD.reason
  OR NEW.threshold IS NOT OLD.threshold OR NEW.limit_value IS NOT OLD.limit_value
  OR NEW.observed IS NOT OLD.observed OR NEW.severity IS NOT OLD.severity
  OR NEW.title IS NOT OLD.title OR NEW.message IS NOT OLD.message
  OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'stopline: an incident''s links and facts never change');
END;

-- The lifecycle only moves forward: open → acknowledged → resolved.
CREATE TRIGGER incidents_lifecycle_forward BEFORE UPDATE ON incidents
WHEN (OLD.status = 'resolved' AND NEW.status <> 'resolved')
  OR (OLD.status = 'acknowledged' AND NEW.status = 'open')
BEGIN
    SELECT RAISE(ABORT, 'stopline: incident status cannot go back');
END;
