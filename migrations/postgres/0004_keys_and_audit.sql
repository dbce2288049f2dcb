-- Who may call the gateway, and what each caller did (45 CFR 307.13: access limited to those
-- permitted, and audit trails of access).

-- API keys. The key itself is `gwk_<key_id>_<secret>`: the key id is public (it finds the
-- row), the secret is kept only as its SHA-256 and compared in constant time. A key is never
-- deleted: a revoked key keeps its row so the audit trail can still name it.
CREATE TABLE api_keys (
    key_id             TEXT PRIMARY KEY,
    -- The tenant the key speaks for: a vendor's or employer's name is its sender, the
    -- namespace of its batch ids and files. Keys of one name share one role.
    name               TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('vendor', 'employer', 'payment-site', 'back-office', 'admin')),
    -- An employer key's FEINs, 9 digits each, comma-separated; empty for other roles.
    feins              TEXT NOT NULL DEFAULT '',
    secret_sha256      TEXT NOT NULL,
    -- The SHA-256 of a client certificate (DER) that authenticates as this key over mTLS.
    client_cert_sha256 TEXT UNIQUE,
    created_at         TEXT NOT NULL,
    revoked_at         TEXT
);
CREATE INDEX api_keys_by_name ON api_keys (name);

-- One row per audited call, written in the same transaction as the action it records (or,
-- for a refused or failed call, on its own). Rows are never changed or removed.
CREATE TABLE audit_log (
    audit_id    BIGSERIAL PRIMARY KEY,
    at          TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    -- The key's name, or `-` for a caller that did not authenticate.
    actor       TEXT NOT NULL,
    key_id      TEXT,
    role        TEXT NOT NULL,
    -- The RPC, e.g. `PaymentService/SubmitPayment`, or the local command (`admin key create`).
    action      TEXT NOT NULL,
    -- What the call was about: `payer:12`, `batch:ACME-1`, `case:12345678`, … (never PII).
    object      TEXT NOT NULL,
    -- OK, or why not: UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT, …
    outcome     TEXT NOT NULL
);
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows cannot be changed or deleted';
END;
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
-- TRUNCATE skips row triggers: refuse it too.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
