-- stopline schema for PostgreSQL, version 1.
--
-- Every row carries tenant_id, and every primary key and index begins with
-- it. Times are bigint unix nanoseconds (UTC): timestamptz keeps only
-- microseconds. NULL is the zero time. Snapshots, policy versions, trace
-- records, the export log and checkpoints are append-only: triggers refuse
-- UPDATE, DELETE and TRUNCATE on them. Runs and incidents are never
-- deleted; an ended run never changes, and an incident changes only its
-- lifecycle columns, and only forward. A record is accepted only if it
-- extends its run's chain (records_chain). Signed checkpoints (outside the
-- database) catch a writer who drops these triggers.
--
-- Errors raised here carry SQLSTATEs of class SL, which the store maps to
-- the governance errors:
--   SL001  append-only or immutable row (UPDATE, DELETE or TRUNCATE refused)
--   SL002  the run has ended
--   SL003  an incident's status cannot go back
--   SL004  the record does not extend its run's chain
--   SL005  no such run (for a record)
--   SL006  policy version is not the next one

CREATE FUNCTION stopline_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: ' || TG_ARGV[0];
END
$$;

CREATE TABLE snapshots (
    tenant_id    text    NOT NULL,
    snapshot_id  text    NOT NULL,
    content_hash text    NOT NULL,
    policies     text    NOT NULL, -- canonical JSON array, verbatim
    thresholds   text    NOT NULL, -- canonical JSON object, verbatim
    policy_count integer NOT NULL,
    created_at   bigint,
    PRIMARY KEY (tenant_id, snapshot_id)
);

CREATE TRIGGER snapshots_immutable BEFORE UPDATE OR DELETE ON snapshots
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('snapshots are immutable');
CREATE TRIGGER snapshots_no_truncate BEFORE TRUNCATE ON snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('snapshots are immutable');

CREATE TABLE policy_versions (
    tenant_id    text    NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    snapshot_id  text    NOT NULL,
    content_hash text    NOT NULL,
    published_by text    NOT NULL,
    published_at bigint,
    note         text    NOT NULL,
    PRIMARY KEY (tenant_id, version),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES snapshots (tenant_id, snapshot_id)
);

-- Versions are numbered 1, 2, ... per tenant, without gaps.
CREATE FUNCTION stopline_policy_versions_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version IS DISTINCT FROM (SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE tenant_id = NEW.tenant_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'SL006', MESSAGE = 'stopline: policy version is not the next one';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER policy_versions_next BEFORE INSERT ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION stopline_policy_versions_next();
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('policy versions are append-only');
CREATE TRIGGER policy_versions_no_truncate BEFORE TRUNCATE ON policy_versions
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('policy versions are append-only');

CREATE TABLE runs (
    tenant_id           text    NOT NULL,
    run_id              text    NOT NULL,
    trace_id            text    NOT NULL,
    snapshot_id         text    NOT NULL,
    policy_version      integer NOT NULL,
    status              text    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'failed_policy', 'cancelled')),
    termination_reason  text    NOT NULL,
    stopped_at_step     integer,
    violation_policy_id text    NOT NULL,
    incident_id         text    NOT NULL,
    message             text    NOT NULL,
    labels              text,            -- JSON object; NULL when none
    created_at          bigint,
    started_at          bigint,
    ended_at            bigint,
    -- Final values, written by CloseRun. While a run is open they are
    -- derived from its last record instead, so that a step writes one row.
    step_count          integer          NOT NULL DEFAULT 0,
    total_tokens        bigint           NOT NULL DEFAULT 0,
    total_cost_cents    double precision NOT NULL DEFAULT 0,
    head_hash           text             NOT NULL DEFAULT '',
    chain_length        integer          NOT NULL DEFAULT 0,
    -- Insertion order, for listing runs created at the same instant.
    ord                 bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, run_id),
    FOREIGN KEY (tenant_id, snapshot_id) REFERENCES snapshots (tenant_id, snapshot_id)
);

CREATE INDEX runs_by_created ON runs (tenant_id, created_at, ord);
CREATE INDEX runs_by_status ON runs (tenant_id, status, created_at, ord);

