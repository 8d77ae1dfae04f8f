//! The ledger written a batch at a time (one statement per batch, balances as running sums)
//! holds the entries and balances a plain running total gives, for every batch size, on SQLite
//! and PostgreSQL.

use chrono::NaiveDate;
use msa_kernel::repository::encode;
use msa_kernel::{Aggregate, EventMetadata, ProjectionRunner, StreamId, Upcasters};
use msa_payment::adapters::ledger::{Ledger, LedgerEntry};
use msa_payment::application::ports::LedgerEntries;
use msa_payment::domain::{FundedBy, Wallet, WalletEvent};
use msa_testkit::TestStores;
use uuid::Uuid;

/// A wallet's ledger as `(entry, kind, balance)`, oldest first.
type Entries = Vec<(i64, String, i64)>;

/// Wallet events of three users, interleaved in the log (so a batch holds several wallets, each
/// with several entries): purchases, spends from the allowance and from credits, refunded spends
/// a revoked purchase (from before holds), refund holds settled and released, debts recorded and
/// repaid. Returns each user's entries as a running total computes them, oldest
/// first.
async fn write_log(stores: &TestStores) -> Vec<(Uuid, Entries)> {
    let users: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut expected: Vec<(Uuid, Entries)> = users.iter().map(|user| (*user, Vec::new())).collect();
    let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    for round in 0..40u64 {
        for (index, user) in users.iter().enumerate() {
            let entry = round + 1;
            let funded_by = if (round + index as u64).is_multiple_of(3) {
                FundedBy::Allowance
            } else {
                FundedBy::Credits
            };
            let change = match (round + index as u64) % 10 {
                0 => WalletEvent::CreditsPurchased {
                    entry,
                    payment_id: Uuid::now_v7(),
                    credits: 10 + index as u64,
                },
                4 => WalletEvent::SpendRefunded {
                    entry,
                    spend_key: format!("spend-{round}"),
                    funded_by,
                    day,
                },
                2 => WalletEvent::CreditsHeld {
                    entry,
                    payment_id: Uuid::from_u128(7),
                    refund_id: Uuid::from_u128(u128::from(round)),
                    credits: 2,
                    owed: 1,
                    held_at: chrono::Utc::now(),
                },
                // The hold of round - 1: settled in even rounds, released in odd ones.
                3 if round % 2 == 0 => WalletEvent::HoldSettled {
                    entry,
                    payment_id: Uuid::from_u128(7),
                    refund_id: Uuid::from_u128(u128::from(round - 1)),
                    credits: 2,
                },
                3 => WalletEvent::HoldReleased {
                    entry,
                    payment_id: Uuid::from_u128(7),
                    refund_id: Uuid::from_u128(u128::from(round - 1)),
                    credits: 2,
                },
                5 => WalletEvent::DebtRecorded {
                    entry,
                    payment_id: Uuid::from_u128(7),
                    refund_id: Uuid::now_v7(),
                    credits: 1,
                },
                6 => WalletEvent::DebtRepaid {
                    entry,
                    payment_id: Uuid::now_v7(),
                    credits: 1,
                },
                7 => WalletEvent::CreditsRevoked {
                    entry,
                    payment_id: Uuid::now_v7(),
                    refund_id: Uuid::now_v7(),
                    credits: 3,
                    shortfall: 0,
                },
                _ => WalletEvent::MessageSpent {
                    entry,
                    spend_key: format!("spend-{round}"),
                    funded_by,
                    day,
                },
            };
            // The available balance: what moves into or out of the wallet account (a hold
            // leaves it, a release comes back; settling and debts move other accounts).
            let (kind, delta) = match &change {
                WalletEvent::CreditsPurchased { credits, .. } => {
                    ("credits_purchased", *credits as i64)
                }
                WalletEvent::CreditsRevoked { credits, .. } => {
                    ("credits_revoked", -(*credits as i64))
                }
                WalletEvent::MessageSpent { funded_by, .. } => (
                    "message_spent",
                    if *funded_by == FundedBy::Credits {
                        -1
                    } else {
                        0
                    },
                ),
                WalletEvent::SpendRefunded { funded_by, .. } => (
                    "spend_refunded",
                    if *funded_by == FundedBy::Credits {
                        1
                    } else {
                        0
                    },
                ),
                WalletEvent::CreditsHeld { credits, .. } => ("credits_held", -(*credits as i64)),
                WalletEvent::HoldSettled { .. } => ("hold_settled", 0),
                WalletEvent::HoldReleased { credits, .. } => ("hold_released", *credits as i64),
                WalletEvent::DebtRecorded { .. } => ("debt_recorded", 0),
                WalletEvent::DebtRepaid { credits, .. } => ("debt_repaid", -(*credits as i64)),
            };
            let entries = &mut expected[index].1;
            let before = entries.last().map_or(0, |(_, _, balance)| *balance);
            entries.push((entry as i64, kind.to_owned(), before + delta));
            let stream = StreamId::new(Wallet::KIND, user.to_string());
            let event = encode(&change, &EventMetadata::new_conversation(None)).unwrap();
            stores
                .events
                .append(&stream, round, vec![event], None)
                .await
                .unwrap();
        }
    }
    expected
}

async fn ledger_of(stores: &TestStores, user: Uuid) -> Entries {
    let mut page: Vec<LedgerEntry> = stores.read_models.entries(user, None, 1000).await.unwrap();
    page.reverse();
    page.into_iter()
        .map(|entry| (entry.entry, entry.kind, entry.balance))
        .collect()
}

async fn batches_hold_the_running_balances(stores: TestStores) {
    let expected = write_log(&stores).await;
    // One event a batch (the live runner under a trickle); 7 cuts each wallet's run at a
    // different place; 64 and 500 hold many entries of every wallet, and 500 the whole log.
    for batch_size in [1, 7, 64, 500] {
        let batched = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone())
            .with_batch_size(batch_size);
        match batch_size {
            1 => batched.catch_up(&Ledger).await.map(drop),
            _ => batched.rebuild(&Ledger).await.map(drop),
        }
        .unwrap();
        for (user, entries) in &expected {
            assert_eq!(
                &ledger_of(&stores, *user).await,
                entries,
                "batches of {batch_size}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_the_running_balances_on_sqlite() {
    batches_hold_the_running_balances(TestStores::sqlite(Upcasters::new()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_the_running_balances_on_postgres() {
    let Some(stores) = TestStores::postgres(Upcasters::new()).await else {
        return;
    };
    batches_hold_the_running_balances(stores).await;
}
