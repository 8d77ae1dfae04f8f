-- The query database's own bookkeeping. Portable SQL: the same file runs on SQLite and PostgreSQL.

-- Each projection's tables exist in generations; a view with the plain name shows the live one.
CREATE TABLE projections (
    name              TEXT PRIMARY KEY,
    live_generation   BIGINT,
    latest_generation BIGINT NOT NULL
);

-- Where each generation of each projection has read the global log up to.
CREATE TABLE projection_checkpoints (
    name       TEXT   NOT NULL,
    generation BIGINT NOT NULL,
    commit_id  BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (name, generation)
);

-- Events each bus consumer has handled, written in the same transaction as the handler's effect.
CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
