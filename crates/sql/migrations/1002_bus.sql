-- Singleton jobs (one active relay per context): a holder keeps its lease by renewing it before
-- expires_at (Unix milliseconds); anyone may take an expired one.
CREATE TABLE leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Events a consumer gave up on, for the in-process bus (Kafka keeps them on <topic>.dlq). A letter
-- is settled once its event is in the consumer's inbox (a replay handled it).
CREATE TABLE dead_letters (
    id          TEXT   PRIMARY KEY,
    consumer    TEXT   NOT NULL,
    topic       TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    event_type  TEXT   NOT NULL,
    stream_id   TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    error       TEXT   NOT NULL,
    attempts    BIGINT NOT NULL,
    dead_at     TEXT   NOT NULL,
    event       TEXT   NOT NULL
);
CREATE INDEX dead_letters_by_topic ON dead_letters (topic, id);