CREATE FUNCTION stopline_runs_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: runs are never deleted';
    END IF;
    IF OLD.status IN ('succeeded', 'failed', 'failed_policy', 'cancelled') THEN
        RAISE EXCEPTION USING ERRCODE = 'SL002', MESSAGE = 'stopline: run already ended';
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.run_id IS DISTINCT FROM OLD.run_id
       OR NEW.trace_id IS DISTINCT FROM OLD.trace_id OR NEW.snapshot_id IS DISTINCT FROM OLD.snapshot_id
       OR NEW.policy_version IS DISTINCT FROM OLD.policy_version OR NEW.labels IS DISTINCT FROM OLD.labels
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: a run''s identity never changes';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER runs_guard BEFORE UPDATE OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION stopline_runs_guard();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('runs are never deleted');

CREATE TABLE records (
    tenant_id        text             NOT NULL,
    run_id           text             NOT NULL,
    seq              integer          NOT NULL CHECK (seq >= 0),
    kind             text             NOT NULL CHECK (kind IN ('run_start', 'step', 'run_end')),
    step_index       integer          NOT NULL,
    at_ns            bigint,
    status           text,            -- ok, warning, violation; NULL on run_start and run_end
    inflection       boolean          NOT NULL,
    policy_id        text,            -- the deciding policy, when the record has a decision
    total_tokens     bigint           NOT NULL,
    total_cost_cents double precision NOT NULL,
    body             bytea            NOT NULL, -- the exact canonical bytes the hash covers
    prev_hash        text             NOT NULL,
    hash             text             NOT NULL,
    content          text,            -- JSON trace.Content; NULL when none
    PRIMARY KEY (tenant_id, run_id, seq)
);

-- A run has at most one inflection point and at most one run_end.
CREATE UNIQUE INDEX records_one_inflection ON records (tenant_id, run_id) WHERE inflection;
CREATE UNIQUE INDEX records_one_end ON records (tenant_id, run_id) WHERE kind = 'run_end';

-- A record is stored only if it extends its run's chain: record 0 (the
-- run_start) belongs to a run that exists, has not ended, and follows the
-- genesis hash; any other record follows the hash stored at seq - 1, and
-- that record is not a run_end (CloseRun writes the run_end and the run's
-- final status in one transaction, so a closed chain is an ended run).
-- That is one primary-key lookup per step; the run's row is neither read
-- nor locked. Two writers racing for one seq both pass this check; the
-- primary key (tenant_id, run_id, seq) lets one of them in.
CREATE FUNCTION stopline_records_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev_kind text;
    prev_hash text;
    run_status text;
BEGIN
    IF NEW.seq = 0 THEN
        SELECT status INTO run_status FROM runs WHERE tenant_id = NEW.tenant_id AND run_id = NEW.run_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SL005', MESSAGE = 'stopline: no such run';
        END IF;
        IF run_status IN ('succeeded', 'failed', 'failed_policy', 'cancelled') THEN
            RAISE EXCEPTION USING ERRCODE = 'SL002', MESSAGE = 'stopline: run already ended';
        END IF;
        IF NEW.prev_hash <> '0000000000000000000000000000000000000000000000000000000000000000' THEN
            RAISE EXCEPTION USING ERRCODE = 'SL004', MESSAGE = 'stopline: record 0 must follow the genesis hash';
        END IF;
        RETURN NEW;
    END IF;
    SELECT kind, hash INTO prev_kind, prev_hash FROM records
        WHERE tenant_id = NEW.tenant_id AND run_id = NEW.run_id AND seq = NEW.seq - 1;
    IF NOT FOUND OR prev_hash <> NEW.prev_hash THEN
        RAISE EXCEPTION USING ERRCODE = 'SL004', MESSAGE = 'stopline: record does not extend the chain';
    END IF;
    IF prev_kind = 'run_end' THEN
        RAISE EXCEPTION USING ERRCODE = 'SL002', MESSAGE = 'stopline: run already ended';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER records_chain BEFORE INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION stopline_records_chain();
CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('records are append-only');
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('records are append-only');

