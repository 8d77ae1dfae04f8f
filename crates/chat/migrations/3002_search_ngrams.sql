-- Search moved from word indexes (FTS5's default tokenizer, tsvector) to n-grams (FTS5's trigram
-- tokenizer, pg_trgm), so a word is found inside longer ones. A `chat.search` generation built
-- before has the old tables: a row here makes the chat context build the projection again,
-- beside it, when it starts (searches answer 503 meanwhile), and the row goes when the new
-- generation is live. A new database has no generation yet and needs nothing.
CREATE TABLE chat_search_rebuilds (
    reason TEXT PRIMARY KEY
);

INSERT INTO chat_search_rebuilds (reason)
SELECT 'n-gram index' FROM projections
WHERE name = 'chat.search' AND live_generation IS NOT NULL;
