-- Recordings (issue 23): one row per recorded track segment (Twilio's Recording, `RT`), which
-- is also the conversion job that turns the media node's stream file into Twilio's container.

-- What a media server said about a stream: its codec and its index in the SDP (the recorder
-- names its file by that index).
ALTER TABLE published_tracks ADD COLUMN media_codec text;
ALTER TABLE published_tracks ADD COLUMN media_mindex integer;

-- Twilio's track rules (recording and subscribe rules, normal form): a track is admitted when an
-- include rule matches it and no exclude rule does. A rule matches when each filter it has
-- does: `all`, `publisher` (identity or participant SID), `track` (name or track SID), `kind`.
CREATE FUNCTION track_rules_admit(rules jsonb, publisher_identity text, participant_sid text,
                                  track_name text, track_sid text, track_kind text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM jsonb_array_elements(rules) r
                   WHERE r->>'type' = 'include' AND (r->'all' IS NOT NULL OR (
                       (r->>'publisher' IS NULL OR r->>'publisher' IN (publisher_identity, participant_sid))
                       AND (r->>'track' IS NULL OR r->>'track' IN (track_name, track_sid))
                       AND (r->>'kind' IS NULL OR r->>'kind' = track_kind))))
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(rules) r
                   WHERE r->>'type' = 'exclude' AND (r->'all' IS NOT NULL OR (
                       (r->>'publisher' IS NULL OR r->>'publisher' IN (publisher_identity, participant_sid))
                       AND (r->>'track' IS NULL OR r->>'track' IN (track_name, track_sid))
                       AND (r->>'kind' IS NULL OR r->>'kind' = track_kind))))
$$;

-- A room's recording rules in force: as set, else include-all when it records participants on
-- connect, else none.
CREATE FUNCTION room_recording_rules(rules jsonb, on_connect boolean)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(rules, CASE WHEN on_connect THEN '[{"type": "include", "all": true}]'::jsonb
                                ELSE '[]'::jsonb END)
$$;

CREATE TABLE recordings (
    sid             text        PRIMARY KEY
                                CONSTRAINT recordings_sid_format CHECK (sid ~ '^RT[0-9a-f]{32}$'),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    room_sid        text        NOT NULL REFERENCES rooms (sid),
    participant_sid text        NOT NULL REFERENCES participants (sid),
    -- The published track (MT); it outlives the track row, as on Twilio.
    source_sid      text        NOT NULL,
    track_name      text        NOT NULL,
    kind            text        NOT NULL CONSTRAINT recordings_kind_valid CHECK (kind IN ('audio', 'video')),
    codec           text        NOT NULL CONSTRAINT recordings_codec_valid CHECK (codec IN ('VP8', 'H264', 'OPUS', 'PCMU')),
    media_mindex    integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'processing'
                                CONSTRAINT recordings_status_valid CHECK (status IN ('processing', 'completed', 'deleted', 'failed')),
    -- The segment, in real time (the media node's files are stamped in real time, whatever
    -- clock the account runs on): from its start to its end (NULL while it is being recorded).
    media_started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    media_ended_at  timestamptz,
    duration        integer,
    size            bigint,
    -- The node's stream file of the segment, as the node reported it (a name in the room's
    -- folder; NULL until learnt: the conversion then looks the file up by Janus's naming).
    media_file      text,
    -- The converted file, relative to the media directory (NULL until completed, and deleted).
    media_path      text,
    -- The conversion job: due from `not_before` once the segment ended; claimed by a process
    -- (`lease_owner`) until `lease_until`; given up after a few attempts.
    attempts        integer     NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT 'infinity',
    lease_owner     text,
    lease_until     timestamptz NOT NULL DEFAULT '-infinity',
    failure         text,
    date_created    timestamptz NOT NULL DEFAULT roomd_now(),
    date_updated    timestamptz NOT NULL DEFAULT roomd_now(),
    CONSTRAINT recordings_segment_ordered CHECK (media_ended_at IS NULL OR media_ended_at >= media_started_at)
);

-- One segment at a time per track.
CREATE UNIQUE INDEX recordings_open_segment ON recordings (source_sid) WHERE media_ended_at IS NULL;
-- The lists: an account's (newest first) and a room's.
CREATE INDEX recordings_account ON recordings (account_sid, date_created, sid);
CREATE INDEX recordings_room ON recordings (room_sid, date_created, sid);
-- Due conversions.
CREATE INDEX recordings_due ON recordings (not_before)
    WHERE status = 'processing' AND media_ended_at IS NOT NULL;

-- A track that goes (unpublished, its participant gone, its room ended, whatever path deleted
-- it) ends its open segment; the conversion is due a moment later, once the node closed the file.
CREATE FUNCTION recording_track_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recordings SET media_ended_at = clock_timestamp(),
                          not_before = clock_timestamp() + interval '2 seconds'
    WHERE source_sid = OLD.sid AND media_ended_at IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER published_tracks_recording_ends AFTER DELETE ON published_tracks FOR EACH ROW
    WHEN (OLD.media_mid IS NOT NULL)
    EXECUTE FUNCTION recording_track_gone();

CREATE OR REPLACE VIEW room_tracks AS
    SELECT t.sid, t.account_sid, t.room_sid, t.participant_sid, t.name, t.kind, t.enabled,
           t.date_created, t.date_updated, p.identity AS publisher_identity, t.media_mid,
           t.media_codec, t.media_mindex
    FROM published_tracks t JOIN participants p ON p.sid = t.participant_sid;

-- The recordings as the API shows them: with their room's status callback.
CREATE VIEW recordings_shown AS
    SELECT rec.*, r.status_callback, r.status_callback_method
    FROM recordings rec JOIN rooms r ON r.sid = rec.room_sid;

-- A segment that ended wakes the conversion workers.
CREATE FUNCTION recordings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('roomd_recordings', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER recordings_segment_ended AFTER UPDATE OF media_ended_at ON recordings
    FOR EACH STATEMENT EXECUTE FUNCTION recordings_notify();
