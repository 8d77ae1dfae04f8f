//! The `Wallet` aggregate: one per user, a double-entry ledger of message credits.
//!
//! Every event is one ledger entry that moves credits from one account to another, so the
//! accounts always sum to zero and the wallet's balance is what its entries put in minus what
//! they took out. A daily free allowance (UTC days) is counted in the same aggregate and spent
//! before purchased credits. The balance never goes below zero: a spend is decided on the
//! wallet's state and appended with its version, so of concurrent spends only those the balance
//! covers succeed.
//!
//! A refund takes its credits back in two steps decided here, never by a later read of the
//! balance: first they are *held* (moved out of the balance, so nothing can spend them and no
//! second refund can count them), then the hold is *settled* when the provider refunded the money
//! or *released* when it did not. A refund the balance cannot cover is refused, except where the
//! money is gone already (an admin's refund, a provider's cancellation): then the rest becomes a
//! *debt*, which blocks spending until purchases have paid it back.

use std::collections::BTreeMap;

use super::SpendKey;
use chrono::{DateTime, NaiveDate, Utc};
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
    /// Credits set aside for a refund being decided.
    Held,
    /// Credits a refund took back that the wallet no longer had (negative while owed).
    Debt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum WalletEvent {
    CreditsPurchased {
        entry: u64,
        payment_id: Uuid,
        credits: u64,
    },
    /// A refunded payment takes its credits back, as many as the balance still holds. (Refunds
    /// decided before holds existed; new refunds hold, then settle.)
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
    /// The credits a refund takes back are set aside before the refund is decided.
    CreditsHeld {
        entry: u64,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
        /// Credits due back that the balance did not have: a debt once the refund completes.
        #[serde(default)]
        owed: u64,
        held_at: DateTime<Utc>,
    },
    /// The refund completed: the held credits are taken back for good.
    HoldSettled {
        entry: u64,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    },
    /// The refund did not happen: the held credits return to the balance.
    HoldReleased {
        entry: u64,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    },
    /// A completed refund took back credits the wallet no longer had.
    DebtRecorded {
        entry: u64,
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    },
    /// Purchased credits pay back the debt first.
    DebtRepaid {
        entry: u64,
        payment_id: Uuid,
        credits: u64,
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
            | WalletEvent::SpendRefunded { entry, .. }
            | WalletEvent::CreditsHeld { entry, .. }
            | WalletEvent::HoldSettled { entry, .. }
            | WalletEvent::HoldReleased { entry, .. }
            | WalletEvent::DebtRecorded { entry, .. }
            | WalletEvent::DebtRepaid { entry, .. } => *entry,
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
            WalletEvent::CreditsHeld { credits, .. } => (Account::Wallet, Account::Held, *credits),
            WalletEvent::HoldSettled { credits, .. } => {
                (Account::Held, Account::Purchases, *credits)
            }
            WalletEvent::HoldReleased { credits, .. } => (Account::Held, Account::Wallet, *credits),
            WalletEvent::DebtRecorded { credits, .. } => {
                (Account::Debt, Account::Purchases, *credits)
            }
            WalletEvent::DebtRepaid { credits, .. } => (Account::Wallet, Account::Debt, *credits),
        }
    }

    /// The ledger's name for the entry's kind (`credits_purchased`, `credits_held`...).
    pub fn kind(&self) -> &'static str {
        match self {
            WalletEvent::CreditsPurchased { .. } => "credits_purchased",
            WalletEvent::CreditsRevoked { .. } => "credits_revoked",
            WalletEvent::MessageSpent { .. } => "message_spent",
            WalletEvent::SpendRefunded { .. } => "spend_refunded",
            WalletEvent::CreditsHeld { .. } => "credits_held",
            WalletEvent::HoldSettled { .. } => "hold_settled",
            WalletEvent::HoldReleased { .. } => "hold_released",
            WalletEvent::DebtRecorded { .. } => "debt_recorded",
            WalletEvent::DebtRepaid { .. } => "debt_repaid",
        }
    }
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum WalletCommand {
    /// Credits a payment bought (paying back any debt first).
    Purchase { payment_id: Uuid, credits: u64 },
    /// Takes back a refund's credits as the balance allows (refunds decided before holds).
    Revoke {
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
    },
    /// Sets aside the credits a refund takes back, before the refund is decided. Refused when the
    /// balance cannot cover them, unless `owe_the_rest` (the money is gone whatever we decide).
    /// A second hold for the same refund changes nothing.
    HoldForRefund {
        payment_id: Uuid,
        refund_id: Uuid,
        credits: u64,
        owe_the_rest: bool,
        at: DateTime<Utc>,
    },
    /// The refund completed: its held credits are taken back (and what was owed becomes debt).
    SettleHold { refund_id: Uuid },
    /// The refund did not happen: its held credits return.
    ReleaseHold { refund_id: Uuid },
    /// One message's credit: from today's allowance while it lasts, then from the balance.
    Spend {
        spend_key: SpendKey,
        today: NaiveDate,
        allowance: u32,
    },
    /// Gives a spend back to where it came from (an allowance only on the day it was spent).
    RefundSpend {
        spend_key: SpendKey,
        funded_by: FundedBy,
        day: NaiveDate,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("no free messages left today and no credits; buy credits to send more")]
    OutOfCredits,
    #[error("this wallet owes {debt} credits taken back by a refund; buy credits to pay it back and send again")]
    InDebt { debt: u64 },
    #[error("{needed} credits of this payment are no longer in the wallet ({available} available); only unspent credits are refunded")]
    CreditsSpent { needed: u64, available: u64 },
    #[error("a wallet holds at most {} credits", u64::MAX)]
    TooManyCredits,
}

