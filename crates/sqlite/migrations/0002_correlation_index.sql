-- An operator's trail (`msa trail`) finds a conversation's events by their correlation id.
CREATE INDEX events_correlation ON events (correlation_id);
