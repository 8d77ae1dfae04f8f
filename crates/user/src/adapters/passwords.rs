//! Password hashing with argon2id (the `argon2` crate, RustCrypto).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;

use crate::application::ports::PasswordHasher;

/// argon2id cost. The default is OWASP's recommendation (19 MiB, 2 iterations, 1 lane); tests
/// lower it by configuration.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
        }
    }
}

/// Hashes and verifies passwords off the async threads (hashing is deliberately slow).
///
/// At most one hash per CPU runs at a time. Hashing is CPU-bound, so more at once would not finish
/// sooner; and each takes the full memory cost (19 MiB by default): a burst of sign-ups or logins
/// would otherwise allocate tens of them at once, memory the allocator keeps afterwards (the
/// server's resident size grew by ~700 MB per 20 concurrent sign-ups and logins).
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    /// The hash a login with an unknown email is checked against, so it costs the same time as
    /// one with a wrong password.
    decoy: String,
}

impl Passwords {
    pub fn new(cost: HashCost) -> Result<Self, argon2::Error> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = argon2
            .hash_password(
                b"no account has this password",
                &SaltString::generate(&mut OsRng),
            )
            .map_err(|_| argon2::Error::AlgorithmInvalid)?
            .to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            argon2,
            decoy,
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(cpus)),
        })
    }
}

#[async_trait]
impl PasswordHasher for Passwords {
    async fn hash(&self, password: &str) -> String {
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
        let _turn = self
            .turns
            .acquire()
            .await
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .expect("argon2 hashes any password within the length limit")
                .to_string()
        })
        .await
        .expect("the hashing task does not panic")
    }

    /// Whether `password` matches `hash`; with no hash (unknown account) it checks the decoy and
    /// answers false, taking the same time.
    async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_owned();
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
        let _turn = self
            .turns
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}
