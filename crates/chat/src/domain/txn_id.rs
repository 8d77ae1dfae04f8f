use super::Invalid;

/// The sender's name for one send (1 to 64 characters, no control characters): a retry with
/// the same one posts nothing new. It is the store's idempotency key of the send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