/// Credits set aside for one refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub payment_id: Uuid,
    pub credits: u64,
    pub owed: u64,
    pub held_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    /// Purchased credits available: neither spent, nor held for a refund.
    pub balance: u64,
    /// The day `free_used` counts (UTC).
    pub free_day: Option<NaiveDate>,
    pub free_used: u32,
    /// The number of ledger entries.
    pub entries: u64,
    /// Credits held for refunds being decided, by refund id.
    #[serde(default)]
    pub holds: BTreeMap<Uuid, Hold>,
    /// Credits owed: refunds took back more than the wallet had. Blocks spending until repaid.
    #[serde(default)]
    pub debt: u64,
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

    /// Credits held for refunds being decided.
    pub fn held(&self) -> u64 {
        self.holds
            .values()
            .fold(0u64, |sum, hold| sum.saturating_add(hold.credits))
    }
}

impl Aggregate for Wallet {
    const KIND: &'static str = "payment.wallet";
    // A wallet's history grows with every message; snapshots bound a cold load.
    const SNAPSHOT_EVERY: Option<u64> = Some(100);

    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;

    /// `decide` keeps every sum in range; applying saturates rather than wrapping all the same.
    fn apply(&mut self, event: &WalletEvent) {
        self.entries = event.entry();
        match event {
            WalletEvent::CreditsPurchased { credits, .. } => {
                self.balance = self.balance.saturating_add(*credits)
            }
            WalletEvent::CreditsRevoked { credits, .. } => {
                self.balance = self.balance.saturating_sub(*credits)
            }
            WalletEvent::MessageSpent { funded_by, day, .. } => match funded_by {
                FundedBy::Allowance => {
                    if self.free_day != Some(*day) {
                        self.free_day = Some(*day);
                        self.free_used = 0;
                    }
                    self.free_used = self.free_used.saturating_add(1);
                }
                FundedBy::Credits => self.balance = self.balance.saturating_sub(1),
            },
            WalletEvent::SpendRefunded { funded_by, day, .. } => match funded_by {
                FundedBy::Allowance => {
                    if self.free_day == Some(*day) {
                        self.free_used = self.free_used.saturating_sub(1);
                    }
                }
                FundedBy::Credits => self.balance = self.balance.saturating_add(1),
            },
            WalletEvent::CreditsHeld {
                payment_id,
                refund_id,
                credits,
                owed,
                held_at,
                ..
            } => {
                self.balance = self.balance.saturating_sub(*credits);
                self.holds.insert(
                    *refund_id,
                    Hold {
                        payment_id: *payment_id,
                        credits: *credits,
                        owed: *owed,
                        held_at: *held_at,
                    },
                );
            }
            WalletEvent::HoldSettled { refund_id, .. } => {
                self.holds.remove(refund_id);
            }
            WalletEvent::HoldReleased {
                refund_id, credits, ..
            } => {
                self.holds.remove(refund_id);
                self.balance = self.balance.saturating_add(*credits);
            }
            WalletEvent::DebtRecorded { credits, .. } => {
                self.debt = self.debt.saturating_add(*credits)
            }
            WalletEvent::DebtRepaid { credits, .. } => {
                self.balance = self.balance.saturating_sub(*credits);
                self.debt = self.debt.saturating_sub(*credits);
            }
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        let entry = self.entries + 1;
        let event = match command {
            WalletCommand::Purchase {
                payment_id,
                credits,
            } => {
                let balance = self
                    .balance
                    .checked_add(*credits)
                    .filter(|balance| balance.checked_add(self.held()).is_some())
                    .ok_or(WalletError::TooManyCredits)?;
                let mut events = vec![WalletEvent::CreditsPurchased {
                    entry,
                    payment_id: *payment_id,
                    credits: *credits,
                }];
                let repaid = balance.min(self.debt);
                if repaid > 0 {
                    events.push(WalletEvent::DebtRepaid {
                        entry: entry + 1,
                        payment_id: *payment_id,
                        credits: repaid,
                    });
                }
                return Ok(events);
            }
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
            WalletCommand::HoldForRefund {
                payment_id,
                refund_id,
                credits,
                owe_the_rest,
                at,
            } => {
                if self.holds.contains_key(refund_id) {
                    return Ok(vec![]);
                }
                let held = (*credits).min(self.balance);
                if held < *credits && !owe_the_rest {
                    return Err(WalletError::CreditsSpent {
                        needed: *credits,
                        available: self.balance,
                    });
                }
                self.debt
                    .checked_add(credits - held)
                    .ok_or(WalletError::TooManyCredits)?;
                WalletEvent::CreditsHeld {
                    entry,
                    payment_id: *payment_id,
                    refund_id: *refund_id,
                    credits: held,
                    owed: credits - held,
                    held_at: *at,
                }
            }
            WalletCommand::SettleHold { refund_id } => {
                let Some(hold) = self.holds.get(refund_id) else {
                    return Ok(vec![]);
                };
                let mut events = vec![WalletEvent::HoldSettled {
                    entry,
                    payment_id: hold.payment_id,
                    refund_id: *refund_id,
                    credits: hold.credits,
                }];
                if hold.owed > 0 {
                    events.push(WalletEvent::DebtRecorded {
                        entry: entry + 1,
                        payment_id: hold.payment_id,
                        refund_id: *refund_id,
                        credits: hold.owed,
                    });
                    // Credits bought while the refund was decided pay the new debt at once.
                    let repaid = self.balance.min(self.debt.saturating_add(hold.owed));
                    if repaid > 0 {
                        events.push(WalletEvent::DebtRepaid {
                            entry: entry + 2,
                            payment_id: hold.payment_id,
                            credits: repaid,
                        });
                    }
                }
                return Ok(events);
            }
            WalletCommand::ReleaseHold { refund_id } => {
                let Some(hold) = self.holds.get(refund_id) else {
                    return Ok(vec![]);
                };
                WalletEvent::HoldReleased {
                    entry,
                    payment_id: hold.payment_id,
                    refund_id: *refund_id,
                    credits: hold.credits,
                }
            }
            WalletCommand::Spend {
                spend_key,
                today,
                allowance,
            } => {
                let funded_by = if self.debt > 0 {
                    return Err(WalletError::InDebt { debt: self.debt });
                } else if self.free_left(*today, *allowance) > 0 {
                    FundedBy::Allowance
                } else if self.balance > 0 {
                    FundedBy::Credits
                } else {
                    return Err(WalletError::OutOfCredits);
                };
                WalletEvent::MessageSpent {
                    entry,
                    spend_key: spend_key.as_str().to_owned(),
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
                spend_key: spend_key.as_str().to_owned(),
                funded_by: *funded_by,
                day: *day,
            },
        };
        Ok(vec![event])
    }
}
