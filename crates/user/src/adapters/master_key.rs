//! The operator's master key: the keys the user context keeps (token signing keys, personal-data
//! keys) are stored encrypted under it (ChaCha20-Poly1305, each with a label of what it is as
//! associated data, so a stored key cannot be moved to another row), never in clear. A stolen
//! database or backup without the master key opens nothing.
//!
//! Stored form: `mk1:` + base64(nonce ‖ ciphertext). Keys stored in clear by earlier versions
//! (plain base64) are still read, and [`Tokens::open`](super::tokens::Tokens::open) and
//! [`PersonalDataKeys::seal_stored`](super::personal_data::PersonalDataKeys::seal_stored)
//! encrypt them in place at start.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use msa_kernel::StoreError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "mk1:";
/// Bytes of a master key.
pub const MASTER_KEY_BYTES: usize = 32;

pub struct MasterKey {
    /// `None`: no master key was given (a PostgreSQL deployment whose operator set none): keys
    /// are stored in clear, as before, and the start says so.
    key: Option<LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string().into())
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != MASTER_KEY_BYTES {
            return Err(format!(
                "a master key is {MASTER_KEY_BYTES} bytes (base64: 44 characters), not {}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| "not a key")?;
        Ok(Self {
            key: Some(LessSafeKey::new(key)),
            random: SystemRandom::new(),
        })
    }

    /// No master key: keys are stored in clear (and read whether clear or, failing, say why).
    pub fn none() -> Self {
        Self {
            key: None,
            random: SystemRandom::new(),
        }
    }

    /// A master key written as base64 (what `generate` makes; whitespace around it ignored).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "a master key is base64 (44 characters)".to_owned())?;
        Self::from_bytes(&bytes)
    }

    /// A new random master key, as base64.
    pub fn generate() -> String {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's randomness");
        STANDARD.encode(bytes)
    }

    /// `secret` encrypted for storage; `label` says what it is (checked when opened).
    pub fn seal(&self, label: &str, secret: &[u8]) -> Result<String, StoreError> {
        let Some(key) = &self.key else {
            return Ok(STANDARD.encode(secret));
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| store_error("no randomness"))?;
        let mut sealed = secret.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(label.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| store_error("cannot encrypt a key"))?;
        let mut stored = nonce.to_vec();
        stored.extend(sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(stored)))
    }

    /// The secret in `stored` (encrypted by [`seal`](Self::seal) with `label`, or an earlier
    /// version's plain base64).
    pub fn open(&self, label: &str, stored: &str) -> Result<Vec<u8>, StoreError> {
        let Some(sealed) = stored.strip_prefix(PREFIX) else {
            return STANDARD.decode(stored).map_err(store_error);
        };
        let Some(key) = &self.key else {
            return Err(store_error(format!(
                "the stored key {label} is encrypted under a master key: give it \
                 (MSA_MASTER_KEY_FILE)"
            )));
        };
        let bytes = STANDARD.decode(sealed).map_err(store_error)?;
        if bytes.len() < NONCE_LEN {
            return Err(store_error("a stored key is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| store_error("nonce"))?;
        let mut opened = ciphertext.to_vec();
        let secret = key
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut opened)
            .map_err(|_| {
                store_error(format!(
                    "the master key does not open the stored key {label}: is it the master key \
                     these keys were stored under (MSA_MASTER_KEY_FILE)?"
                ))
            })?;
        Ok(secret.to_vec())
    }

    /// Whether `stored` is in clear (an earlier version's plain base64).
    pub fn is_clear(stored: &str) -> bool {
        !stored.starts_with(PREFIX)
    }

    /// Whether keys are encrypted (a master key was given or generated).
    pub fn encrypts(&self) -> bool {
        self.key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key_and_label() {
        let master = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let sealed = master.seal("signing_key:k1", b"secret bytes").unwrap();
        assert!(!sealed.contains(&STANDARD.encode(b"secret bytes")));
        assert_eq!(
            master.open("signing_key:k1", &sealed).unwrap(),
            b"secret bytes"
        );
        assert!(master.open("signing_key:k2", &sealed).is_err());
        let other = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        assert!(other.open("signing_key:k1", &sealed).is_err());
        // A key stored in clear by an earlier version still reads.
        let clear = STANDARD.encode(b"old");
        assert!(MasterKey::is_clear(&clear));
        assert_eq!(master.open("signing_key:k0", &clear).unwrap(), b"old");
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
