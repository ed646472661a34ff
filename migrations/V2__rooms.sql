-- Rooms, one row each, in every status. Rows are never deleted.
CREATE TABLE rooms (
    sid                             text        PRIMARY KEY
                                                CONSTRAINT rooms_sid_format CHECK (sid ~ '^RM[0-9a-f]{32}$'),
    account_sid                     text        NOT NULL REFERENCES accounts (sid),
    status                          text        NOT NULL
                                                CONSTRAINT rooms_status_valid CHECK (status IN ('in-progress', 'completed', 'failed')),
    type                            text        NOT NULL
                                                CONSTRAINT rooms_type_valid CHECK (type IN ('group', 'group-small', 'peer-to-peer', 'go')),
    unique_name                     text        NOT NULL
                                                CONSTRAINT rooms_unique_name_length CHECK (char_length(unique_name) BETWEEN 1 AND 128),
    status_callback                 text,
    status_callback_method          text        NOT NULL CHECK (status_callback_method IN ('GET', 'POST')),
    max_participants                integer     NOT NULL CHECK (max_participants BETWEEN 1 AND 100),
    max_participant_duration        integer     NOT NULL CHECK (max_participant_duration BETWEEN 600 AND 86400),
    max_concurrent_published_tracks integer     NOT NULL,
    record_participants_on_connect  boolean     NOT NULL,
    video_codecs                    text[]      NOT NULL,
    media_region                    text        NOT NULL,
    audio_only                      boolean     NOT NULL,
    empty_room_timeout              integer     NOT NULL CHECK (empty_room_timeout BETWEEN 1 AND 60),
    unused_room_timeout             integer     NOT NULL CHECK (unused_room_timeout BETWEEN 1 AND 60),
    large_room                      boolean     NOT NULL,
    recording_rules                 jsonb,
    date_created                    timestamptz NOT NULL DEFAULT now(),
    date_updated                    timestamptz NOT NULL DEFAULT now(),
    end_time                        timestamptz,
    duration                        integer,
    -- Why the room ended: 'rest' (Status=completed), 'unused_timeout', 'empty_timeout'.
    end_reason                      text        CHECK (end_reason IN ('rest', 'unused_timeout', 'empty_timeout')),
    -- The next moment the sweeper must act on this in-progress room. Until a participant joins it
    -- is date_created + unused_room_timeout; once participants come and go it becomes
    -- last-left + empty_room_timeout (NULL while someone is connected). NULL once ended.
    deadline                        timestamptz,
    -- What passing the deadline means, and so the end_reason the sweeper records.
    deadline_reason                 text        CHECK (deadline_reason IN ('unused_timeout', 'empty_timeout')),
    CONSTRAINT rooms_end_matches_status CHECK ((status = 'in-progress') = (end_time IS NULL))
);

-- Twilio: a unique_name is unique among an account's in-progress rooms. A violation of this index
-- (by name) is answered with 53113 "Room exists"; it is never checked before inserting.
CREATE UNIQUE INDEX rooms_in_progress_unique_name
    ON rooms (account_sid, unique_name) WHERE status = 'in-progress';

-- Listing, newest first, per account. Every list filters on status (its default is
-- in-progress), so status leads the ordering columns and each status's rooms are contiguous.
CREATE INDEX rooms_account_status_created
    ON rooms (account_sid, status, date_created DESC, sid DESC);

-- The sweeper's work queue: only rooms that can still time out.
CREATE INDEX rooms_deadline_in_progress
    ON rooms (deadline) WHERE status = 'in-progress';
