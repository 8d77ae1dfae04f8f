-- One key per user for the personal data inside their events (crypto-shredding): erasing a user
-- deletes the row, after which their personal data in the event store cannot be read by anyone.
CREATE TABLE personal_data_keys (
    subject    TEXT PRIMARY KEY,
    key        TEXT NOT NULL,
    created_at TEXT NOT NULL
);
