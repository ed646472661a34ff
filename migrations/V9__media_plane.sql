-- The media plane (issue 22): the Janus nodes roomd drives, the node each room lives on, the
-- Janus sessions of each participant, and what roomd still has to tell a node.

-- A Janus node. An embedded one (a roomd process's own Janus) is registered by that process at
-- start (`owner` is the process) and removed at its exit; an external one (ROOMD_JANUS_NODES) is
-- upserted by every process at start. Its two secrets are sealed under the master key with the
-- node's name as associated data.
CREATE TABLE media_nodes (
    name            text        PRIMARY KEY
                                CONSTRAINT media_nodes_name_format CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    admin_url       text        NOT NULL,
    client_url      text        NOT NULL,
    admin_secret    bytea       NOT NULL,
    room_admin_key  bytea       NOT NULL,
    owner           text,
    -- false after the node stopped answering: its rooms were placed anew, nothing goes there.
    up              boolean     NOT NULL DEFAULT true,
    -- One process at a time converges a node: it holds this lease while it does.
    reconcile_until timestamptz NOT NULL DEFAULT '-infinity',
    date_created    timestamptz NOT NULL DEFAULT now(),
    date_updated    timestamptz NOT NULL DEFAULT now()
);

-- The node a room's media lives on, chosen when it first needs media (NULL: none yet, or its
-- node went away and the next join places it anew).
ALTER TABLE rooms ADD COLUMN media_node text REFERENCES media_nodes (name) ON DELETE SET NULL;
CREATE INDEX rooms_media_node_in_progress ON rooms (media_node) WHERE status = 'in-progress';

-- A participant admitted to a node's room (its token added there), when its publisher joined
-- there, and by when it must have (ROOMD_MEDIA_CONNECT_TIMEOUT; NULL: no such deadline).
ALTER TABLE participants ADD COLUMN media_node text REFERENCES media_nodes (name) ON DELETE SET NULL;
ALTER TABLE participants ADD COLUMN media_joined_at timestamptz;
ALTER TABLE participants ADD COLUMN media_deadline timestamptz;
CREATE INDEX participants_media_deadline ON participants (media_deadline)
    WHERE status = 'connected' AND media_deadline IS NOT NULL;
CREATE INDEX participants_media_node_connected ON participants (media_node)
    WHERE status = 'connected' AND media_node IS NOT NULL;
-- 'media_lost': its media session ended without a goodbye (hang-up, session timeout, its node
-- restarted or stopped answering, or it never joined in time).
ALTER TABLE participants DROP CONSTRAINT participants_end_reason_valid;
ALTER TABLE participants ADD CONSTRAINT participants_end_reason_valid
    CHECK (end_reason IN ('left', 'kicked', 'duplicate_identity', 'max_duration', 'room_ended', 'media_lost'));

-- A track the media server reports carries its stream's mid (one row per participant and mid);
-- the publish extension's tracks have none.
ALTER TABLE published_tracks ADD COLUMN media_mid text;
CREATE UNIQUE INDEX published_tracks_participant_mid ON published_tracks (participant_sid, media_mid)
    WHERE media_mid IS NOT NULL;

-- The Janus handles of each participant (publisher and subscribers), from the node's `attached`
-- events (whose token names the participant): what a kick or a room's end hangs up.
CREATE TABLE media_handles (
    node            text        NOT NULL,
    handle_id       bigint      NOT NULL,
    session_id      bigint      NOT NULL,
    participant_sid text        NOT NULL,
    -- The handle its publisher joined the room with (a hang-up there ends its media).
    publisher       boolean     NOT NULL DEFAULT false,
    date_created    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, handle_id)
);
CREATE INDEX media_handles_participant ON media_handles (participant_sid);
CREATE INDEX media_handles_session ON media_handles (node, session_id);

-- What roomd still has to do on a node: end a participant's media (kick, revoke its token, hang
-- up and close its sessions) or a room's (destroy it, close every session in it). Written by the
-- triggers below in the transaction that disconnects the participant or ends the room, whatever
-- path did it (REST, a join taking an identity over, the sweeper, an event); the media worker
-- claims them with a lease, applies them, and deletes them.
CREATE TABLE media_commands (
    id              bigserial   PRIMARY KEY,
    node            text        NOT NULL,
    room_sid        text        NOT NULL,
    participant_sid text,
    attempts        integer     NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_commands_due ON media_commands (not_before);

CREATE FUNCTION media_participant_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO media_commands (node, room_sid, participant_sid)
    VALUES (NEW.media_node, NEW.room_sid, NEW.sid);
    PERFORM pg_notify('roomd_media', NEW.media_node);
    RETURN NULL;
END
$$;
CREATE TRIGGER participants_media_gone AFTER UPDATE OF status ON participants FOR EACH ROW
    WHEN (OLD.status = 'connected' AND NEW.status = 'disconnected' AND NEW.media_node IS NOT NULL)
    EXECUTE FUNCTION media_participant_gone();

CREATE FUNCTION media_room_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO media_commands (node, room_sid) VALUES (NEW.media_node, NEW.sid);
    PERFORM pg_notify('roomd_media', NEW.media_node);
    RETURN NULL;
END
$$;
CREATE TRIGGER rooms_media_ended AFTER UPDATE OF status ON rooms FOR EACH ROW
    WHEN (OLD.status = 'in-progress' AND NEW.status <> 'in-progress' AND NEW.media_node IS NOT NULL)
    EXECUTE FUNCTION media_room_ended();

-- Subscribed tracks read the room's tracks through this view: it carries the mid too.
CREATE OR REPLACE VIEW room_tracks AS
    SELECT t.sid, t.account_sid, t.room_sid, t.participant_sid, t.name, t.kind, t.enabled,
           t.date_created, t.date_updated, p.identity AS publisher_identity, t.media_mid
    FROM published_tracks t JOIN participants p ON p.sid = t.participant_sid;
