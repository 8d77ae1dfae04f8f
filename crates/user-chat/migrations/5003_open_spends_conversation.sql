-- The conversation each spend belongs to (its `MessageSpent` event's correlation id, and the
-- event itself): a refund by the send recovery continues it, so the message's trail shows it.
-- Empty for spends recorded before.
ALTER TABLE uc_open_spends ADD COLUMN correlation_id TEXT;
ALTER TABLE uc_open_spends ADD COLUMN spent_event_id TEXT;
