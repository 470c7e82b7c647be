-- stopline schema, version 5: the records table is rebuilt with the same
-- columns, keys, indexes and triggers, and the same rules; only its CHECK on
-- kind is written as comparisons instead of IN (...). SQLite evaluates an
-- IN list of three or more values by filling a temporary b-tree with it at
-- every INSERT: about 1.4 µs per step, a sixth of what a step costs SQLite
-- in synchronous=NORMAL mode. (The two partial unique indexes and the
-- foreign key to runs cost about 0.1-0.3 µs each and are kept.)
--
-- SQLite cannot change a CHECK in place: the table is copied, once, in the
-- transaction of this migration, with every rowid kept. DROP TABLE does not
-- fire the records_no_delete trigger, and no other table refers to records.

CREATE TABLE records_v5 (
    tenant_id        TEXT    NOT NULL,
    run_id           TEXT    NOT NULL,
    seq              INTEGER NOT NULL CHECK (seq >= 0),
    kind             TEXT    NOT NULL CHECK (kind = 'run_start' OR kind = 'step' OR kind = 'run_end'),
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

INSERT INTO records_v5 (rowid, tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection,
        policy_id, total_tokens, total_cost_cents, body, prev_hash, hash, content)
    SELECT rowid, tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection,
        policy_id, total_tokens, total_cost_cents, body, prev_hash, hash, content
    FROM records ORDER BY rowid;

DROP TABLE records;
ALTER TABLE records_v5 RENAME TO records;

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
