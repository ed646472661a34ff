-- Accounts are roomd's tenants. The auth token is stored only as an argon2id PHC string.
-- SIDs are text with a CHECK on their shape (not char(34): sqlx binds text, and a char column
-- would then not use its index).
CREATE TABLE accounts (
    sid             text        PRIMARY KEY
                                CONSTRAINT accounts_sid_format CHECK (sid ~ '^AC[0-9a-f]{32}$'),
    friendly_name   text        NOT NULL,
    status          text        NOT NULL DEFAULT 'active'
                                CONSTRAINT accounts_status_valid CHECK (status IN ('active', 'suspended', 'closed')),
    auth_token_hash text        NOT NULL,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now()
);
