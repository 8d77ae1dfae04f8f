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

pub use msa_kernel::invalid::Invalid;
