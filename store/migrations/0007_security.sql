-- Security and trust: people and their roles, API tokens, device credentials and
-- revocation, QR code generations, idempotent check-ins, and a hash-chained audit log.

-- People. Passwords are argon2id hashes; a user of role 'enterprise' belongs to one
-- enterprise, a 'regulator' to a region ('' = every region).
CREATE TABLE users (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$'),
    role           text NOT NULL CHECK (role IN ('admin', 'regulator', 'inspector', 'enterprise')),
    enterprise_id  text REFERENCES enterprises (id),
    region         text NOT NULL DEFAULT '',
    password_hash  text,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'enterprise') = (enterprise_id IS NOT NULL))
);

-- Bearer tokens (login sessions and API keys): 256 random bits, stored as SHA-256 only.
CREATE TABLE api_tokens (
    token_sha256  bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('session', 'api_key')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Devices: a revoked device stays in the registry (its history and alerts keep their
-- foreign keys) but its data is dead-lettered as 'device_revoked'. The MQTT password is
-- kept only as a Mosquitto PBKDF2-SHA512 hash, ready for the broker's password file.
ALTER TABLE devices ADD COLUMN revoked_at timestamptz;
ALTER TABLE devices ADD COLUMN revoked_reason text;
ALTER TABLE devices ADD COLUMN mqtt_password_hash text;

-- A site's QR code carries its generation; revoking a printed code bumps it, so every
-- code printed before stops checking in (the new one is printed from the API).
ALTER TABLE enterprises ADD COLUMN qr_generation integer NOT NULL DEFAULT 0;

-- Which token a visit was checked in with: a replay (same code, same inspector, within a
-- short window) returns the open visit instead of creating a second one.
ALTER TABLE visits ADD COLUMN token_sha256 bytea;
CREATE INDEX visits_replay ON visits (inspector_id, token_sha256, checked_in_at DESC)
    WHERE checked_out_at IS NULL;

-- Append-only audit log. seq is the position in the chain (gapless: written under a
-- lock), hash = sha256(prev_hash || canonical JSON of the row); see store/audit.py.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY CHECK (seq >= 1),
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text NOT NULL,
    data       text NOT NULL,           -- canonical JSON, hashed as stored
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (length(hash) = 32)
);

-- Second line of defence: even a role with UPDATE/DELETE cannot change history without
-- first disabling this trigger (which needs ownership of the table).
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- The application role. Roles are cluster-wide and many databases run this migration
-- (tests clone dozens), possibly at once: create it only if missing, and tolerate losing
-- the race. NOLOGIN: deployments grant it to the login role the services use.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'offsite_app') THEN
        CREATE ROLE offsite_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

GRANT USAGE ON SCHEMA public TO offsite_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO offsite_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO offsite_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM offsite_app;
GRANT SELECT, INSERT ON audit_log TO offsite_app;
-- tables of later migrations (created by the migrating role) get the same grants
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO offsite_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO offsite_app;

-- The enterprise's rating of a visit (kept from the inspecting department's views).
ALTER TABLE visits ADD COLUMN rating smallint CHECK (rating BETWEEN 1 AND 5);
ALTER TABLE visits ADD COLUMN rating_comment text;
ALTER TABLE visits ADD COLUMN rated_at timestamptz;

-- ingest rereads the revoked devices every few seconds
CREATE INDEX devices_revoked ON devices (mn) WHERE revoked_at IS NOT NULL;
