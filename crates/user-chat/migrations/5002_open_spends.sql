-- Message credits spent whose send user-chat has not seen finished (posted, or refunded), kept
-- by the `user-chat.open-spends` consumer from the payment context's wallet events. A to-do list
-- of the send recovery, not a source of truth: empty it with its checkpoint and the events fill
-- it again; the recovery asks chat's store what became of every send before it acts.
CREATE TABLE uc_open_spends (
    user_id TEXT NOT NULL,
    spend_key TEXT NOT NULL,
    room_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    -- When the credit was spent (the event's time), in milliseconds since 1970.
    spent_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, spend_key)
);
CREATE INDEX uc_open_spends_by_time ON uc_open_spends (spent_at, user_id, spend_key);
