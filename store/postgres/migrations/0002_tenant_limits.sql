-- stopline schema for PostgreSQL, version 2: the ledger of tenant counters
-- that limits spanning runs are checked against (tenant_budget,
-- tenant_rate_limit). These are counters, not evidence: every step's
-- amounts are in its trace record; the ledger only makes the check
-- atomic across replicas. Amounts are integers (cost in millionths of a
-- cent).

-- A calendar window (a UTC day or month): one total per window, changed
-- by single conditional statements (INSERT ... ON CONFLICT DO UPDATE ...
-- WHERE used + amount <= limit), which PostgreSQL evaluates against the
-- latest committed total, under the row's lock.
CREATE TABLE ledger_windows (
    tenant_id    text   NOT NULL,
    counter      text   NOT NULL, -- prevention.Counter.Key: metric/window
    window_start bigint NOT NULL, -- unix nanoseconds
    used         bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (tenant_id, counter, window_start)
);

-- A rolling window: one row per hold, added up over the window at each
-- charge, under a transaction-level advisory lock on the counter.
CREATE TABLE ledger_events (
    tenant_id text   NOT NULL,
    counter   text   NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    at_ns     bigint NOT NULL,
    amount    bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (tenant_id, counter, id)
);

CREATE INDEX ledger_events_by_time ON ledger_events (tenant_id, counter, at_ns);

-- stopline_ledger_charge charges a rolling counter: a new hold (p_id NULL)
-- or a change to hold p_id, of p_amount at p_at, if the holds whose times
-- lie in (p_lo, p_hi) (p_id's excluded) plus p_amount are at most p_limit.
-- A hold lowered at its own time always fits. Each statement in the
-- function reads the latest committed rows (READ COMMITTED), after the
-- lock, so charges of one counter are checked one after the other, and
-- charges of different counters never wait for each other. Holds at or
-- before p_prune can no longer count and are deleted on the way. The
-- bounds come from prevention.Window.RollingBounds.
CREATE FUNCTION stopline_ledger_charge(p_tenant text, p_counter text, p_lock integer, p_id bigint,
        p_at bigint, p_lo bigint, p_hi bigint, p_prune bigint, p_amount bigint, p_limit bigint,
        OUT hold_id bigint, OUT total bigint, OUT ok boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    old_at     bigint;
    old_amount bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock, hashtext(p_tenant || '/' || p_counter));
    IF p_id IS NOT NULL THEN
        SELECT at_ns, amount INTO old_at, old_amount FROM ledger_events
            WHERE tenant_id = p_tenant AND counter = p_counter AND id = p_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SL007', MESSAGE = 'stopline: no such ledger hold';
        END IF;
    END IF;
    DELETE FROM ledger_events
        WHERE tenant_id = p_tenant AND counter = p_counter AND at_ns <= p_prune;
    SELECT COALESCE(SUM(amount), 0) + p_amount INTO total FROM ledger_events
        WHERE tenant_id = p_tenant AND counter = p_counter
          AND at_ns > p_lo AND at_ns < p_hi
          AND id IS DISTINCT FROM p_id;
    ok := total <= p_limit OR (p_id IS NOT NULL AND p_amount <= old_amount AND p_at = old_at);
    IF NOT ok THEN
        hold_id := p_id;
        RETURN;
    END IF;
    IF p_id IS NULL THEN
        INSERT INTO ledger_events (tenant_id, counter, at_ns, amount)
            VALUES (p_tenant, p_counter, p_at, p_amount) RETURNING id INTO hold_id;
    ELSE
        UPDATE ledger_events SET at_ns = p_at, amount = p_amount
            WHERE tenant_id = p_tenant AND counter = p_counter AND id = p_id;
        hold_id := p_id;
    END IF;
END
$$;
