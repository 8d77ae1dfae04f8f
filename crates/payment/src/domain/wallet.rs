//! The `Wallet` aggregate: one per user, a double-entry ledger of message credits.
//!
//! Every event is one ledger entry that moves credits from one account to another, so the
//! accounts always sum to zero and the wallet's balance is what its entries put in minus what
//! they took out. A daily free allowance (UTC days) is counted in the same aggregate and spent
//! before purchased credits. The balance never goes below zero: a spend is decided on the
//! wallet's state and appended with its version, so of concurrent spends only those the balance
//! covers succeed.

use chrono::NaiveDate;
use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a message's credit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FundedBy {
    /// The day's free allowance.
    Allowance,
    /// A purchased credit.
    Credits,
}

/// The ledger's accounts, as seen from one user's wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// The user's purchased credits (the balance).
    Wallet,
    /// Where purchased credits come from and where revoked ones return.
    Purchases,
    /// Where free daily credits come from.
    Allowance,
    /// Where spent credits go.
    Messages,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum WalletEvent {
    CreditsPurchased {
        entry: u64,
        payment_id: Uuid,
        credits: u64,
    },
    /// A refunded payment takes its credits back, as many as the balance still holds.
    CreditsRevoked {
        entry: u64,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
        /// Credits that were due back but already spent.
        shortfall: u64,
    },
    MessageSpent {
        entry: u64,
        spend_key: String,
        funded_by: FundedBy,
        day: NaiveDate,
    },
    SpendRefunded {
        entry: u64,
        spend_key: String,
        funded_by: FundedBy,
        day: NaiveDate,
    },
}

impl DomainEvent for WalletEvent {
    const CONTEXT: &'static str = "payment";
}

impl WalletEvent {
    pub fn entry(&self) -> u64 {
        match self {
            WalletEvent::CreditsPurchased { entry, .. }
            | WalletEvent::CreditsRevoked { entry, .. }
            | WalletEvent::MessageSpent { entry, .. }
            | WalletEvent::SpendRefunded { entry, .. } => *entry,
        }
    }

    /// The entry's double-entry line: credits moved `from` one account `to` another.
    pub fn movement(&self) -> (Account, Account, u64) {
        let source = |funded_by: &FundedBy| match funded_by {
            FundedBy::Allowance => Account::Allowance,
            FundedBy::Credits => Account::Wallet,
        };
        match self {
            WalletEvent::CreditsPurchased { credits, .. } => {
                (Account::Purchases, Account::Wallet, *credits)
            }
            WalletEvent::CreditsRevoked { credits, .. } => {
                (Account::Wallet, Account::Purchases, *credits)
            }
            WalletEvent::MessageSpent { funded_by, .. } => {
                (source(funded_by), Account::Messages, 1)
            }
            WalletEvent::SpendRefunded { funded_by, .. } => {
                (Account::Messages, source(funded_by), 1)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum WalletCommand {
    Purchase {
        payment_id: Uuid,
        credits: u64,
    },
    Revoke {
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    },
    /// One message's credit: from today's allowance while it lasts, then from the balance.
    Spend {
        spend_key: String,
        today: NaiveDate,
        allowance: u32,
    },
    /// Gives a spend back to where it came from (an allowance only on the day it was spent).
    RefundSpend {
        spend_key: String,
        funded_by: FundedBy,
        day: NaiveDate,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("no free messages left today and no credits; buy credits to send more")]
    OutOfCredits,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    pub balance: u64,
    /// The day `free_used` counts (UTC).
    pub free_day: Option<NaiveDate>,
    pub free_used: u32,
    /// The number of ledger entries.
    pub entries: u64,
}

impl Wallet {
    /// Free messages left on `today`.
    pub fn free_left(&self, today: NaiveDate, allowance: u32) -> u32 {
        if self.free_day == Some(today) {
            allowance.saturating_sub(self.free_used)
        } else {
            allowance
        }
    }
}

impl Aggregate for Wallet {
    const KIND: &'static str = "payment.wallet";
    // A wallet's history grows with every message; snapshots bound a cold load.
    const SNAPSHOT_EVERY: Option<u64> = Some(100);

    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;

    fn apply(&mut self, event: &WalletEvent) {
        self.entries = event.entry();
        match event {
            WalletEvent::CreditsPurchased { credits, .. } => self.balance += credits,
            WalletEvent::CreditsRevoked { credits, .. } => {
                self.balance = self.balance.saturating_sub(*credits)
            }
            WalletEvent::MessageSpent { funded_by, day, .. } => match funded_by {
                FundedBy::Allowance => {
                    if self.free_day != Some(*day) {
                        self.free_day = Some(*day);
                        self.free_used = 0;
                    }
                    self.free_used += 1;
                }
                FundedBy::Credits => self.balance = self.balance.saturating_sub(1),
            },
            WalletEvent::SpendRefunded { funded_by, day, .. } => match funded_by {
                FundedBy::Allowance => {
                    if self.free_day == Some(*day) {
                        self.free_used = self.free_used.saturating_sub(1);
                    }
                }
                FundedBy::Credits => self.balance += 1,
            },
        }
    }

    fn decide(&self, command: &WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        let entry = self.entries + 1;
        let event = match command {
            WalletCommand::Purchase {
                payment_id,
                credits,
            } => WalletEvent::CreditsPurchased {
                entry,
                payment_id: *payment_id,
                credits: *credits,
            },
            WalletCommand::Revoke {
                payment_id,
                refund_id,
                credits,
            } => {
                let taken = (*credits).min(self.balance);
                WalletEvent::CreditsRevoked {
                    entry,
                    payment_id: *payment_id,
                    refund_id: *refund_id,
                    credits: taken,
                    shortfall: credits - taken,
                }
            }
            WalletCommand::Spend {
                spend_key,
                today,
                allowance,
            } => {
                let funded_by = if self.free_left(*today, *allowance) > 0 {
                    FundedBy::Allowance
                } else if self.balance > 0 {
                    FundedBy::Credits
                } else {
                    return Err(WalletError::OutOfCredits);
                };
                WalletEvent::MessageSpent {
                    entry,
                    spend_key: spend_key.clone(),
                    funded_by,
                    day: *today,
                }
            }
            WalletCommand::RefundSpend {
                spend_key,
                funded_by,
                day,
            } => WalletEvent::SpendRefunded {
                entry,
                spend_key: spend_key.clone(),
                funded_by: *funded_by,
                day: *day,
            },
        };
        Ok(vec![event])
    }
}
