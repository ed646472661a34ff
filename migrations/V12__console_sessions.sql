-- The web console's sessions (issue 25). A session is a random secret in an HttpOnly cookie;
-- only its SHA-256 is stored, so a copy of this table signs nobody in. Sessions end at a fixed
-- time (no sliding renewal), on sign-out, and whenever the credential they were opened with
-- stops being valid: enforced here, for every process and every path that changes a credential
-- (the CLI's `accounts rotate-token`, `keys delete`, a suspension).

CREATE TABLE console_sessions (
    id_hash      bytea       PRIMARY KEY CONSTRAINT console_sessions_id_hash_length CHECK (octet_length(id_hash) = 32),
    account_sid  text        NOT NULL REFERENCES accounts (sid) ON DELETE CASCADE,
    -- The API key it was opened with (NULL: the account's auth token); deleting the key ends it.
    api_key_sid  text        REFERENCES api_keys (sid) ON DELETE CASCADE,
    date_created timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX console_sessions_account ON console_sessions (account_sid, date_created);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_key ON console_sessions (api_key_sid) WHERE api_key_sid IS NOT NULL;

-- A rotated auth token ends the sessions opened with the old one; an account that is no longer
-- active loses all of its sessions.
CREATE FUNCTION console_sessions_revoke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'active' THEN
        DELETE FROM console_sessions WHERE account_sid = NEW.sid;
    ELSE
        DELETE FROM console_sessions WHERE account_sid = NEW.sid AND api_key_sid IS NULL;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_revoke_console_sessions
    AFTER UPDATE OF auth_token_hash, status ON accounts
    FOR EACH ROW
    WHEN (OLD.auth_token_hash IS DISTINCT FROM NEW.auth_token_hash OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION console_sessions_revoke();

-- A key whose secret changes (a key is replaced, never edited today, but the rule holds).
CREATE FUNCTION console_sessions_revoke_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM console_sessions WHERE api_key_sid = NEW.sid;
    RETURN NULL;
END $$;

CREATE TRIGGER api_keys_revoke_console_sessions
    AFTER UPDATE OF secret_hash ON api_keys
    FOR EACH ROW
    WHEN (OLD.secret_hash IS DISTINCT FROM NEW.secret_hash)
    EXECUTE FUNCTION console_sessions_revoke_key();
