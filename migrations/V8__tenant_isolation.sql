-- One account must never slow, stall or blind another (issue 20).

-- Status callbacks: only each room's head event (its earliest pending one) is a claim candidate,
-- so what a claim reads does not grow with the events queued behind receivers that never
-- answer. `head` is kept true on exactly that event:
--  * a statement that writes events (holding the room's row lock) makes its first one the head
--    when the room has no pending event; it decides that by locking the room's earliest pending
--    event FOR SHARE, so a dispatcher settling that event either finished before (and the
--    writer sees it settled) or waits for the writer to commit (and then sees its events);
--  * settling a head (`callback_settle`) promotes the room's next pending event, in a second
--    statement, whose snapshot holds every event committed while the first waited;
--  * queuing an event again (`callback_requeue`) locks the room, then recomputes its head.
ALTER TABLE callback_events ADD COLUMN head boolean NOT NULL DEFAULT false;
UPDATE callback_events e SET head = true
WHERE e.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM callback_events b
                  WHERE b.room_sid = e.room_sid AND b.status = 'pending'
                    AND b.sequence_number < e.sequence_number);

DROP INDEX callback_events_due;
-- The claim: accounts with heads (walked one index probe per account), then each account's due
-- heads, oldest due first.
CREATE INDEX callback_events_heads ON callback_events (account_sid, next_attempt)
    WHERE status = 'pending' AND head;
-- Pruning settled events after the retention period.
CREATE INDEX callback_events_settled ON callback_events (date_updated)
    WHERE status <> 'pending';

-- The destination a delivery slot is counted against: the URL's host and port, lowercased.
CREATE FUNCTION callback_host(url text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(coalesce(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#]*)'), ''))
$$;

-- Records one attempt's outcome, fenced by its attempt number; when the event leaves 'pending'
-- its room's next pending event becomes the head. Each statement of a (volatile) PL/pgSQL
-- function takes a fresh snapshot, which the promotion needs. One event per call, in a
-- transaction of its own: a dispatcher never holds one event's lock while waiting for another's.
CREATE FUNCTION callback_settle(p_sid text, p_attempts integer, p_status text, p_code integer,
                                p_error text, p_retry_in float8) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_room text;
BEGIN
    UPDATE callback_events e SET status = p_status,
        head = e.head AND p_status = 'pending',
        last_response_status = p_code, last_error = p_error,
        next_attempt = CASE WHEN p_retry_in IS NULL THEN e.next_attempt
                            ELSE now() + make_interval(secs => p_retry_in) END,
        date_delivered = CASE WHEN p_status = 'delivered' THEN now() ELSE e.date_delivered END,
        date_updated = now()
    WHERE e.sid = p_sid AND e.attempts = p_attempts AND e.status = 'pending'
    RETURNING e.room_sid INTO v_room;
    IF v_room IS NULL THEN
        RETURN false;
    END IF;
    IF p_status <> 'pending' THEN
        UPDATE callback_events SET head = true
        WHERE sid = (SELECT n.sid FROM callback_events n
                     WHERE n.room_sid = v_room AND n.status = 'pending'
                     ORDER BY n.sequence_number LIMIT 1)
          AND NOT head;
    END IF;
    RETURN true;
END $$;

-- Queues a delivered or failed event again (one more attempt: its attempt count stays), and
-- makes the room's earliest pending event its head. Holds the room's row lock, as writers of
-- events do, and the current head's, as a settling dispatcher does.
CREATE FUNCTION callback_requeue(p_account text, p_room text, p_sid text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_first integer;
BEGIN
    PERFORM 1 FROM rooms WHERE sid = p_room AND account_sid = p_account FOR UPDATE;
    PERFORM 1 FROM callback_events WHERE room_sid = p_room AND status = 'pending' AND head FOR UPDATE;
    UPDATE callback_events SET status = 'pending', next_attempt = now(), date_updated = now()
    WHERE account_sid = p_account AND room_sid = p_room AND sid = p_sid AND status <> 'pending';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    SELECT min(sequence_number) INTO v_first FROM callback_events
    WHERE room_sid = p_room AND status = 'pending';
    UPDATE callback_events SET head = (sequence_number = v_first)
    WHERE room_sid = p_room AND status = 'pending' AND (head OR sequence_number = v_first)
      AND head <> (sequence_number = v_first);
    RETURN true;
END $$;

-- Timestamps taken when the statement starts, not when its transaction did: a change waits
-- for its room's lock (up to the statement timeout) in an earlier statement, so a stamp taken
-- at the transaction's start could be older than the last event of the room it then writes.
CREATE OR REPLACE FUNCTION roomd_now() RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('roomd.clock', true), '')::timestamptz, statement_timestamp())
$$;

-- `GET /v1/Rooms?Status=completed&UniqueName=X`: the in-progress case has its unique index.
CREATE INDEX rooms_account_status_name_created
    ON rooms (account_sid, status, unique_name, date_created DESC, sid DESC);

-- Per-account limits (NULL: the process's default setting) and Twilio's client-side room
-- creation (a join naming a room that does not exist creates it), which an account may turn off.
ALTER TABLE accounts ADD COLUMN max_requests_per_second integer
    CONSTRAINT accounts_max_requests_per_second_valid CHECK (max_requests_per_second BETWEEN 1 AND 1000000);
ALTER TABLE accounts ADD COLUMN client_room_creation boolean NOT NULL DEFAULT true;
