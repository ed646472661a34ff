-- API keys: an SK SID and a secret, acting for one account. The secret is stored twice: as an
-- argon2id PHC string (Basic auth verifies it) and sealed with the master key, the key's SID as
-- associated data (Access Tokens are HMAC-signed with it, so roomd must recover it).
CREATE TABLE api_keys (
    sid            text        PRIMARY KEY
                               CONSTRAINT api_keys_sid_format CHECK (sid ~ '^SK[0-9a-f]{32}$'),
    account_sid    text        NOT NULL REFERENCES accounts (sid),
    friendly_name  text        NOT NULL,
    secret_hash    text        NOT NULL,
    secret_sealed  bytea       NOT NULL,
    date_created   timestamptz NOT NULL DEFAULT now(),
    date_updated   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_by_account ON api_keys (account_sid, date_created, sid);

-- Auth tokens sealed the same way (status callbacks are signed with them). NULL for an account
-- created before this column, until its token is next rotated.
ALTER TABLE accounts ADD COLUMN auth_token_sealed bytea;

-- One value sealed under the master key when the database first met it: a later start with
-- another key fails at once, instead of sealing new secrets that no replica could open together.
CREATE TABLE master_key_check (
    singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT master_key_check_singleton CHECK (singleton),
    sealed     bytea   NOT NULL
);
