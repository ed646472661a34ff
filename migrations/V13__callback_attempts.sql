-- Each delivery attempt's outcome, kept on its event (issue 25: the console's callback log shows
-- every attempt, not only the last). The settling statement appends one entry per attempt it
-- records: the attempt's number, when it ended, the receiver's HTTP status (if one answered) and
-- the error (if it failed). An event keeps its newest 20 (attempts are bounded by
-- ROOMD_CALLBACK_MAX_ATTEMPTS, but each replay adds one). Pruned with its event.

ALTER TABLE callback_events ADD COLUMN attempt_log jsonb NOT NULL DEFAULT '[]';

-- callback_settle of V8, with the attempt appended to the log in the same UPDATE.
CREATE OR REPLACE FUNCTION callback_settle(p_sids text[], p_attempts integer[], p_statuses text[],
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
            attempt_log = CASE WHEN jsonb_array_length(e.attempt_log) >= 20
                               THEN e.attempt_log - 0 ELSE e.attempt_log END
                          || jsonb_build_array(jsonb_build_object('attempt', o.attempts,
                               'at', now(), 'status', o.code, 'error', o.error)),
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

