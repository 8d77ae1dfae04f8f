-- The user context's query side beyond projections: token signing keys and refresh tokens.
-- (Versions 2000 and up: the shared query-side migrations use 1000-1999.)

-- Ed25519 keys that sign access tokens; the newest signs, all verify (so a rotation does not
-- invalidate tokens in flight). PKCS#8, base64.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Refresh tokens, stored as SHA-256 digests. Each login starts a family; a refresh uses its token
-- (used_at) and issues the next of the family. Presenting a used token again means it leaked:
-- the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    family_id  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    issued_at  TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
