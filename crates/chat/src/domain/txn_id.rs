use serde::{Deserialize, Serialize};

use super::Invalid;

/// The sender's name for one send (1 to 64 characters, no control characters): a retry with
/// the same one posts nothing new. It is the store's idempotency key of the send.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TxnId(String);

pub const MAX_TXN_ID_BYTES: usize = 64;

impl TxnId {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        if input.is_empty() || input.len() > MAX_TXN_ID_BYTES || input.chars().any(char::is_control)
        {
            return Err(Invalid(format!(
                "1 to {MAX_TXN_ID_BYTES} characters, no control characters"
            )));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TxnId {
    type Error = Invalid;

    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<TxnId> for String {
    fn from(txn_id: TxnId) -> Self {
        txn_id.0
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TxnId;

    #[test]
    fn a_txn_id_is_1_to_64_bytes_without_controls() {
        assert!(TxnId::parse("send-1").is_ok());
        assert!(TxnId::parse(&"a".repeat(64)).is_ok());
        for refused in [String::new(), "a".repeat(65), "a\nb".into()] {
            assert!(TxnId::parse(&refused).is_err(), "{refused:?}");
        }
    }
}