CREATE TABLE incidents (
    tenant_id       text             NOT NULL,
    incident_id     text             NOT NULL,
    run_id          text             NOT NULL,
    trace_id        text             NOT NULL,
    snapshot_id     text             NOT NULL,
    policy_id       text             NOT NULL,
    source          text             NOT NULL,
    step_index      integer          NOT NULL,
    record_hash     text             NOT NULL,
    reason          text             NOT NULL,
    threshold       text             NOT NULL,
    limit_value     double precision NOT NULL,
    observed        double precision NOT NULL,
    severity        text             NOT NULL,
    title           text             NOT NULL,
    message         text             NOT NULL,
    created_at      bigint,
    -- Lifecycle: the only columns that ever change.
    status          text             NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    acknowledged_at bigint,
    acknowledged_by text             NOT NULL,
    resolved_at     bigint,
    resolved_by     text             NOT NULL,
    resolution      text             NOT NULL,
    ord             bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, incident_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
);

CREATE INDEX incidents_by_created ON incidents (tenant_id, created_at, ord);
CREATE INDEX incidents_by_run ON incidents (tenant_id, run_id);

CREATE FUNCTION stopline_incidents_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: incidents are never deleted';
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.incident_id IS DISTINCT FROM OLD.incident_id
       OR NEW.run_id IS DISTINCT FROM OLD.run_id OR NEW.trace_id IS DISTINCT FROM OLD.trace_id
       OR NEW.snapshot_id IS DISTINCT FROM OLD.snapshot_id OR NEW.policy_id IS DISTINCT FROM OLD.policy_id
       OR NEW.source IS DISTINCT FROM OLD.source OR NEW.step_index IS DISTINCT FROM OLD.step_index
       OR NEW.record_hash IS DISTINCT FROM OLD.record_hash OR NEW.reason IS DISTINCT FROM OLD.reason
       OR NEW.threshold IS DISTINCT FROM OLD.threshold OR NEW.limit_value IS DISTINCT FROM OLD.limit_value
       OR NEW.observed IS DISTINCT FROM OLD.observed OR NEW.severity IS DISTINCT FROM OLD.severity
       OR NEW.title IS DISTINCT FROM OLD.title OR NEW.message IS DISTINCT FROM OLD.message
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: an incident''s links and facts never change';
    END IF;
    -- The lifecycle only moves forward: open → acknowledged → resolved.
    IF (OLD.status = 'resolved' AND NEW.status <> 'resolved') OR (OLD.status = 'acknowledged' AND NEW.status = 'open') THEN
        RAISE EXCEPTION USING ERRCODE = 'SL003', MESSAGE = 'stopline: incident status cannot go back';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER incidents_guard BEFORE UPDATE OR DELETE ON incidents
    FOR EACH ROW EXECUTE FUNCTION stopline_incidents_guard();
CREATE TRIGGER incidents_no_truncate BEFORE TRUNCATE ON incidents
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('incidents are never deleted');

-- The export log: the evidence bundles that were produced and handed out.
CREATE TABLE exports (
    tenant_id   text   NOT NULL,
    bundle_id   text   NOT NULL,
    format      text   NOT NULL, -- json, pdf
    bundle_type text   NOT NULL, -- evidence, soc2, executive_debrief
    bundle_hash text   NOT NULL,
    run_id      text   NOT NULL,
    incident_id text   NOT NULL,
    key_id      text   NOT NULL,
    exported_by text   NOT NULL,
    reason      text   NOT NULL,
    created_at  bigint,
    ord         bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, bundle_id, format)
);

CREATE INDEX exports_by_created ON exports (tenant_id, created_at, ord);

CREATE TRIGGER exports_append_only BEFORE UPDATE OR DELETE ON exports
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('the export log is append-only');
CREATE TRIGGER exports_no_truncate BEFORE TRUNCATE ON exports
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('the export log is append-only');

-- Signed checkpoints of run chains (size and head hash, as a signed note
-- made with a key held outside the database).
CREATE TABLE checkpoints (
    tenant_id text    NOT NULL,
    run_id    text    NOT NULL,
    size      integer NOT NULL,
    key_name  text    NOT NULL,
    head_hash text    NOT NULL,
    at_ns     bigint,
    note      text    NOT NULL,
    PRIMARY KEY (tenant_id, run_id, size, key_name),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
);

CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('checkpoints are append-only');
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('checkpoints are append-only');
