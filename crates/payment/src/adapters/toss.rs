//! Toss Payments (https://docs.tosspayments.com/reference), over its REST API v1:
//!
//! - `POST /v1/payments/confirm` `{paymentKey, orderId, amount}`: approves a payment;
//! - `POST /v1/payments/{paymentKey}/cancel` `{cancelReason, cancelAmount}`: a (partial) refund;
//! - `GET /v1/payments/{paymentKey}`: the payment as Toss has it.
//!
//! Every call authenticates with HTTP Basic, the secret key as user name and an empty password.
//! POSTs carry an `Idempotency-Key` (Toss keeps them 15 days), so a retried confirm or cancel
//! takes effect once. Answers are the Payment object (`status`, `totalAmount`, `balanceAmount`,
//! `approvedAt`...) or an error object `{code, message}`.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::application::provider::{
    Cancellation, Confirmation, PaymentProvider, ProviderError, ProviderRecord,
};
use crate::domain::{Money, ProviderVerdict};

/// Where Toss Payments answers; tests point it at a local stand-in.
pub const TOSS_BASE_URL: &str = "https://api.tosspayments.com";

pub struct TossProvider {
    client: reqwest::Client,
    base_url: String,
    authorization: String,
}

/// The fields of Toss's Payment object this adapter reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossPayment {
    payment_key: String,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    status: String,
    total_amount: i64,
    balance_amount: i64,
    approved_at: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Debug, Deserialize)]
struct TossFailure {
    code: String,
    message: String,
}

impl TossProvider {
    /// `timeout` bounds each call; a call that exceeds it has an unknown outcome.
    pub fn new(secret_key: &str, base_url: &str, timeout: Duration) -> Result<Self, String> {
        if secret_key.trim().is_empty() {
            return Err("the Toss secret key is empty".into());
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{secret_key}:"));
        Ok(Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {credentials}"),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<TossPayment, ProviderError> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    ProviderError::Timeout
                } else {
                    ProviderError::Unavailable(error.without_url().to_string())
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            if error.is_timeout() {
                ProviderError::Timeout
            } else {
                ProviderError::Unavailable(error.to_string())
            }
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|error| {
                ProviderError::Unavailable(format!("unexpected Toss answer: {error}"))
            });
        }
        let failure: TossFailure = serde_json::from_slice(&body).unwrap_or(TossFailure {
            code: format!("HTTP_{}", status.as_u16()),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        });
        if status.is_server_error() || status == reqwest::StatusCode::UNAUTHORIZED {
            // A failure of Toss or of our credentials, not a verdict on the payment.
            return Err(ProviderError::Unavailable(format!(
                "{}: {}",
                failure.code, failure.message
            )));
        }
        Err(ProviderError::Refused {
            code: failure.code,
            message: failure.message,
        })
    }

    fn record(payment: TossPayment) -> ProviderRecord {
        let approved_at = payment.approved_at.map(|at| at.with_timezone(&Utc));
        let verdict = match (payment.status.as_str(), approved_at) {
            ("DONE" | "PARTIAL_CANCELED" | "CANCELED", Some(at)) => ProviderVerdict::Approved {
                payment_key: payment.payment_key.clone(),
                amount: payment.total_amount,
                approved_at: at,
            },
            ("CANCELED", None) => ProviderVerdict::Canceled,
            ("ABORTED", _) => ProviderVerdict::Declined {
                code: "ABORTED".into(),
                message: "Toss aborted the payment".into(),
            },
            ("EXPIRED", _) => ProviderVerdict::Expired,
            // READY, IN_PROGRESS, WAITING_FOR_DEPOSIT: not decided yet.
            _ => ProviderVerdict::Pending,
        };
        let charged = matches!(verdict, ProviderVerdict::Approved { .. });
        ProviderRecord {
            verdict,
            total_amount: if charged { payment.total_amount } else { 0 },
            refunded_amount: if charged {
                payment
                    .total_amount
                    .saturating_sub(payment.balance_amount)
                    .max(0)
            } else {
                0
            },
            approved_at,
            order_id: payment.order_id,
            currency: payment.currency,
        }
    }
}

/// Toss's path segments are the payment key; keep them from changing the path.
fn segment(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[async_trait]
impl PaymentProvider for TossProvider {
    fn name(&self) -> &'static str {
        "toss"
    }

    async fn confirm(&self, confirmation: &Confirmation) -> Result<ProviderVerdict, ProviderError> {
        let request = self
            .client
            .post(format!("{}/v1/payments/confirm", self.base_url))
            .header("Idempotency-Key", &confirmation.order_id)
            .json(&json!({
                "paymentKey": confirmation.payment_key,
                "orderId": confirmation.order_id,
                "amount": confirmation.amount,
            }));
        let record = match self.send(request).await {
            Ok(payment) => Self::record(payment),
            // Processed before (our answer was lost, or the key is another order's): what Toss
            // has decides, if it is this order.
            Err(ProviderError::Refused { code, .. }) if code == "ALREADY_PROCESSED_PAYMENT" => {
                self.look_up(&confirmation.payment_key).await?
            }
            Err(ProviderError::Refused { code, message }) => {
                return Ok(ProviderVerdict::Declined { code, message })
            }
            Err(other) => return Err(other),
        };
        // One charge approves one order: Toss's record must be this order, amount and currency.
        let price = Money::new(confirmation.amount, confirmation.currency.clone());
        if let Some(difference) = record.difference(&confirmation.order_id, &price) {
            tracing::warn!(order_id = %confirmation.order_id, %difference, "Toss's record is not this order");
            return Ok(ProviderVerdict::Declined {
                code: crate::domain::RECORD_MISMATCH.into(),
                message: format!(
                    "Toss's record of this payment key is not this order ({difference})"
                ),
            });
        }
        Ok(record.verdict)
    }

    async fn cancel(&self, cancellation: &Cancellation) -> Result<(), ProviderError> {
        let request = self
            .client
            .post(format!(
                "{}/v1/payments/{}/cancel",
                self.base_url,
                segment(&cancellation.payment_key)
            ))
            .header("Idempotency-Key", &cancellation.idempotency_key)
            .json(&json!({
                "cancelReason": cancellation.reason,
                "cancelAmount": cancellation.amount,
            }));
        self.send(request).await.map(drop)
    }

    async fn look_up(&self, payment_key: &str) -> Result<ProviderRecord, ProviderError> {
        let request = self.client.get(format!(
            "{}/v1/payments/{}",
            self.base_url,
            segment(payment_key)
        ));
        match self.send(request).await {
            Ok(payment) => Ok(Self::record(payment)),
            Err(ProviderError::Refused { code, .. }) if code == "NOT_FOUND_PAYMENT" => {
                Ok(ProviderRecord::none())
            }
            Err(other) => Err(other),
        }
    }
}
