//! The user context's adapters: HTTP, the directory projection, password hashing, tokens, login
//! throttling.

pub mod directory;
pub mod http;
pub mod kakao;
pub mod master_key;
pub mod passwords;
pub mod personal_data;
pub mod revocations;
pub mod throttle;
pub mod tokens;
pub mod upgrade_log;
pub mod web_session;
