-- Test clocks: an account whose time is its own, frozen until POST /v1/TestClock moves it.
--
-- How one time reaches every statement: a request of a test-clock account runs in a
-- transaction that first locks the account's clock (FOR SHARE; an advance holds it FOR UPDATE,
-- so the two never interleave) and sets the transaction-local setting `roomd.clock` to its
-- time. Every statement that stamps a time the account sees calls `roomd_now()`, which is that
-- setting when set and `now()` otherwise: for every other account nothing changes but the name.
-- An advance sets `roomd.clock` to each deadline in turn, so what it ends ends at its deadline.
CREATE TABLE test_clocks (
    account_sid  text        PRIMARY KEY REFERENCES accounts (sid),
    frozen_time  timestamptz NOT NULL,
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION roomd_now() RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('roomd.clock', true), '')::timestamptz, now())
$$;

-- Whether the statement runs on a test clock (rows it makes are then `clocked`).
CREATE FUNCTION roomd_clocked() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('roomd.clock', true), '') <> ''
$$;

ALTER TABLE rooms ALTER COLUMN date_created SET DEFAULT roomd_now(),
                  ALTER COLUMN date_updated SET DEFAULT roomd_now();
ALTER TABLE participants ALTER COLUMN date_created SET DEFAULT roomd_now(),
                         ALTER COLUMN date_updated SET DEFAULT roomd_now(),
                         ALTER COLUMN start_time SET DEFAULT roomd_now();
ALTER TABLE published_tracks ALTER COLUMN date_created SET DEFAULT roomd_now(),
                             ALTER COLUMN date_updated SET DEFAULT roomd_now();

-- Rooms and participants of test-clock accounts: their deadlines are in clock time, which real
-- time never reaches, so the sweeper's queues leave them out (its indexes hold only the others,
-- as before) and only an advance ends them, through indexes of their own.
ALTER TABLE rooms ADD COLUMN clocked boolean NOT NULL DEFAULT roomd_clocked();
ALTER TABLE participants ADD COLUMN clocked boolean NOT NULL DEFAULT roomd_clocked();

DROP INDEX rooms_deadline_in_progress;
CREATE INDEX rooms_deadline_in_progress
    ON rooms (deadline) WHERE status = 'in-progress' AND NOT clocked;
CREATE INDEX rooms_clocked_deadline
    ON rooms (account_sid, deadline) WHERE status = 'in-progress' AND clocked;

DROP INDEX participants_deadline_connected;
CREATE INDEX participants_deadline_connected
    ON participants (deadline) WHERE status = 'connected' AND NOT clocked;
CREATE INDEX participants_clocked_deadline
    ON participants (account_sid, deadline) WHERE status = 'connected' AND clocked;
