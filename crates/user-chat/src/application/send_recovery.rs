//! The recovery of sends left half-done: a message's credit spent, and then the post failed
//! (chat answered 5xx or could not be reached), user-chat died between the two calls, or an
//! answer was lost on the way back. Without any client action, every such spend is either
//! *completed* (its message exists: the spend paid for it) or *refunded*, exactly once, within
//! [`RecoverySettings::after`] plus one round.
//!
//! What it knows comes from events and from the owners' stores, never from memory of its own:
//! `user-chat.open-spends` lists the spends the wallet events show, and what became of each send
//! is chat's to say (its `txn_id` is a key of chat's store, written with the message). A spend
//! older than `after` whose send chat says is:
//! - *posted* in its room: completed; nothing to do (a message is never posted here: the body is
//!   the client's, and only a retry of the same send may post it);
//! - *open* (no message, and none yet): withdrawn in chat first, so no post can come of it
//!   later, then refunded; if the post won the race, chat says posted and nothing is refunded;
//! - *withdrawn* (or its `txn_id` posted in another room): refunded.
//!
//! Refunds are keyed by the spend in the wallet and withdrawals by the send in chat, so a round
//! repeated after a crash, or run by two instances at once, gives back a credit once. One
//! instance sweeps at a time all the same (a lease in user-chat's query database), so two
//! instances do not ask chat twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use msa_chat::contract::{SendOutcome, MAX_SENDS_ASKED};
use msa_kernel::relay::Leases;
use msa_kernel::StoreError;
use tokio::sync::watch;

use super::ports::{ChatPort, ServiceError, SpendsInDoubt, WalletPort};
use super::views::OpenSpend;

/// The lease one instance sweeps under.
pub const LEASE: &str = "user-chat.send-recovery";

/// Spends looked at per call to chat.
const PAGE: u32 = 200;

/// When a spend counts as left half-done.
#[derive(Debug, Clone, Copy)]
pub struct RecoverySettings {
    /// A spend whose send has not finished this long after it is settled: longer than a send
    /// takes (its two calls, each bounded by the upstream timeout), so a send under way is left
    /// alone; a send still under way loses to the withdrawal all the same, and is refunded.
    pub after: Duration,
}

impl RecoverySettings {
    /// How often the recovery looks: a sixth of `after`, between 200 ms and 10 s.
    pub fn every(&self) -> Duration {
        (self.after / 6).clamp(Duration::from_millis(200), Duration::from_secs(10))
    }

    /// How long the lease lasts unrenewed: another instance takes over within this.
    fn lease_ttl(&self) -> Duration {
        (self.every() * 3).max(Duration::from_secs(5))
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Spends whose message exists (nearly all: sends that finished as usual).
    pub completed: usize,
    /// Spends given back.
    pub refunded: usize,
    /// Spends that could not be settled this round (tried again the next).
    pub failed: usize,
}

#[derive(Debug)]
pub enum RecoveryError {
    Store(StoreError),
    /// Chat could not say what became of the sends.
    Chat(ServiceError),
}

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryError::Store(error) => write!(f, "user-chat's query database: {error}"),
            RecoveryError::Chat(error) => write!(f, "chat: {error}"),
        }
    }
}

impl From<StoreError> for RecoveryError {
    fn from(error: StoreError) -> Self {
        RecoveryError::Store(error)
    }
}

pub struct SendRecovery {
    chat: Arc<dyn ChatPort>,
    wallets: Arc<dyn WalletPort>,
    spends: Arc<dyn SpendsInDoubt>,
    leases: Arc<dyn Leases>,
    settings: RecoverySettings,
    /// This instance, as a lease holder.
    holder: String,
}

impl SendRecovery {
    /// `read_models`: user-chat's query side, which keeps the open spends and the lease.
    pub fn new<R>(
        chat: Arc<dyn ChatPort>,
        wallets: Arc<dyn WalletPort>,
        read_models: Arc<R>,
        settings: RecoverySettings,
    ) -> Self
    where
        R: SpendsInDoubt + Leases + 'static,
    {
        Self {
            chat,
            wallets,
            spends: read_models.clone(),
            leases: read_models,
            settings,
            holder: format!("user-chat-{}", uuid::Uuid::now_v7()),
        }
    }

