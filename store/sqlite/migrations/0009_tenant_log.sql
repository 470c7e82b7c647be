-- stopline schema: the tenant-wide transparency log. Per tenant, a Merkle
-- tree (RFC 6962, golang.org/x/mod/sumdb/tlog) whose leaves are every
-- run's final chain head (kind run_end, appended by CloseRun) and every
-- checkpoint (kind checkpoint, appended by PutCheckpoint), each in the
-- transaction that stores what it states. Leaves and hashes name runs but
-- do not reference them: they outlive a deleted run, which is how its
-- deletion is detected against a signed tree head.

-- One row per tenant with a log: its size and the hashes of the complete
-- subtrees it splits into (one per bit of size, largest first), which is
-- all an append reads. WITHOUT ROWID: the row is found (and updated) in
-- one B-tree by its tenant, not in an index and then the table.
CREATE TABLE tenant_logs (
    tenant_id TEXT    PRIMARY KEY,
    size      INTEGER NOT NULL CHECK (size >= 0),
    frontier  BLOB    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tenant_log_leaves (
    tenant_id TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    run_id    TEXT    NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('run_end', 'checkpoint')),
    seq       INTEGER NOT NULL,
    head_hash TEXT    NOT NULL,
    key_name  TEXT    NOT NULL,
    note_hash TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, idx)
) STRICT, WITHOUT ROWID;

CREATE INDEX tenant_log_leaves_by_run ON tenant_log_leaves (tenant_id, run_id, idx);

-- The tree's stored hashes, by tlog.StoredHashIndex.
CREATE TABLE tenant_log_hashes (
    tenant_id TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER tenant_logs_no_delete BEFORE DELETE ON tenant_logs
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;

CREATE TRIGGER tenant_logs_only_grow BEFORE UPDATE ON tenant_logs
WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.size IS NOT OLD.size + 1
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;

CREATE TRIGGER tenant_log_leaves_no_update BEFORE UPDATE ON tenant_log_leaves
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;

CREATE TRIGGER tenant_log_leaves_no_delete BEFORE DELETE ON tenant_log_leaves
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;

CREATE TRIGGER tenant_log_hashes_no_update BEFORE UPDATE ON tenant_log_hashes
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;

CREATE TRIGGER tenant_log_hashes_no_delete BEFORE DELETE ON tenant_log_hashes
BEGIN
    SELECT RAISE(ABORT, 'stopline: tenant logs are append-only');
END;
