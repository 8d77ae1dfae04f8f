-- An operator's trail (`msa trail`) finds a conversation's events by their correlation id.
-- On a large log this holds appends while it builds (once, at the upgrade); to avoid that, build
-- it beforehand with `CREATE INDEX CONCURRENTLY IF NOT EXISTS events_correlation ...` by hand.
CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id);
