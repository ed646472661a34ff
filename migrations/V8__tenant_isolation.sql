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

-- Records attempts' outcomes (parallel arrays), each fenced by its attempt number; when an
-- event leaves 'pending' its room's next pending event becomes the head, in a later statement
-- (each statement of a volatile PL/pgSQL function takes a fresh snapshot), which sees every
-- event committed by a writer that this transaction made wait. The events are locked first
-- with SKIP LOCKED: one that a writer holds (FOR SHARE, to decide its own events' head) is
-- left for the next call, so a dispatcher never waits while holding other events' locks.
-- Returns each event it took, and whether its outcome counted (false: the lease was lost).
CREATE FUNCTION callback_settle(p_sids text[], p_attempts integer[], p_statuses text[],
                                p_codes integer[], p_errors text[], p_retry_in float8[])
RETURNS TABLE (sid text, recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_locked text[];
    v_done text[];
    v_rooms text[];
BEGIN
    SELECT coalesce(array_agg(l.sid), '{}') INTO v_locked
    FROM (SELECT e.sid FROM callback_events e WHERE e.sid = ANY(p_sids)
          ORDER BY e.sid FOR UPDATE SKIP LOCKED) l;
    WITH o AS (
        SELECT * FROM unnest(p_sids, p_attempts, p_statuses, p_codes, p_errors, p_retry_in)
            AS o(sid, attempts, status, code, error, retry_in)
        WHERE o.sid = ANY(v_locked)),
    settled AS (
        UPDATE callback_events e SET status = o.status,
            head = e.head AND o.status = 'pending',
            last_response_status = o.code, last_error = o.error,
            next_attempt = CASE WHEN o.retry_in IS NULL THEN e.next_attempt
                                ELSE now() + make_interval(secs => o.retry_in) END,
            date_delivered = CASE WHEN o.status = 'delivered' THEN now() ELSE e.date_delivered END,
            date_updated = now()
        FROM o
        WHERE e.sid = o.sid AND e.attempts = o.attempts AND e.status = 'pending'
        RETURNING e.sid, e.room_sid, e.status)
    SELECT coalesce(array_agg(s.sid), '{}'),
           coalesce(array_agg(s.room_sid) FILTER (WHERE s.status <> 'pending'), '{}')
    INTO v_done, v_rooms FROM settled s;
    UPDATE callback_events n SET head = true
    WHERE n.sid IN (SELECT (SELECT p.sid FROM callback_events p
                            WHERE p.room_sid = r.room_sid AND p.status = 'pending'
                            ORDER BY p.sequence_number LIMIT 1)
                    FROM unnest(v_rooms) AS r(room_sid))
      AND NOT n.head;
    RETURN QUERY SELECT l.sid, l.sid = ANY(v_done) FROM unnest(v_locked) AS l(sid);
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

-- Per-account quotas on what is live at once, as Twilio's (10,000 concurrent rooms, 53119;
-- 10,000 concurrent participants, 53206): the account's own (0: unlimited), else the serving
-- connection's default (`roomd.max_rooms_in_progress`, `roomd.max_participants_connected`, set
-- from ROOMD_ACCOUNT_MAX_*), else 10,000. Checked in the statement that creates the room or, for
-- a participant, in the join's transaction after its room's lock: a count that stops at the
-- limit, so it costs what the account has live, up to the limit. Concurrent creates in other
-- transactions do not see each other, so an account may pass its room quota by at most the
-- creates in flight at that moment; joins to one room are serialised by its lock.
ALTER TABLE accounts ADD COLUMN max_rooms_in_progress integer
    CONSTRAINT accounts_max_rooms_in_progress_valid CHECK (max_rooms_in_progress >= 0);
ALTER TABLE accounts ADD COLUMN max_participants_connected integer
    CONSTRAINT accounts_max_participants_connected_valid CHECK (max_participants_connected >= 0);

-- Counting an account's connected participants.
CREATE INDEX participants_account_connected ON participants (account_sid) WHERE status = 'connected';

-- Whether the account may have one more room in progress (`p_what` 'rooms') or participant
-- connected ('participants').
CREATE FUNCTION roomd_quota_left(p_account text, p_what text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit integer;
    v_live bigint;
BEGIN
    SELECT coalesce(CASE p_what WHEN 'rooms' THEN max_rooms_in_progress
                                ELSE max_participants_connected END,
                    nullif(current_setting(CASE p_what WHEN 'rooms' THEN 'roomd.max_rooms_in_progress'
                                           ELSE 'roomd.max_participants_connected' END, true),
                           '')::integer,
                    10000)
    INTO v_limit FROM accounts WHERE sid = p_account;
    IF v_limit IS NULL OR v_limit = 0 THEN
        RETURN true;
    END IF;
    IF p_what = 'rooms' THEN
        SELECT count(*) INTO v_live FROM (
            SELECT 1 FROM rooms WHERE account_sid = p_account AND status = 'in-progress'
            LIMIT v_limit) l;
    ELSE
        SELECT count(*) INTO v_live FROM (
            SELECT 1 FROM participants WHERE account_sid = p_account AND status = 'connected'
            LIMIT v_limit) l;
    END IF;
    RETURN v_live < v_limit;
END $$;
