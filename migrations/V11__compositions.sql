-- Compositions (issue 24): Twilio's Compositions (`CJ`), each one file mixed from an ended room's
-- recordings, which is also the job that makes it; Composition Hooks (`HK`), which compose every
-- room of their account that ends with recordings; and the two per-account settings resources.

CREATE TABLE composition_hooks (
    sid             text        PRIMARY KEY
                                CONSTRAINT composition_hooks_sid_format CHECK (sid ~ '^HK[0-9a-f]{32}$'),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    friendly_name   text        NOT NULL
                                CONSTRAINT composition_hooks_friendly_name_length CHECK (char_length(friendly_name) BETWEEN 1 AND 100),
    enabled         boolean     NOT NULL DEFAULT true,
    video_layout    jsonb       NOT NULL DEFAULT '{}',
    audio_sources   text[]      NOT NULL DEFAULT '{}',
    audio_sources_excluded text[] NOT NULL DEFAULT '{}',
    resolution      text        NOT NULL DEFAULT '640x480',
    format          text        NOT NULL DEFAULT 'webm'
                                CONSTRAINT composition_hooks_format_valid CHECK (format IN ('mp4', 'webm')),
    trimmed         boolean     NOT NULL DEFAULT true,
    status_callback text,
    status_callback_method text NOT NULL DEFAULT 'POST'
                                CONSTRAINT composition_hooks_method_valid CHECK (status_callback_method IN ('GET', 'POST')),
    date_created    timestamptz NOT NULL DEFAULT roomd_now(),
    date_updated    timestamptz
);
-- "Must be unique within the account" (Twilio); compared as written.
CREATE UNIQUE INDEX composition_hooks_friendly_name ON composition_hooks (account_sid, friendly_name);
CREATE INDEX composition_hooks_account ON composition_hooks (account_sid, date_created, sid);

CREATE TABLE compositions (
    sid             text        PRIMARY KEY
                                CONSTRAINT compositions_sid_format CHECK (sid ~ '^CJ[0-9a-f]{32}$'),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    room_sid        text        NOT NULL REFERENCES rooms (sid),
    -- The hook that made it (none when requested); a hook that is deleted leaves its compositions.
    hook_sid        text,
    status          text        NOT NULL DEFAULT 'enqueued'
                                CONSTRAINT compositions_status_valid CHECK (status IN ('enqueued', 'processing', 'completed', 'deleted', 'failed')),
    video_layout    jsonb       NOT NULL DEFAULT '{}',
    audio_sources   text[]      NOT NULL DEFAULT '{}',
    audio_sources_excluded text[] NOT NULL DEFAULT '{}',
    resolution      text        NOT NULL,
    format          text        NOT NULL CONSTRAINT compositions_format_valid CHECK (format IN ('mp4', 'webm')),
    trimmed         boolean     NOT NULL,
    status_callback text,
    status_callback_method text NOT NULL DEFAULT 'POST'
                                CONSTRAINT compositions_method_valid CHECK (status_callback_method IN ('GET', 'POST')),
    duration        integer     NOT NULL DEFAULT 0,
    size            bigint      NOT NULL DEFAULT 0,
    bitrate         integer     NOT NULL DEFAULT 0,
    -- The composed file, relative to the media directory (NULL until completed, and deleted).
    media_path      text,
    -- The job: due from `not_before` once every recording of the room is settled; claimed by a
    -- process (`lease_owner`) until `lease_until`, which the process renews while it composes
    -- (a process that dies leaves it to the next claim a lease later); failed after a few claims.
    attempts        integer     NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz NOT NULL DEFAULT '-infinity',
    -- When the last `composition-progress` was written (they are spaced out).
    progress_at     timestamptz NOT NULL DEFAULT '-infinity',
    failure         text,
    date_created    timestamptz NOT NULL DEFAULT roomd_now(),
    date_completed  timestamptz,
    date_deleted    timestamptz
);
CREATE INDEX compositions_account ON compositions (account_sid, date_created, sid);
CREATE INDEX compositions_room ON compositions (room_sid);
-- Whether a file in the compositions folder is one's (the worker removes those that are not).
CREATE INDEX compositions_media_path ON compositions (media_path) WHERE media_path IS NOT NULL;
CREATE INDEX compositions_due ON compositions (not_before) WHERE status IN ('enqueued', 'processing');
-- An account's compositions not yet made (bounded per account at create).
CREATE INDEX compositions_pending ON compositions (account_sid) WHERE status IN ('enqueued', 'processing');
-- A hook composes a room once, whichever process sees it first.
CREATE UNIQUE INDEX compositions_hook_room ON compositions (hook_sid, room_sid) WHERE hook_sid IS NOT NULL;

-- Rooms that ended with recordings in an account with an enabled hook: the composition workers
-- turn each into one composition per enabled hook (and delete it) in one transaction.
CREATE TABLE rooms_to_compose (
    room_sid        text        PRIMARY KEY REFERENCES rooms (sid),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    date_created    timestamptz NOT NULL DEFAULT now()
);

-- Whatever ended the room (an update, the sweeper, a test clock, the media plane). Only a room
-- whose recording rules could have recorded anything can have recordings: the trigger's WHEN
-- leaves every other room (most of them) without a function call.
CREATE FUNCTION rooms_ended_compose() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM composition_hooks h WHERE h.account_sid = NEW.account_sid AND h.enabled)
       AND EXISTS (SELECT 1 FROM recordings r WHERE r.room_sid = NEW.sid) THEN
        INSERT INTO rooms_to_compose (room_sid, account_sid) VALUES (NEW.sid, NEW.account_sid)
            ON CONFLICT DO NOTHING;
        PERFORM pg_notify('roomd_compositions', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER rooms_ended_compose AFTER UPDATE OF status ON rooms FOR EACH ROW
    WHEN (OLD.status = 'in-progress' AND NEW.status <> 'in-progress'
          AND (NEW.record_participants_on_connect OR NEW.recording_rules IS NOT NULL))
    EXECUTE FUNCTION rooms_ended_compose();

-- A composition made, and a room's last recording settled, wake the composition workers.
CREATE FUNCTION compositions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('roomd_compositions', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER compositions_made AFTER INSERT ON compositions
    FOR EACH STATEMENT EXECUTE FUNCTION compositions_notify();
CREATE TRIGGER recordings_settled AFTER UPDATE OF status ON recordings
    FOR EACH STATEMENT EXECUTE FUNCTION compositions_notify();

-- RecordingSettings and CompositionSettings (`/v1/{Recording,Composition}Settings/Default`): one
-- row per account and kind, written by their POST. roomd keeps media on its own disk: the
-- external-storage and encryption flags are stored false (a POST asking for them is refused).
CREATE TABLE media_settings (
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    kind            text        NOT NULL CONSTRAINT media_settings_kind_valid CHECK (kind IN ('recording', 'composition')),
    friendly_name   text        NOT NULL,
    aws_credentials_sid text,
    encryption_key_sid text,
    aws_s3_url      text,
    aws_storage_enabled boolean NOT NULL DEFAULT false,
    encryption_enabled boolean  NOT NULL DEFAULT false,
    date_updated    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_sid, kind)
);
