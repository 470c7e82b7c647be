-- stopline schema, version 2: the export log, an append-only list of the
-- evidence bundles that were produced and handed out.

CREATE TABLE exports (
    tenant_id   TEXT NOT NULL,
    bundle_id   TEXT NOT NULL,
    format      TEXT NOT NULL, -- json, pdf
    bundle_type TEXT NOT NULL, -- evidence, soc2, executive_debrief
    bundle_hash TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    exported_by TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER,
    PRIMARY KEY (tenant_id, bundle_id, format)
) STRICT;

CREATE INDEX exports_by_created ON exports (tenant_id, created_at);

CREATE TRIGGER exports_no_update BEFORE UPDATE ON exports
BEGIN
    SELECT RAISE(ABORT, 'stopline: the export log is append-only');
END;

CREATE TRIGGER exports_no_delete BEFORE DELETE ON exports
BEGIN
    SELECT RAISE(ABORT, 'stopline: the export log is append-only');
END;
