-- One-time upgrades of stored state that ran (by name), so they run once per database.
CREATE TABLE upgrades (
    name   TEXT PRIMARY KEY,
    ran_at TEXT NOT NULL
);
