"""The gateway's schema `gateway`: API keys and the audit event table.

`MIGRATIONS` is registered in `bastion.components.all_migration_sets`, so
`bastion db migrate` and the gateway's start apply it; `bastion keys` applies it too.
"""

from __future__ import annotations

from bastion.db.migrations import Migration, MigrationSet

__all__ = ["MIGRATIONS"]

_API_KEYS = """
CREATE TABLE gateway.api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    tenant        text NOT NULL,
    roles         text[] NOT NULL CHECK (cardinality(roles) > 0),
    secret_hash   bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
COMMENT ON COLUMN gateway.api_keys.secret_hash IS
    'HMAC-SHA256(instance key, domain || id || secret); the secret itself is never stored';
"""

# Append-only: a statement-level trigger refuses UPDATE, DELETE and TRUNCATE (statement
# level, so even a DELETE matching no row is refused). The audit issue replaces this
# table with a hash chain; callers only see `AuditWriter`.
_AUDIT_EVENTS = """
CREATE TABLE gateway.audit_events (
    id               bigserial PRIMARY KEY,
    time             timestamptz NOT NULL,
    subject          text,
    tenant           text,
    roles            text[] NOT NULL DEFAULT '{}',
    auth_method      text,
    key_id           text,
    action           text NOT NULL,
    upstream         text,
    tool             text,
    argument_digest  text CHECK (argument_digest ~ '^[0-9a-f]{64}$'),
    decision         text NOT NULL CHECK (decision IN ('allow', 'deny', 'error')),
    reasons          jsonb NOT NULL DEFAULT '[]',
    latency_ms       double precision NOT NULL,
    outcome          text NOT NULL,
    request_id       text,
    client_address   text
);
CREATE INDEX audit_events_time ON gateway.audit_events USING brin (time);
CREATE INDEX audit_events_subject ON gateway.audit_events (tenant, subject, time);

CREATE FUNCTION gateway.audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gateway.audit_events is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit events are never changed or removed; query them instead';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON gateway.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.audit_events_append_only();
"""

MIGRATIONS = MigrationSet(
    "gateway",
    "gateway",
    (
        Migration("0001_api_keys", _API_KEYS),
        Migration("0002_audit_events", _AUDIT_EVENTS),
    ),
)
