//! Signed webhook deliveries (the sandbox provider's): HMAC-SHA256 over `<timestamp>.<body>`
//! with a shared secret, sent as `Sandbox-Timestamp: <unix seconds>` and
//! `Sandbox-Signature: v1=<hex>`. A delivery older or newer than the tolerance (5 minutes) is
//! refused, so a captured delivery cannot be replayed later.

use chrono::{DateTime, Utc};
use ring::hmac;

pub const TIMESTAMP_HEADER: &str = "Sandbox-Timestamp";
pub const SIGNATURE_HEADER: &str = "Sandbox-Signature";
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("the {TIMESTAMP_HEADER} header is not a unix time in seconds")]
    BadTimestamp,
    #[error("the delivery's timestamp is more than 5 minutes from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

pub struct WebhookSecret(hmac::Key);

impl WebhookSecret {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The `Sandbox-Signature` value for a delivery (what a sender computes).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &signed_bytes(timestamp, body));
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("v1={hex}")
    }

    /// Checks a delivery's headers against its body at `now`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if (now.timestamp() - timestamp).abs() > TOLERANCE_SECS {
            return Err(SignatureError::Stale);
        }
        let tag = signature
            .split(',')
            .find_map(|part| part.trim().strip_prefix("v1="))
            .and_then(decode_hex)
            .ok_or(SignatureError::Mismatch)?;
        hmac::verify(&self.0, &signed_bytes(timestamp, body), &tag)
            .map_err(|_| SignatureError::Mismatch)
    }
}

fn signed_bytes(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{timestamp}.").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_delivery_verifies_and_any_change_does_not() {
        let secret = WebhookSecret::new(b"whsec");
        let now = Utc::now();
        let body = br#"{"status":"DONE"}"#;
        let signature = secret.sign(now.timestamp(), body);
        let ts = now.timestamp().to_string();
        assert_eq!(
            secret.verify(Some(&ts), Some(&signature), body, now),
            Ok(())
        );
        assert_eq!(
            secret.verify(
                Some(&ts),
                Some(&signature),
                br#"{"status":"CANCELED"}"#,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            WebhookSecret::new(b"other").verify(Some(&ts), Some(&signature), body, now),
            Err(SignatureError::Mismatch)
        );
        let later = now + chrono::Duration::seconds(TOLERANCE_SECS + 1);
        assert_eq!(
            secret.verify(Some(&ts), Some(&signature), body, later),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            secret.verify(None, Some(&signature), body, now),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
    }
}
