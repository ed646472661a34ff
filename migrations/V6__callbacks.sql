-- Room status callbacks: a transactional outbox. Every statement that changes a room, a
-- participant or a track of a room with a StatusCallback inserts the events it implies in the
-- same statement, so an event exists if and only if its change committed. Dispatchers on every
-- replica claim due events (FOR UPDATE SKIP LOCKED, then a lease in `next_attempt`) and deliver
-- them over HTTP with no transaction open.
CREATE TABLE callback_events (
    sid             text        PRIMARY KEY
                                CONSTRAINT callback_events_sid_format CHECK (sid ~ '^EV[0-9a-f]{32}$'),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    room_sid        text        NOT NULL REFERENCES rooms (sid),
    -- Twilio's SequenceNumber: 0, 1, 2, ... per room, in the order the changes happened. Every
    -- writer holds the room's row lock and reads the room's last number in a statement that
    -- started after it took the lock, so the numbers are gapless and never reused; the unique
    -- index turns any breach of that rule into an error rather than a misordered delivery.
    sequence_number integer     NOT NULL CONSTRAINT callback_events_sequence_valid CHECK (sequence_number >= 0),
    event           text        NOT NULL,
    url             text        NOT NULL,
    method          text        NOT NULL CONSTRAINT callback_events_method_valid CHECK (method IN ('GET', 'POST')),
    -- The form parameters, as sent (every value a string).
    params          jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CONSTRAINT callback_events_status_valid CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- When a dispatcher may next take a pending event: now for a new one, after the backoff for
    -- a failed attempt, and the end of the lease while one is being delivered (a dispatcher
    -- killed mid-delivery leaves it to be taken again when the lease ends).
    next_attempt    timestamptz NOT NULL DEFAULT now(),
    last_response_status integer,
    last_error      text,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now(),
    date_delivered  timestamptz,
    CONSTRAINT callback_events_room_sequence UNIQUE (room_sid, sequence_number)
);
-- The dispatcher's claim: due pending events, oldest due first.
CREATE INDEX callback_events_due ON callback_events (next_attempt) WHERE status = 'pending';
-- A room's events wait for the earlier ones: "is an earlier event of this room still pending?"
CREATE INDEX callback_events_pending_by_room ON callback_events (room_sid, sequence_number)
    WHERE status = 'pending';

-- The dispatchers, and whether each is idle (waiting for a notification). A NOTIFY holds a
-- database-wide lock through its transaction's commit, WAL flush included, so notifying
-- transactions commit one at a time: notifying on every event would cap event-writing changes
-- at one per flush (about 350/s on a slow disk). So a commit notifies only while some
-- dispatcher is idle; a busy one claims again as soon as a delivery ends. A dispatcher marks
-- itself idle, then claims once more before it sleeps, so an event is either claimed or
-- notified (or, in a narrow race, found by the next poll). Unlogged: it is state of running
-- processes, which register again after a crash; a row not refreshed for 30 s (a process
-- killed while idle) no longer counts.
CREATE UNLOGGED TABLE callback_dispatchers (
    id         text        PRIMARY KEY,
    idle       boolean     NOT NULL DEFAULT false,
    seen       timestamptz NOT NULL DEFAULT now()
);

-- Wakes idle dispatchers (LISTEN roomd_callbacks) when events commit, or an event is queued
-- again; polling is the safety net. Once per statement that inserted any, and NOTIFY folds
-- repeats within a transaction.
CREATE FUNCTION callback_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added)
       AND EXISTS (SELECT 1 FROM callback_dispatchers WHERE idle AND seen > now() - interval '30 seconds') THEN
        PERFORM pg_notify('roomd_callbacks', '');
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION callback_events_notify_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('roomd_callbacks', '');
    RETURN NULL;
END $$;
CREATE TRIGGER callback_events_notify AFTER INSERT ON callback_events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION callback_events_notify();
CREATE TRIGGER callback_events_notify_again AFTER UPDATE OF status ON callback_events
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION callback_events_notify_row();
