-- stopline schema for PostgreSQL: approval holds and kill switches.
--
-- A hold is a step waiting for a person's answer. It is pending until
-- answered (approved, denied, expired, cancelled), then never changes:
-- the answer is recorded in the step's trace record, and the hold row
-- keeps who answered, when and why. Holds are never deleted.
CREATE TABLE holds (
    tenant_id     text             NOT NULL,
    hold_id       text             NOT NULL,
    run_id        text             NOT NULL,
    step_index    integer          NOT NULL CHECK (step_index >= 0),
    step_type     text             NOT NULL,
    tool          text             NOT NULL,
    cost_cents    double precision NOT NULL,
    policy_id     text             NOT NULL,
    source        text             NOT NULL,
    message       text             NOT NULL,
    requested_at  bigint           NOT NULL, -- unix nanoseconds
    deadline      bigint           NOT NULL,
    status        text             NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    answered_by   text             NOT NULL,
    answer_reason text             NOT NULL,
    answered_at   bigint,
    step          bytea,                     -- the held step, for the process that resumes the run
    PRIMARY KEY (tenant_id, hold_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
);

CREATE INDEX holds_by_status ON holds (tenant_id, status, requested_at);
CREATE INDEX holds_by_run ON holds (tenant_id, run_id);

CREATE FUNCTION stopline_holds_answer_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' OR NEW.status = 'pending'
        OR (NEW.tenant_id, NEW.hold_id, NEW.run_id, NEW.step_index, NEW.requested_at, NEW.deadline, NEW.policy_id)
           IS DISTINCT FROM (OLD.tenant_id, OLD.hold_id, OLD.run_id, OLD.step_index, OLD.requested_at, OLD.deadline, OLD.policy_id)
        OR NEW.step IS DISTINCT FROM OLD.step THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: a hold is answered once, and only its answer is written';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER holds_answered_once BEFORE UPDATE ON holds
    FOR EACH ROW EXECUTE FUNCTION stopline_holds_answer_once();
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('holds are never deleted');
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('holds are never deleted');

-- A kill switch over a run, an agent (the runs' "agent" label) or a
-- tenant. At most one is active (released_at NULL) per scope and
-- target; a released switch stays, with who released it and when.
CREATE TABLE kill_switches (
    tenant_id   text   NOT NULL,
    kill_id     text   NOT NULL,
    scope       text   NOT NULL CHECK (scope IN ('run', 'agent', 'tenant')),
    target      text   NOT NULL,
    pulled_by   text   NOT NULL,
    reason      text   NOT NULL,
    pulled_at   bigint NOT NULL,
    released_by text,
    released_at bigint,
    PRIMARY KEY (tenant_id, kill_id)
);

CREATE UNIQUE INDEX kill_switches_active ON kill_switches (tenant_id, scope, target) WHERE released_at IS NULL;

CREATE FUNCTION stopline_kill_release_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
        OR (NEW.tenant_id, NEW.kill_id, NEW.scope, NEW.target, NEW.pulled_by, NEW.reason, NEW.pulled_at)
           IS DISTINCT FROM (OLD.tenant_id, OLD.kill_id, OLD.scope, OLD.target, OLD.pulled_by, OLD.reason, OLD.pulled_at) THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: a kill switch is released once, and only its release is written';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER kill_switches_release_once BEFORE UPDATE ON kill_switches
    FOR EACH ROW EXECUTE FUNCTION stopline_kill_release_once();
CREATE TRIGGER kill_switches_no_delete BEFORE DELETE ON kill_switches
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('kill switches are never deleted');
CREATE TRIGGER kill_switches_no_truncate BEFORE TRUNCATE ON kill_switches
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('kill switches are never deleted');

-- Every change to holds or kill switches is announced, at commit, on
-- the channel stopline_operator: the replicas that LISTEN wake their
-- waiting steps and refresh their kill-switch view at once.
CREATE FUNCTION stopline_operator_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stopline_operator', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER holds_notify AFTER INSERT OR UPDATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_operator_notify();
CREATE TRIGGER kill_switches_notify AFTER INSERT OR UPDATE ON kill_switches
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_operator_notify();
