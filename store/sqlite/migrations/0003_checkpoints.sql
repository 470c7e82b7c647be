-- stopline schema, version 3: signed checkpoints of run chains (size and
-- head hash, as a signed note made with a key held outside the database).

CREATE TABLE checkpoints (
    tenant_id  TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    key_name   TEXT NOT NULL,
    head_hash  TEXT NOT NULL,
    at_ns      INTEGER,
    note       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, run_id, size, key_name),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, run_id)
) STRICT;

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'stopline: checkpoints are append-only');
END;

CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'stopline: checkpoints are append-only');
END;
