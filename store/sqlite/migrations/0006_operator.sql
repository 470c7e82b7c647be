-- stopline schema for SQLite: approval holds and kill switches.
--
-- A hold is a step waiting for a person's answer. It is pending until
-- answered (approved, denied, expired, cancelled), then never changes:
-- the answer is recorded in the step's trace record, and the hold row
-- keeps who answered, when and why. Holds are never deleted.
CREATE TABLE holds (
    tenant_id     TEXT    NOT NULL,
    hold_id       TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    step_index    INTEGER NOT NULL CHECK (step_index >= 0),
    step_type     TEXT    NOT NULL,
    tool          TEXT    NOT NULL,
    cost_cents    REAL    NOT NULL,
    policy_id     TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    requested_at  INTEGER NOT NULL, -- unix nanoseconds
    deadline      INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    answered_by   TEXT    NOT NULL,
    answer_reason TEXT    NOT NULL,
    answered_at   INTEGER,
    step          BLOB,             -- the held step, for the process that resumes the run
    PRIMARY KEY (tenant_id, hold_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
);

CREATE INDEX holds_by_status ON holds (tenant_id, status, requested_at);
CREATE INDEX holds_by_run ON holds (tenant_id, run_id);

CREATE TRIGGER holds_answered_once BEFORE UPDATE ON holds
WHEN OLD.status <> 'pending' OR NEW.status = 'pending'
    OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.hold_id IS NOT OLD.hold_id OR NEW.run_id IS NOT OLD.run_id
    OR NEW.step_index IS NOT OLD.step_index OR NEW.requested_at IS NOT OLD.requested_at
    OR NEW.deadline IS NOT OLD.deadline OR NEW.step IS NOT OLD.step OR NEW.policy_id IS NOT OLD.policy_id
BEGIN
    SELECT RAISE(ABORT, 'stopline: a hold is answered once, and only its answer is written');
END;

CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN
    SELECT RAISE(ABORT, 'stopline: holds are never deleted');
END;

-- A kill switch over a run, an agent (the runs' "agent" label) or a
-- tenant. At most one is active (released_at NULL) per scope and
-- target; a released switch stays, with who released it and when.
CREATE TABLE kill_switches (
    tenant_id   TEXT    NOT NULL,
    kill_id     TEXT    NOT NULL,
    scope       TEXT    NOT NULL CHECK (scope IN ('run', 'agent', 'tenant')),
    target      TEXT    NOT NULL,
    pulled_by   TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    pulled_at   INTEGER NOT NULL,
    released_by TEXT,
    released_at INTEGER,
    PRIMARY KEY (tenant_id, kill_id)
);

CREATE UNIQUE INDEX kill_switches_active ON kill_switches (tenant_id, scope, target) WHERE released_at IS NULL;
CREATE INDEX kill_switches_all_active ON kill_switches (released_at) WHERE released_at IS NULL;

CREATE TRIGGER kill_switches_release_once BEFORE UPDATE ON kill_switches
WHEN OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
    OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.kill_id IS NOT OLD.kill_id OR NEW.scope IS NOT OLD.scope
    OR NEW.target IS NOT OLD.target OR NEW.pulled_by IS NOT OLD.pulled_by OR NEW.reason IS NOT OLD.reason
    OR NEW.pulled_at IS NOT OLD.pulled_at
BEGIN
    SELECT RAISE(ABORT, 'stopline: a kill switch is released once, and only its release is written');
END;

CREATE TRIGGER kill_switches_no_delete BEFORE DELETE ON kill_switches
BEGIN
    SELECT RAISE(ABORT, 'stopline: kill switches are never deleted');
END;
