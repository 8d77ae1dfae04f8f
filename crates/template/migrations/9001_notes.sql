-- The notes context's own query-side tables (versions 9000 and up belong to it). Its read
-- model's tables are the projection's (`notes.list`, created and rebuilt by the runner); this
-- migration only marks the range, as a copied context's first real migration would.
CREATE TABLE notes_upgrades (
    name   TEXT PRIMARY KEY,
    ran_at TEXT NOT NULL
);
