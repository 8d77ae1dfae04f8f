-- The sandbox payment provider's own records: a stand-in for a provider's database, kept in the
-- payment context's query database so the sandbox answers look-ups after a restart and
-- `msa payments reconcile` can compare against it.
CREATE TABLE IF NOT EXISTS sandbox_payments (
    payment_key TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    refunded BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    approved_at TEXT
);

CREATE TABLE IF NOT EXISTS sandbox_cancels (
    idempotency_key TEXT PRIMARY KEY,
    payment_key TEXT NOT NULL,
    amount BIGINT NOT NULL
);
