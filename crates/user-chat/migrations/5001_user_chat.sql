-- user-chat's read models (versions 5000 and up), kept by its consumers from other contexts'
-- events; none of it is a source of truth: empty the tables and the consumers' checkpoints and
-- the events fill them again.
CREATE TABLE uc_profiles (
    user_id TEXT PRIMARY KEY,
    nickname TEXT NOT NULL,
    avatar_url TEXT
);

CREATE TABLE uc_rooms (
    room_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL
);

CREATE TABLE uc_members (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX uc_members_by_user ON uc_members (user_id);
