//! Wallets on real stores (SQLite and PostgreSQL): the balance never goes below zero under
//! concurrent spends; spends and their refunds are idempotent by key; purchases credit once.

use std::sync::Arc;

use msa_kernel::Upcasters;
use msa_payment::application::wallets::{Spent, Wallets};
use msa_payment::application::PaymentsError;
use msa_payment::domain::{FundedBy, SpendKey, WalletError};
use msa_testkit::TestStores;
use uuid::Uuid;

async fn stores() -> Vec<(&'static str, TestStores)> {
    let mut all = vec![("sqlite", TestStores::sqlite(Upcasters::new()).await)];
    if let Some(pg) = TestStores::postgres(Upcasters::new()).await {
        all.push(("postgres", pg));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_spends_against_ten_credits_give_exactly_ten() {
    for (backend, stores) in stores().await {
        // No allowance: every spend needs a purchased credit.
        let wallets = Arc::new(Wallets::new(stores.events.clone(), 0));
        let user = Uuid::now_v7();
        wallets
            .credit_purchase(user, Uuid::now_v7(), 10)
            .await
            .unwrap();
        let spends = (0..50).map(|n| {
            let wallets = wallets.clone();
            tokio::spawn(async move {
                wallets
                    .spend(user, &SpendKey::parse(&format!("spend-{n}")).unwrap())
                    .await
            })
        });
        let outcomes = futures::future::join_all(spends).await;
        let mut succeeded = 0;
        for outcome in outcomes {
            match outcome.unwrap() {
                Ok(spent) => {
                    assert_eq!(spent.funded_by, FundedBy::Credits);
                    succeeded += 1;
                }
                Err(PaymentsError::Wallet(WalletError::OutOfCredits)) => {}
                Err(other) => panic!("{backend}: unexpected {other:?}"),
            }
        }
        assert_eq!(succeeded, 10, "{backend}");
        assert_eq!(wallets.wallet(user).await.unwrap().balance, 0, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_spending_from_one_wallet_still_never_overspend() {
    // Two `Wallets` share no locks, like two payment processes: the version guard decides.
    for (backend, stores) in stores().await {
        let first = Arc::new(Wallets::new(stores.events.clone(), 0));
        let second = Arc::new(Wallets::new(stores.events.clone(), 0));
        let user = Uuid::now_v7();
        first
            .credit_purchase(user, Uuid::now_v7(), 5)
            .await
            .unwrap();
        let spends = (0..20).map(|n| {
            let wallets = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                wallets
                    .spend(user, &SpendKey::parse(&format!("spend-{n}")).unwrap())
                    .await
            })
        });
        let mut succeeded = 0;
        for outcome in futures::future::join_all(spends).await {
            match outcome.unwrap() {
                Ok(_) => succeeded += 1,
                Err(PaymentsError::Wallet(WalletError::OutOfCredits) | PaymentsError::Busy) => {}
                Err(other) => panic!("{backend}: unexpected {other:?}"),
            }
        }
        assert!(succeeded <= 5, "{backend}: {succeeded} spends of 5 credits");
        let balance = first.wallet(user).await.unwrap().balance;
        assert_eq!(balance, 5 - succeeded, "{backend}");
    }
}

#[tokio::test]
async fn spends_and_refunds_are_idempotent_by_key_and_purchases_credit_once() {
    for (backend, stores) in stores().await {
        let wallets = Wallets::new(stores.events.clone(), 1);
        let user = Uuid::now_v7();
        let payment = Uuid::now_v7();
        for _ in 0..3 {
            wallets.credit_purchase(user, payment, 2).await.unwrap();
        }
        let view = wallets.wallet(user).await.unwrap();
        assert_eq!((view.balance, view.free_left_today), (2, 1), "{backend}");

        let free = wallets
            .spend(user, &SpendKey::parse("m-1").unwrap())
            .await
            .unwrap();
        assert_eq!(free.funded_by, FundedBy::Allowance);
        assert!(!free.replayed);
        assert_eq!(
            wallets
                .spend(user, &SpendKey::parse("m-1").unwrap())
                .await
                .unwrap(),
            Spent {
                replayed: true,
                ..free.clone()
            },
            "{backend}: a retry answers the first spend, as a replay"
        );
        let paid = wallets
            .spend(user, &SpendKey::parse("m-2").unwrap())
            .await
            .unwrap();
        assert_eq!(paid.funded_by, FundedBy::Credits);
        let view = wallets.wallet(user).await.unwrap();
        assert_eq!((view.balance, view.free_left_today), (1, 0), "{backend}");

        for _ in 0..2 {
            wallets
                .refund_spend(user, &SpendKey::parse("m-2").unwrap())
                .await
                .unwrap();
            wallets
                .refund_spend(user, &SpendKey::parse("m-1").unwrap())
                .await
                .unwrap();
        }
        let view = wallets.wallet(user).await.unwrap();
        assert_eq!(
            (view.balance, view.free_left_today),
            (2, 1),
            "{backend}: each spend given back once"
        );
        assert!(
            matches!(
                wallets.spend(user, &SpendKey::parse("m-2").unwrap()).await,
                Err(PaymentsError::SpendRefunded(_))
            ),
            "{backend}: a refunded spend is not replayed for free"
        );
        assert!(matches!(
            wallets
                .refund_spend(user, &SpendKey::parse("never").unwrap())
                .await,
            Err(PaymentsError::UnknownSpend(_))
        ));
    }
}
