//! Password hashing with argon2id (the `argon2` crate, RustCrypto).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

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
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
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
        Ok(Self { argon2, decoy })
    }

    pub async fn hash(&self, password: &str) -> String {
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
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
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_owned();
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        known && matches
    }
}
