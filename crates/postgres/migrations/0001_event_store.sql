-- The event store of one bounded context; the events table is also the outbox.
--
-- Gap safety: identity values are taken when a row is inserted but become visible when its
-- transaction commits, so they commit out of order. Every row therefore records the id of the
-- transaction that wrote it, and the global log is ordered by (transaction_id, global_position)
-- and read only below the oldest transaction still running (pg_snapshot_xmin): a transaction that
-- commits later always has an id at or above that horizon, so no reader can pass it.
CREATE TABLE events (
    global_position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  XID8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        UUID        NOT NULL,
    stream_id       TEXT        NOT NULL,
    version         BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    payload         JSONB       NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    correlation_id  UUID        NOT NULL,
    causation_id    UUID,
    actor           TEXT,
    traceparent     TEXT,
    CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);

CREATE INDEX events_log_order ON events (transaction_id, global_position);

CREATE TABLE snapshots (
    stream_id     TEXT PRIMARY KEY,
    version       BIGINT  NOT NULL,
    state_version INTEGER NOT NULL,
    state         JSONB   NOT NULL
);

-- Client-supplied command keys and the first result of their command, written in the same
-- transaction as the command's events.
CREATE TABLE idempotency_keys (
    scope       TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    result      JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);
