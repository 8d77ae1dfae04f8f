//! Wallet use cases: the balance, spending a message's credit and giving it back (for the credit
//! policy of user-chat), and the credits a payment adds or a refund takes back.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use msa_kernel::repository::IdempotencyKey;
use msa_kernel::{EventMetadata, EventStore, Repository, StoreError, StreamId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PaymentsError;
use crate::domain::{FundedBy, SpendKey, Wallet, WalletCommand, WalletEvent};

/// A wallet as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WalletView {
    pub user_id: Uuid,
    /// Purchased credits available (one message each): neither spent nor held for a refund.
    pub balance: u64,
    /// Credits held for refunds being decided (taken back if the refund completes).
    #[serde(default)]
    pub held: u64,
    /// The refunds holding credits.
    #[serde(default)]
    pub holds: Vec<HoldView>,
    /// Credits owed after a refund took back more than the wallet had: no message is sent
    /// until purchases have paid it back.
    #[serde(default)]
    pub debt: u64,
    /// Free messages left today (UTC); spent before credits.
    pub free_left_today: u32,
    pub free_messages_per_day: u32,
    /// Ledger entries so far.
    pub entries: u64,
}

/// Credits held for one refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldView {
    pub refund_id: Uuid,
    pub payment_id: Uuid,
    pub credits: u64,
    pub held_at: String,
}

/// What a spend took, as the spender gets it back (also on a retry with the same key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Spent {
    pub spend_key: String,
    pub funded_by: FundedBy,
    pub day: NaiveDate,
    /// Whether an earlier call made this spend (this one only answered it again). Only the call
    /// that made a spend may give it back: a replayed spend's message may well have been posted.
    #[serde(skip)]
    pub replayed: bool,
}

pub struct Wallets {
    wallets: Repository<Wallet>,
    events: Arc<dyn EventStore>,
    free_messages_per_day: u32,
}

