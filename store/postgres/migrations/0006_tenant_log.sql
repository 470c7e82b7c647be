-- stopline schema for PostgreSQL: the tenant-wide transparency log. Per
-- tenant, a Merkle tree (RFC 6962, golang.org/x/mod/sumdb/tlog) whose
-- leaves are every run's final chain head (kind run_end, appended by
-- CloseRun) and every checkpoint (kind checkpoint, appended by
-- PutCheckpoint), each in the transaction that stores what it states.
-- Appends of one tenant, from any replica, take the lock of the tenant's
-- tenant_logs row, so leaf i is the i-th append. Leaves and hashes name
-- runs but do not reference them: they outlive a deleted run, which is
-- how its deletion is detected against a signed tree head.

-- One row per tenant with a log: its size and the hashes of the complete
-- subtrees it splits into (one per bit of size, largest first), which is
-- all an append reads.
CREATE TABLE tenant_logs (
    tenant_id text   PRIMARY KEY,
    size      bigint NOT NULL CHECK (size >= 0),
    frontier  bytea  NOT NULL
);

CREATE TABLE tenant_log_leaves (
    tenant_id text    NOT NULL,
    idx       bigint  NOT NULL,
    run_id    text    NOT NULL,
    kind      text    NOT NULL CHECK (kind IN ('run_end', 'checkpoint')),
    seq       integer NOT NULL,
    head_hash text    NOT NULL,
    key_name  text    NOT NULL,
    note_hash text    NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);

CREATE INDEX tenant_log_leaves_by_run ON tenant_log_leaves (tenant_id, run_id, idx);

-- The tree's stored hashes, by tlog.StoredHashIndex.
CREATE TABLE tenant_log_hashes (
    tenant_id text   NOT NULL,
    idx       bigint NOT NULL,
    hash      bytea  NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, idx)
);

CREATE FUNCTION stopline_tenant_logs_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.size IS DISTINCT FROM OLD.size + 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'SL001', MESSAGE = 'stopline: tenant logs are append-only';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenant_logs_only_grow BEFORE UPDATE ON tenant_logs
    FOR EACH ROW EXECUTE FUNCTION stopline_tenant_logs_grow();
CREATE TRIGGER tenant_logs_no_delete BEFORE DELETE ON tenant_logs
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
CREATE TRIGGER tenant_logs_no_truncate BEFORE TRUNCATE ON tenant_logs
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
CREATE TRIGGER tenant_log_leaves_append_only BEFORE UPDATE OR DELETE ON tenant_log_leaves
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
CREATE TRIGGER tenant_log_leaves_no_truncate BEFORE TRUNCATE ON tenant_log_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
CREATE TRIGGER tenant_log_hashes_append_only BEFORE UPDATE OR DELETE ON tenant_log_hashes
    FOR EACH ROW EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
CREATE TRIGGER tenant_log_hashes_no_truncate BEFORE TRUNCATE ON tenant_log_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION stopline_refuse('tenant logs are append-only');
