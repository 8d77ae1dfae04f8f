//! The user context's ubiquitous language: accounts (the `User` aggregate), the values they are
//! made of, and the claims that keep emails and nicknames unique.

pub mod claim;
pub mod email;
pub mod nickname;
pub mod password;
pub mod profile;
pub mod user;

pub use claim::{Claim, ClaimCommand, ClaimError, ClaimEvent, ClaimKind};
pub use email::Email;
pub use nickname::Nickname;
pub use password::Password;
pub use profile::{AvatarUrl, Bio};
pub use user::{Role, User, UserCommand, UserError, UserEvent};

/// A value that did not parse, with why (the HTTP layer adds the field name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
