-- stopline schema: the API tokens of the HTTP API and the console
-- (governance.TokenStore). A token is kept as the SHA-256 of its secret;
-- the secret is never stored. Tokens are never deleted, and only their
-- revocation time may be set, once.
CREATE TABLE api_tokens (
    token_id    TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'auditor', 'operator', 'admin')),
    secret_hash TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL, -- unix nanoseconds
    created_by  TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id, created_at);

CREATE TRIGGER api_tokens_no_delete BEFORE DELETE ON api_tokens
BEGIN
    SELECT RAISE(ABORT, 'stopline: api tokens are never deleted (revoke them)');
END;

CREATE TRIGGER api_tokens_only_revoke BEFORE UPDATE ON api_tokens
WHEN OLD.revoked_at IS NOT NULL
  OR NEW.revoked_at IS NULL
  OR NEW.token_id IS NOT OLD.token_id
  OR NEW.tenant_id IS NOT OLD.tenant_id
  OR NEW.name IS NOT OLD.name
  OR NEW.role IS NOT OLD.role
  OR NEW.secret_hash IS NOT OLD.secret_hash
  OR NEW.created_at IS NOT OLD.created_at
  OR NEW.created_by IS NOT OLD.created_by
  OR NEW.expires_at IS NOT OLD.expires_at
BEGIN
    SELECT RAISE(ABORT, 'stopline: an api token can only be revoked, once');
END;
