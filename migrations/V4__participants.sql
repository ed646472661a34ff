-- Participants: one row per connection to a room, in every status. Rows are never deleted.
CREATE TABLE participants (
    sid          text        PRIMARY KEY
                             CONSTRAINT participants_sid_format CHECK (sid ~ '^PA[0-9a-f]{32}$'),
    account_sid  text        NOT NULL REFERENCES accounts (sid),
    room_sid     text        NOT NULL REFERENCES rooms (sid),
    identity     text        NOT NULL
                             CONSTRAINT participants_identity_length CHECK (char_length(identity) BETWEEN 1 AND 128),
    status       text        NOT NULL
                             CONSTRAINT participants_status_valid CHECK (status IN ('connected', 'disconnected')),
    date_created timestamptz NOT NULL DEFAULT now(),
    date_updated timestamptz NOT NULL DEFAULT now(),
    start_time   timestamptz NOT NULL DEFAULT now(),
    end_time     timestamptz,
    duration     integer,
    -- Why the participant left: 'left' (its own token), 'kicked' (REST), 'duplicate_identity'
    -- (a newer join with its identity), 'max_duration' (the sweeper), 'room_ended'.
    end_reason   text        CONSTRAINT participants_end_reason_valid
                             CHECK (end_reason IN ('left', 'kicked', 'duplicate_identity', 'max_duration', 'room_ended')),
    -- start_time + the room's max_participant_duration while connected; NULL once disconnected.
    deadline     timestamptz,
    CONSTRAINT participants_end_matches_status CHECK ((status = 'connected') = (end_time IS NULL))
);

-- Twilio: one connected participant per identity in a room (a newer join takes the identity
-- over; the join disconnects the older one first, in the same transaction).
CREATE UNIQUE INDEX participants_connected_identity
    ON participants (room_sid, identity) WHERE status = 'connected';

-- Listing a room's participants by status, oldest first (join order).
CREATE INDEX participants_room_status_created
    ON participants (room_sid, status, date_created, sid);

-- The sweeper's work queue for MaxParticipantDuration.
CREATE INDEX participants_deadline_connected
    ON participants (deadline) WHERE status = 'connected';

-- How many participants are connected: maintained under the room row's lock by every join and
-- disconnect, and bounded here, so max_participants holds across replicas whatever the code does.
ALTER TABLE rooms ADD COLUMN participants_connected integer NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD CONSTRAINT rooms_participants_within_max
    CHECK (participants_connected BETWEEN 0 AND max_participants);
ALTER TABLE rooms ADD CONSTRAINT rooms_ended_rooms_are_empty
    CHECK (status = 'in-progress' OR participants_connected = 0);
-- A deadline always says what passing it means (the sweeper records it as the end reason).
ALTER TABLE rooms ADD CONSTRAINT rooms_deadline_has_reason
    CHECK ((deadline IS NULL) = (deadline_reason IS NULL));
