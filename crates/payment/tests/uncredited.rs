//! An approved payment the wallet process manager never credited (its event dead-lettered, the
//! process manager stopped) is credited by the sweeper, once, on real stores (SQLite and
//! PostgreSQL). No process manager runs here: only the sweeper can credit the approval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msa_kernel::{ProjectionRunner, Upcasters};
use msa_payment::adapters::holds::Holds;
use msa_payment::adapters::payment_list::PaymentList;
use msa_payment::adapters::sandbox::SandboxProvider;
use msa_payment::adapters::uncredited::Uncredited;
use msa_payment::application::payments::{PaymentSettings, Payments};
use msa_payment::application::wallets::Wallets;
use msa_payment::domain::{Catalog, PaymentKey, PaymentStatus, DEFAULT_CATALOG};
use msa_testkit::TestStores;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_credits_an_approval_the_process_manager_left_behind() {
    let mut all = vec![("sqlite", TestStores::sqlite(Upcasters::new()).await)];
    if let Some(pg) = TestStores::postgres(Upcasters::new()).await {
        all.push(("postgres", pg));
    }
    for (backend, stores) in all {
        msa_payment::migrator()
            .run(stores.read_models.pool())
            .await
            .unwrap();
        let wallets = Arc::new(Wallets::new(stores.events.clone(), 0));
        let settings = PaymentSettings {
            // The time the process manager gets before the sweeper steps in.
            hold_timeout: chrono::Duration::milliseconds(300),
            ..PaymentSettings::default()
        };
        let payments = Payments::new(
            stores.events.clone(),
            stores.read_models.clone(),
            Catalog::parse(DEFAULT_CATALOG).unwrap(),
            Arc::new(SandboxProvider::new(stores.read_models.clone())),
            wallets.clone(),
            settings,
        );
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
        runner.ensure_tables(&PaymentList).await.unwrap();
        runner.ensure_tables(&Holds).await.unwrap();
        runner.ensure_tables(&Uncredited).await.unwrap();
        tokio::spawn(async move {
            tokio::join!(
                runner.run(&PaymentList, stopped.clone()),
                runner.run(&Holds, stopped.clone()),
                runner.run(&Uncredited, stopped)
            );
        });

        let buyer = Uuid::now_v7();
        let (payment, _) = payments
            .request(buyer, "credits-100", "order-1")
            .await
            .unwrap();
        let approved = payments
            .confirm(
                buyer,
                payment.id,
                &PaymentKey::parse("approve-1").unwrap(),
                1000,
            )
            .await
            .unwrap();
        assert_eq!(approved.status, PaymentStatus::Approved, "{backend}");
        payments.sweep().await.unwrap();
        assert_eq!(
            wallets.wallet(buyer).await.unwrap().balance,
            0,
            "{backend}: not before the process manager had its time"
        );

        let deadline = Instant::now() + Duration::from_secs(10);
        while wallets.wallet(buyer).await.unwrap().balance != 100 {
            assert!(Instant::now() < deadline, "{backend}: never credited");
            tokio::time::sleep(Duration::from_millis(100)).await;
            payments.sweep().await.unwrap();
        }
        // Further rounds, and the process manager coming back late, grant nothing more.
        payments.sweep().await.unwrap();
        wallets
            .credit_purchase(buyer, payment.id, 100)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        payments.sweep().await.unwrap();
        let wallet = wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.entries), (100, 1), "{backend}");
    }
}
