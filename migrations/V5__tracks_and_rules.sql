-- Tracks participants publish, as a signaling or media server reports them. A row exists while
-- the track is published: unpublishing, its participant's disconnection and its room's end
-- delete it (Twilio's PublishedTracks lists what is published now).
CREATE TABLE published_tracks (
    sid             text        PRIMARY KEY
                                CONSTRAINT published_tracks_sid_format CHECK (sid ~ '^MT[0-9a-f]{32}$'),
    account_sid     text        NOT NULL REFERENCES accounts (sid),
    room_sid        text        NOT NULL REFERENCES rooms (sid),
    participant_sid text        NOT NULL REFERENCES participants (sid),
    name            text        NOT NULL
                                CONSTRAINT published_tracks_name_length CHECK (char_length(name) BETWEEN 1 AND 128),
    kind            text        NOT NULL
                                CONSTRAINT published_tracks_kind_valid CHECK (kind IN ('audio', 'video', 'data')),
    enabled         boolean     NOT NULL DEFAULT true,
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now()
);

-- Twilio: a track name is unique among its participant's published tracks.
CREATE UNIQUE INDEX published_tracks_participant_name ON published_tracks (participant_sid, name);
-- A room's tracks (subscribed tracks read every other participant's), oldest first.
CREATE INDEX published_tracks_room ON published_tracks (room_sid, date_created, sid);

-- How many tracks the room's participants publish: maintained under the room row's lock, and
-- bounded here by max_concurrent_published_tracks (0: unconstrained, as on Twilio).
ALTER TABLE rooms ADD COLUMN tracks_published integer NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD CONSTRAINT rooms_tracks_within_max
    CHECK (tracks_published >= 0
           AND (max_concurrent_published_tracks = 0 OR tracks_published <= max_concurrent_published_tracks));
ALTER TABLE rooms ADD CONSTRAINT rooms_ended_rooms_publish_nothing
    CHECK (status = 'in-progress' OR tracks_published = 0);

-- A participant's subscribe rules, as set (validated, unused keys left out); NULL means Twilio's
-- default, include everything. Subscribed tracks are computed from them when read.
ALTER TABLE participants ADD COLUMN subscribe_rules jsonb;
ALTER TABLE participants ADD COLUMN subscribe_rules_updated timestamptz;
-- When a room's recording rules were last replaced (NULL: as created).
ALTER TABLE rooms ADD COLUMN recording_rules_updated timestamptz;

-- A room's published tracks with their publisher's identity, which subscribe rules may name.
CREATE VIEW room_tracks AS
    SELECT t.sid, t.account_sid, t.room_sid, t.participant_sid, t.name, t.kind, t.enabled,
           t.date_created, t.date_updated, p.identity AS publisher_identity
    FROM published_tracks t JOIN participants p ON p.sid = t.participant_sid;