/// One wallet operation's outcome, for dashboards of credits taken and refused.
fn operation(operation: &'static str, outcome: &'static str) {
    metrics::counter!("msa_payment_wallet_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata::current(Some(actor.to_owned()))
}

fn spend_scope(user_id: Uuid) -> String {
    format!("payment.spend:{user_id}")
}

fn refund_scope(user_id: Uuid) -> String {
    format!("payment.spend-refund:{user_id}")
}

impl Wallets {
    pub fn new(events: Arc<dyn EventStore>, free_messages_per_day: u32) -> Self {
        Self {
            wallets: Repository::new(events.clone()),
            events,
            free_messages_per_day,
        }
    }

    pub fn stream(user_id: Uuid) -> StreamId {
        Repository::<Wallet>::stream_id(user_id)
    }

    pub async fn wallet(&self, user_id: Uuid) -> Result<WalletView, PaymentsError> {
        let wallet = self.wallets.load(&Self::stream(user_id)).await?.state;
        Ok(self.view(user_id, &wallet))
    }

    fn view(&self, user_id: Uuid, wallet: &Wallet) -> WalletView {
        let today = Utc::now().date_naive();
        WalletView {
            user_id,
            balance: wallet.balance,
            held: wallet.held(),
            holds: wallet
                .holds
                .iter()
                .map(|(refund_id, hold)| HoldView {
                    refund_id: *refund_id,
                    payment_id: hold.payment_id,
                    credits: hold.credits,
                    held_at: hold.held_at.to_rfc3339(),
                })
                .collect(),
            debt: wallet.debt,
            free_left_today: wallet.free_left(today, self.free_messages_per_day),
            free_messages_per_day: self.free_messages_per_day,
            entries: wallet.entries,
        }
    }

    /// Spends one message's credit: today's free allowance first, then a purchased credit.
    /// `spend_key` names the spend: a retry answers the first spend and takes nothing more.
    /// Refused with [`crate::domain::WalletError::OutOfCredits`] when neither is left.
    ///
    /// Counted in `msa_payment_wallet_operations_total{operation="spend"}` by outcome.
    pub async fn spend(&self, user_id: Uuid, spend_key: &SpendKey) -> Result<Spent, PaymentsError> {
        let spent = self.take_credit(user_id, spend_key).await;
        let outcome = match &spent {
            Ok(spent) if spent.replayed => "replayed",
            Ok(_) => "spent",
            Err(PaymentsError::Wallet(crate::domain::WalletError::OutOfCredits)) => {
                "out_of_credits"
            }
            Err(PaymentsError::Wallet(crate::domain::WalletError::InDebt { .. })) => "in_debt",
            Err(PaymentsError::SpendRefunded(_)) => "refunded_before",
            Err(_) => "failed",
        };
        operation("spend", outcome);
        spent
    }

    async fn take_credit(
        &self,
        user_id: Uuid,
        spend_key: &SpendKey,
    ) -> Result<Spent, PaymentsError> {
        let command = WalletCommand::Spend {
            spend_key: spend_key.clone(),
            today: Utc::now().date_naive(),
            allowance: self.free_messages_per_day,
        };
        let key = IdempotencyKey {
            scope: spend_scope(user_id),
            key: spend_key.to_string(),
            fingerprint: "spend".into(),
        };
        let outcome = self
            .wallets
            .execute_idempotent(
                &Self::stream(user_id),
                &command,
                &metadata(&user_id.to_string()),
                key,
                |_, events| match events.first() {
                    Some(WalletEvent::MessageSpent {
                        spend_key,
                        funded_by,
                        day,
                        ..
                    }) => serde_json::json!(Spent {
                        spend_key: spend_key.clone(),
                        funded_by: *funded_by,
                        day: *day,
                        replayed: false,
                    }),
                    _ => serde_json::Value::Null,
                },
            )
            .await?;
        // A spend given back is over: answering its key again would be a message for free.
        // (Only a replayed key can have been given back, so a new spend skips this read.)
        if outcome.replayed
            && self
                .events
                .idempotency_record(&refund_scope(user_id), spend_key.as_str())
                .await?
                .is_some()
        {
            return Err(PaymentsError::SpendRefunded(spend_key.to_string()));
        }
        let spent: Spent = serde_json::from_value(outcome.result)
            .map_err(|e| PaymentsError::Store(StoreError::backend(e)))?;
        Ok(Spent {
            replayed: outcome.replayed,
            ..spent
        })
    }

    /// Gives back what the spend named `spend_key` took (compensation when the message could not
    /// be posted). Idempotent: a second call gives nothing more.
    pub async fn refund_spend(
        &self,
        user_id: Uuid,
        spend_key: &SpendKey,
    ) -> Result<(), PaymentsError> {
        let spent: Spent = match self
            .events
            .idempotency_record(&spend_scope(user_id), spend_key.as_str())
            .await?
        {
            Some(record) => serde_json::from_value(record.result)
                .map_err(|e| PaymentsError::Store(StoreError::backend(e)))?,
            None => return Err(PaymentsError::UnknownSpend(spend_key.to_string())),
        };
        let key = IdempotencyKey {
            scope: refund_scope(user_id),
            key: spend_key.to_string(),
            fingerprint: "refund".into(),
        };
        let refunded = self
            .wallets
            .execute_idempotent(
                &Self::stream(user_id),
                &WalletCommand::RefundSpend {
                    spend_key: spend_key.clone(),
                    funded_by: spent.funded_by,
                    day: spent.day,
                },
                &metadata(&user_id.to_string()),
                key,
                |_, _| serde_json::Value::Null,
            )
            .await?;
        operation(
            "refund_spend",
            if refunded.replayed {
                "replayed"
            } else {
                "refunded"
            },
        );
        Ok(())
    }

    /// Adds a payment's credits, once per payment whatever the number of calls.
    pub async fn credit_purchase(
        &self,
        user_id: Uuid,
        payment_id: Uuid,
        credits: u64,
    ) -> Result<(), PaymentsError> {
        let command = WalletCommand::Purchase {
            payment_id,
            credits,
        };
        self.once(
            user_id,
            "payment.wallet-credit",
            payment_id,
            credits,
            command,
        )
        .await
    }

    /// Takes back the credits of a refund requested before wallets held credits (as many as the
    /// balance holds), once per refund.
    pub async fn revoke_refunded(
        &self,
        user_id: Uuid,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    ) -> Result<(), PaymentsError> {
        let command = WalletCommand::Revoke {
            payment_id,
            refund_id,
            credits,
        };
        self.once(
            user_id,
            "payment.wallet-revoke",
            refund_id,
            credits,
            command,
        )
        .await
    }

    /// Holds the credits a refund takes back, before the refund is decided: refused
    /// ([`crate::domain::WalletError::CreditsSpent`]) when the available balance cannot cover
    /// them, unless `owe_the_rest` (the money is gone anyway: what is missing becomes a debt
    /// when the refund completes). Holding again for the same refund changes nothing.
    pub async fn hold_for_refund(
        &self,
        user_id: Uuid,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
        owe_the_rest: bool,
    ) -> Result<(), PaymentsError> {
        let command = WalletCommand::HoldForRefund {
            payment_id,
            refund_id,
            credits,
            owe_the_rest,
            at: Utc::now(),
        };
        self.wallets
            .execute(
                &Self::stream(user_id),
                &command,
                &metadata("payment.refunds"),
            )
            .await?;
        Ok(())
    }

    /// The refund completed: the credits held for it are taken back. Idempotent.
    pub async fn settle_hold(&self, user_id: Uuid, refund_id: Uuid) -> Result<(), PaymentsError> {
        self.wallets
            .execute(
                &Self::stream(user_id),
                &WalletCommand::SettleHold { refund_id },
                &metadata("payment.refunds"),
            )
            .await?;
        Ok(())
    }

    /// The refund did not happen: the credits held for it return. Idempotent.
    pub async fn release_hold(&self, user_id: Uuid, refund_id: Uuid) -> Result<(), PaymentsError> {
        self.wallets
            .execute(
                &Self::stream(user_id),
                &WalletCommand::ReleaseHold { refund_id },
                &metadata("payment.refunds"),
            )
            .await?;
        Ok(())
    }

    /// Runs a command of the wallet process manager at most once per `(scope, cause)`.
    async fn once(
        &self,
        user_id: Uuid,
        scope: &str,
        cause: Uuid,
        credits: u64,
        command: WalletCommand,
    ) -> Result<(), PaymentsError> {
        let key = IdempotencyKey {
            scope: scope.into(),
            key: cause.to_string(),
            fingerprint: credits.to_string(),
        };
        self.wallets
            .execute_idempotent(
                &Self::stream(user_id),
                &command,
                &metadata("payment.wallet-credits"),
                key,
                |_, _| serde_json::Value::Null,
            )
            .await?;
        Ok(())
    }
}