    /// Sweeps every [`RecoverySettings::every`] while this instance holds the lease, until
    /// `stop` turns true; then gives the lease up.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.every()) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let result = match self.holds_lease().await {
                Ok(true) => self.sweep().await,
                Ok(false) => continue,
                Err(error) => Err(error.into()),
            };
            match result {
                Ok(recovered) => {
                    if warned {
                        tracing::info!("the send recovery works again");
                    }
                    warned = false;
                    // Most spends looked at had their message: only refunds and failures are news.
                    if recovered.refunded > 0 || recovered.failed > 0 {
                        tracing::info!(
                            completed = recovered.completed,
                            refunded = recovered.refunded,
                            failed = recovered.failed,
                            "half-done sends settled"
                        );
                    } else if recovered.completed > 0 {
                        tracing::debug!(completed = recovered.completed, "sends found complete");
                    }
                }
                Err(error) if !warned => {
                    tracing::warn!(%error, "the send recovery cannot look at sends now; retrying");
                    warned = true;
                }
                Err(_) => {}
            }
        }
        let _ = self.leases.release(LEASE, &self.holder).await;
    }

    async fn holds_lease(&self) -> Result<bool, StoreError> {
        self.leases
            .acquire(LEASE, &self.holder, self.settings.lease_ttl())
            .await
    }

    /// One round: every spend older than `after` whose send is not known finished is settled,
    /// oldest first, a page at a time. Stops early when chat cannot answer or the lease is lost.
    pub async fn sweep(&self) -> Result<Recovered, RecoveryError> {
        let before = Utc::now()
            - chrono::Duration::from_std(self.settings.after).unwrap_or(chrono::Duration::MAX);
        let mut recovered = Recovered::default();
        let mut last: Option<OpenSpend> = None;
        loop {
            let page = self
                .spends
                .spent_before(before, last.as_ref(), PAGE)
                .await?;
            let Some(end) = page.last().cloned() else {
                break;
            };
            last = Some(end);
            let sends: Vec<_> = page.iter().map(OpenSpend::send).collect();
            debug_assert!(sends.len() <= MAX_SENDS_ASKED);
            let outcomes = self
                .chat
                .send_outcomes(&sends)
                .await
                .map_err(RecoveryError::Chat)?;
            let mut finished = Vec::new();
            for (spend, outcome) in page.iter().zip(outcomes) {
                // In the spend's conversation: a refund shows in its message's trail.
                let settling = self.settle(spend, outcome);
                let settled = match spend.conversation.clone() {
                    Some(conversation) => conversation.scope(settling).await,
                    None => settling.await,
                };
                match settled {
                    Ok(Settled::Completed) => {
                        recovered.completed += 1;
                        finished.push(spend);
                    }
                    Ok(Settled::Refunded) => {
                        recovered.refunded += 1;
                        finished.push(spend);
                    }
                    Err(error) => {
                        recovered.failed += 1;
                        tracing::warn!(user_id = %spend.user_id, spend_key = %spend.spend_key,
                            %error, "a half-done send could not be settled; trying again next round");
                    }
                }
            }
            self.spends.forget(&finished).await?;
            if page.len() < PAGE as usize || !self.holds_lease().await? {
                break;
            }
        }
        Ok(recovered)
    }

    /// Completes or refunds one spend, by what chat says of its send.
    async fn settle(
        &self,
        spend: &OpenSpend,
        outcome: SendOutcome,
    ) -> Result<Settled, ServiceError> {
        let outcome = match outcome {
            SendOutcome::Open => self.chat.withdraw_send(&spend.send()).await?,
            known => known,
        };
        match outcome {
            SendOutcome::Posted { .. } => {
                // Nearly every spend ends here: its send posted as usual.
                metrics::counter!("msa_user_chat_sends_settled_total", "outcome" => "posted")
                    .increment(1);
                Ok(Settled::Completed)
            }
            SendOutcome::Withdrawn => {
                self.wallets
                    .refund_spend(spend.user_id, &spend.spend_key)
                    .await?;
                metrics::counter!("msa_user_chat_sends_settled_total", "outcome" => "refunded")
                    .increment(1);
                tracing::info!(user_id = %spend.user_id, spend_key = %spend.spend_key,
                    "a send that never posted was given its credit back");
                Ok(Settled::Refunded)
            }
            SendOutcome::Open => Err(ServiceError::failed(
                "chat answered a withdrawn send as open",
            )),
        }
    }
}

enum Settled {
    Completed,
    Refunded,
}
