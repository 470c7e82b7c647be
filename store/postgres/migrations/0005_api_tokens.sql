-- stopline schema for PostgreSQL: the API tokens of the HTTP API and the
-- console (governance.TokenStore). A token is kept as the SHA-256 of its
-- secret; the secret is never stored. Tokens are never deleted, and only
-- their revocation time may be set, once.
CREATE TABLE api_tokens (
    token_id    text   NOT NULL PRIMARY KEY,
    tenant_id   text   NOT NULL,
    name        text   NOT NULL,
    role        text   NOT NULL CHECK (role IN ('viewer', 'auditor', 'operator', 'admin')),
    secret_hash text   NOT NULL UNIQUE,
    created_at  bigint NOT NULL, -- unix nanoseconds
    created_by  text   NOT NULL,
    expires_at  bigint NOT NULL,
    revoked_at  bigint
);

CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id, created_at);

CREATE FUNCTION stopline_api_tokens_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'stopline: api tokens are never deleted (revoke them)';
    END IF;
    IF OLD.revoked_at IS NOT NULL OR NEW.revoked_at IS NULL
       OR (NEW.token_id, NEW.tenant_id, NEW.name, NEW.role, NEW.secret_hash, NEW.created_at, NEW.created_by, NEW.expires_at)
          IS DISTINCT FROM
          (OLD.token_id, OLD.tenant_id, OLD.name, OLD.role, OLD.secret_hash, OLD.created_at, OLD.created_by, OLD.expires_at) THEN
        RAISE EXCEPTION 'stopline: an api token can only be revoked, once';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER api_tokens_guard BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION stopline_api_tokens_guard();
