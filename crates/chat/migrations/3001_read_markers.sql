-- How far each member has read each room (a seq). Plain query-side state, not events: markers
-- move on every read and are nobody's history. Versions 3000 and up belong to the chat context.
CREATE TABLE chat_read_markers (
    room_id TEXT   NOT NULL,
    user_id TEXT   NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
