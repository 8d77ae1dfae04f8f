-- Pending third-party logins (Kakao): the `state` handed to the provider, single use, short-lived.
-- link_user is set when a logged-in user links the provider account to theirs.
CREATE TABLE login_states (
    state      TEXT   PRIMARY KEY,
    link_user  TEXT,
    expires_at BIGINT NOT NULL
);
