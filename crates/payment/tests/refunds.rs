//! Refunds, provider cancellations, webhooks and the sweeper, through the payment use cases on
//! real stores (SQLite and PostgreSQL) with a scripted provider: a refund's credits are held in
//! the wallet atomically with deciding it, so concurrent refunds never turn spent credits into
//! money and no shortfall is ever recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use msa_kernel::{ProjectionRunner, Repository, Upcasters};
use msa_payment::adapters::holds::Holds;
use msa_payment::adapters::payment_list::PaymentList;
use msa_payment::adapters::uncredited::Uncredited;
use msa_payment::application::payments::{PaymentSettings, Payments};
use msa_payment::application::provider::{
    Cancellation, Confirmation, PaymentProvider, ProviderError, ProviderRecord,
};
use msa_payment::application::wallets::Wallets;
use msa_payment::application::PaymentsError;
use msa_payment::domain::{
    Catalog, HeldCredits, Payment, PaymentCommand, PaymentKey, PaymentStatus, ProviderVerdict,
    RefundReason, RefundRequest, SpendKey, Wallet, WalletError, WalletEvent, DEFAULT_CATALOG,
};
use msa_testkit::TestStores;
use uuid::Uuid;

/// A provider that approves every confirmation (but `timeout…` keys, which it charges and does
/// not answer), refunds unless the key starts with `refuse`, and counts its look-ups.
#[derive(Default)]
struct Scripted {
    /// payment key -> (order id, amount, refunded)
    charges: Mutex<HashMap<String, (String, i64, i64)>>,
    look_ups: AtomicUsize,
}

#[async_trait]
impl PaymentProvider for Scripted {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn confirm(&self, confirmation: &Confirmation) -> Result<ProviderVerdict, ProviderError> {
        self.charges.lock().unwrap().insert(
            confirmation.payment_key.clone(),
            (confirmation.order_id.clone(), confirmation.amount, 0),
        );
        if confirmation.payment_key.starts_with("timeout") {
            return Err(ProviderError::Timeout);
        }
        Ok(ProviderVerdict::Approved {
            payment_key: confirmation.payment_key.clone(),
            amount: confirmation.amount,
            approved_at: Utc::now(),
        })
    }

    async fn cancel(&self, cancellation: &Cancellation) -> Result<(), ProviderError> {
        if cancellation.payment_key.starts_with("refuse") {
            return Err(ProviderError::Refused {
                code: "NOT_CANCELABLE_PAYMENT".into(),
                message: "no".into(),
            });
        }
        if let Some(charge) = self
            .charges
            .lock()
            .unwrap()
            .get_mut(&cancellation.payment_key)
        {
            charge.2 += cancellation.amount;
        }
        Ok(())
    }

    async fn look_up(&self, payment_key: &str) -> Result<ProviderRecord, ProviderError> {
        self.look_ups.fetch_add(1, Ordering::SeqCst);
        let charges = self.charges.lock().unwrap();
        let Some((order_id, amount, refunded)) = charges.get(payment_key).cloned() else {
            return Ok(ProviderRecord::none());
        };
        Ok(ProviderRecord {
            verdict: ProviderVerdict::Approved {
                payment_key: payment_key.to_owned(),
                amount,
                approved_at: Utc::now(),
            },
            total_amount: amount,
            refunded_amount: refunded,
            approved_at: Some(Utc::now()),
            order_id: Some(order_id),
            currency: Some("KRW".into()),
        })
    }
}

struct Setup {
    stores: TestStores,
    payments: Arc<Payments>,
    wallets: Arc<Wallets>,
    provider: Arc<Scripted>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn setups(settings: PaymentSettings) -> Vec<(&'static str, Setup)> {
    let mut all = vec![("sqlite", TestStores::sqlite(Upcasters::new()).await)];
    if let Some(pg) = TestStores::postgres(Upcasters::new()).await {
        all.push(("postgres", pg));
    }
    let mut setups = Vec::new();
    for (backend, stores) in all {
        let provider = Arc::new(Scripted::default());
        // No free allowance: every message takes a purchased credit.
        let wallets = Arc::new(Wallets::new(stores.events.clone(), 0));
        let payments = Arc::new(Payments::new(
            stores.events.clone(),
            stores.read_models.clone(),
            Catalog::parse(DEFAULT_CATALOG).unwrap(),
            provider.clone(),
            wallets.clone(),
            settings.clone(),
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
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
        setups.push((
            backend,
            Setup {
                stores,
                payments,
                wallets,
                provider,
                _stop: stop,
            },
        ));
    }
    setups
}

impl Setup {
    /// An approved payment for 100 credits (1,000 KRW), credited to the buyer's wallet as the
    /// wallet process manager does.
    async fn bought(&self, buyer: Uuid, key: &str) -> Uuid {
        let (payment, _) = self
            .payments
            .request(buyer, "credits-100", key)
            .await
            .unwrap();
        let approved = self
            .payments
            .confirm(buyer, payment.id, &PaymentKey::parse(key).unwrap(), 1000)
            .await
            .unwrap();
        assert_eq!(approved.status, PaymentStatus::Approved);
        self.wallets
            .credit_purchase(buyer, payment.id, 100)
            .await
            .unwrap();
        payment.id
    }

    async fn spend(&self, buyer: Uuid, messages: usize) {
        for n in 0..messages {
            self.wallets
                .spend(buyer, &SpendKey::parse(&format!("message-{n}")).unwrap())
                .await
                .unwrap();
        }
    }

    async fn wallet_events(&self, buyer: Uuid) -> Vec<WalletEvent> {
        let stream = Repository::<Wallet>::stream_id(buyer);
        let recorded = self.stores.events.read_stream(&stream, 0).await.unwrap();
        recorded
            .iter()
            .map(|event| msa_kernel::repository::decode::<WalletEvent>(event).unwrap())
            .collect()
    }
}

fn no_shortfall(events: &[WalletEvent]) -> bool {
    !events.iter().any(
        |event| matches!(event, WalletEvent::CreditsRevoked { shortfall, .. } if *shortfall > 0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parallel_full_refunds_with_credits_for_one_one_succeeds_and_the_other_is_refused() {
    for (backend, setup) in setups(PaymentSettings::default()).await {
        let buyer = Uuid::now_v7();
        let first = setup.bought(buyer, "approve-1").await;
        let second = setup.bought(buyer, "approve-2").await;
        setup.spend(buyer, 100).await;
        let refunds = [first, second].map(|payment_id| {
            let payments = setup.payments.clone();
            tokio::spawn(async move {
                payments
                    .refund(buyer, false, payment_id, 1000, &changed_mind())
                    .await
            })
        });
        let mut refunded = 0;
        for outcome in futures::future::join_all(refunds).await {
            match outcome.unwrap() {
                Ok(refund) => {
                    assert_eq!(refund.status, "completed", "{backend}");
                    refunded += 1;
                }
                Err(PaymentsError::Wallet(WalletError::CreditsSpent { needed, .. })) => {
                    assert_eq!(needed, 100, "{backend}")
                }
                Err(other) => panic!("{backend}: {other:?}"),
            }
        }
        assert_eq!(refunded, 1, "{backend}: exactly one refund");
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!(
            (wallet.balance, wallet.held, wallet.debt),
            (0, 0, 0),
            "{backend}"
        );
        let events = setup.wallet_events(buyer).await;
        assert!(no_shortfall(&events), "{backend}: {events:?}");
        // The refused refund held nothing and reserved nothing: the other payment is whole.
        let views = [first, second].map(|id| setup.payments.payment(buyer, false, id));
        let views = futures::future::join_all(views).await;
        let statuses: Vec<_> = views.into_iter().map(|v| v.unwrap().status).collect();
        assert!(statuses.contains(&PaymentStatus::Refunded), "{backend}");
        assert!(statuses.contains(&PaymentStatus::Approved), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_credits_cannot_be_spent_and_a_refused_refund_gives_them_back() {
    for (backend, setup) in setups(PaymentSettings::default()).await {
        let buyer = Uuid::now_v7();
        let payment = setup.bought(buyer, "refuse-1").await;
        let refused = setup
            .payments
            .refund(buyer, false, payment, 1000, &changed_mind())
            .await;
        assert!(
            matches!(refused, Err(PaymentsError::ProviderRefused { .. })),
            "{backend}: {refused:?}"
        );
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.held), (100, 0), "{backend}");
        let kinds: Vec<_> = setup
            .wallet_events(buyer)
            .await
            .iter()
            .map(WalletEvent::kind)
            .collect();
        assert_eq!(
            kinds,
            ["credits_purchased", "credits_held", "hold_released"],
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_refund_of_spent_credits_is_a_debt_that_blocks_spending_until_repaid() {
    for (backend, setup) in setups(PaymentSettings::default()).await {
        let buyer = Uuid::now_v7();
        let payment = setup.bought(buyer, "approve-1").await;
        setup.spend(buyer, 70).await;
        let refund = setup
            .payments
            .refund(
                Uuid::now_v7(),
                true,
                payment,
                1000,
                &RefundReason::parse("chargeback").unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(refund.payment.status, PaymentStatus::Refunded, "{backend}");
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.debt), (0, 70), "{backend}");
        assert!(matches!(
            setup
                .wallets
                .spend(buyer, &SpendKey::parse("after").unwrap())
                .await,
            Err(PaymentsError::Wallet(WalletError::InDebt { debt: 70 }))
        ));
        // A purchase pays the debt first.
        setup.bought(buyer, "approve-2").await;
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.debt), (30, 0), "{backend}");
        setup
            .wallets
            .spend(buyer, &SpendKey::parse("after").unwrap())
            .await
            .unwrap();
        assert!(no_shortfall(&setup.wallet_events(buyer).await));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_at_the_provider_after_approval_takes_the_credits_back() {
    for (backend, setup) in setups(PaymentSettings::default()).await {
        let buyer = Uuid::now_v7();
        let payment = setup.bought(buyer, "approve-1").await;
        setup.spend(buyer, 40).await;
        // Reported twice (webhooks arrive at least once): taken back once.
        for _ in 0..2 {
            let view = setup
                .payments
                .report(payment, ProviderVerdict::Canceled)
                .await
                .unwrap();
            assert_eq!(view.status, PaymentStatus::Refunded, "{backend}");
        }
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.debt), (0, 40), "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_deliveries_are_checked_against_our_records_before_any_look_up() {
    for (backend, setup) in setups(PaymentSettings::default()).await {
        let buyer = Uuid::now_v7();
        let payment = setup.bought(buyer, "approve-1").await;
        // Another key than the payment's: refused, no look-up.
        let forged = setup
            .payments
            .report_from_provider(payment, "approve-forged", "DONE")
            .await;
        assert!(
            matches!(forged, Err(PaymentsError::DeliveryNotOurs)),
            "{backend}"
        );
        // Decided, and a delivery that could not change it: no look-up either.
        for _ in 0..20 {
            let view = setup
                .payments
                .report_from_provider(payment, "approve-1", "DONE")
                .await
                .unwrap();
            assert_eq!(view.status, PaymentStatus::Approved);
        }
        assert_eq!(
            setup.provider.look_ups.load(Ordering::SeqCst),
            0,
            "{backend}"
        );
        // A cancellation is looked up, and what the provider says counts.
        setup
            .provider
            .charges
            .lock()
            .unwrap()
            .get_mut("approve-1")
            .unwrap()
            .2 = 400;
        let view = setup
            .payments
            .report_from_provider(payment, "approve-1", "PARTIAL_CANCELED")
            .await
            .unwrap();
        assert_eq!(
            (view.status, view.refunded_amount),
            (PaymentStatus::PartiallyRefunded, 400),
            "{backend}"
        );
        assert_eq!(setup.wallets.wallet(buyer).await.unwrap().balance, 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_stranded_by_a_crash_is_released_by_the_sweeper_after_its_time() {
    let settings = PaymentSettings {
        hold_timeout: chrono::Duration::milliseconds(500),
        ..PaymentSettings::default()
    };
    for (backend, setup) in setups(settings).await {
        let buyer = Uuid::now_v7();
        let payment = setup.bought(buyer, "approve-1").await;
        // The process held the credits and died before the payment recorded the refund.
        let stranded = Uuid::now_v7();
        setup
            .wallets
            .hold_for_refund(buyer, payment, stranded, 100, false)
            .await
            .unwrap();
        setup.payments.sweep().await.unwrap();
        assert_eq!(
            setup.wallets.wallet(buyer).await.unwrap().held,
            100,
            "{backend}: not before its time"
        );
        let wallets = setup.wallets.clone();
        let payments = setup.payments.clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            payments.sweep().await.unwrap();
            let wallet = wallets.wallet(buyer).await.unwrap();
            if (wallet.balance, wallet.held) == (100, 0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend}: {wallet:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // A completed refund's hold is settled, never released by the sweeper.
        setup
            .payments
            .refund(buyer, false, payment, 1000, &changed_mind())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        setup.payments.sweep().await.unwrap();
        let wallet = setup.wallets.wallet(buyer).await.unwrap();
        assert_eq!((wallet.balance, wallet.held), (0, 0), "{backend}");
    }
}

/// The payment decided a refund and the wallet never followed (the process died right after the
/// verdict and the wallet process manager's event was dead-lettered): the sweeper settles a
/// completed refund's hold and releases a failed one's, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_whose_refund_was_decided_is_finished_by_the_sweeper() {
    let settings = PaymentSettings {
        hold_timeout: chrono::Duration::milliseconds(500),
        ..PaymentSettings::default()
    };
    for (backend, setup) in setups(settings).await {
        let payments = Repository::<Payment>::new(setup.stores.events.clone());
        let mut decided = Vec::new();
        for completes in [true, false] {
            let buyer = Uuid::now_v7();
            let payment = setup.bought(buyer, &format!("approve-{completes}")).await;
            let refund_id = Uuid::now_v7();
            setup
                .wallets
                .hold_for_refund(buyer, payment, refund_id, 100, false)
                .await
                .unwrap();
            let stream = Repository::<Payment>::stream_id(payment);
            let meta = msa_kernel::EventMetadata::new_conversation(None);
            let request = PaymentCommand::RequestRefund(RefundRequest {
                refund_id,
                amount: 1000,
                reason: changed_mind(),
                caller: buyer,
                caller_is_admin: false,
                now: Utc::now(),
                window: chrono::Duration::days(7),
                held: Some(HeldCredits {
                    credits: 100,
                    valid_until: Utc::now() + chrono::Duration::seconds(30),
                }),
            });
            payments.execute(&stream, &request, &meta).await.unwrap();
            let verdict = if completes {
                PaymentCommand::CompleteRefund { refund_id }
            } else {
                PaymentCommand::FailRefund {
                    refund_id,
                    code: "NOT_CANCELABLE_PAYMENT".into(),
                    message: "no".into(),
                }
            };
            payments.execute(&stream, &verdict, &meta).await.unwrap();
            assert_eq!(setup.wallets.wallet(buyer).await.unwrap().held, 100);
            decided.push((buyer, if completes { (0, 0) } else { (100, 0) }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for (buyer, expected) in decided {
            loop {
                setup.payments.sweep().await.unwrap();
                let wallet = setup.wallets.wallet(buyer).await.unwrap();
                if (wallet.balance, wallet.held) == expected {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{backend}: {wallet:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            setup.payments.sweep().await.unwrap();
            let ends = setup
                .wallet_events(buyer)
                .await
                .into_iter()
                .filter(|event| {
                    matches!(
                        event,
                        WalletEvent::HoldSettled { .. } | WalletEvent::HoldReleased { .. }
                    )
                })
                .count();
            assert_eq!(ends, 1, "{backend}: the hold ended once");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_payments_are_capped_per_user_and_the_sweep_reaches_every_unknown_one() {
    let settings = PaymentSettings {
        open_payments_per_user: 60,
        ..PaymentSettings::default()
    };
    for (backend, setup) in setups(settings).await {
        // Two users with 110 open payments older than a third user's timed-out one.
        for user in [Uuid::now_v7(), Uuid::now_v7()] {
            for n in 0..55 {
                setup
                    .payments
                    .request(user, "credits-100", &format!("k-{n}"))
                    .await
                    .unwrap();
            }
        }
        let hoarder = Uuid::now_v7();
        for n in 0..60 {
            setup
                .payments
                .request(hoarder, "credits-100", &format!("k-{n}"))
                .await
                .unwrap();
        }
        let over = setup.payments.request(hoarder, "credits-100", "k-60").await;
        assert!(
            matches!(over, Err(PaymentsError::TooManyOpenPayments(60))),
            "{backend}: {over:?}"
        );
        // A retry of a request made is still answered.
        setup
            .payments
            .request(hoarder, "credits-100", "k-0")
            .await
            .unwrap();
        let buyer = Uuid::now_v7();
        let (payment, _) = setup
            .payments
            .request(buyer, "credits-100", "mine")
            .await
            .unwrap();
        let unknown = setup
            .payments
            .confirm(
                buyer,
                payment.id,
                &PaymentKey::parse("timeout-1").unwrap(),
                1000,
            )
            .await
            .unwrap();
        assert_eq!(unknown.status, PaymentStatus::Unknown);
        // Rounds of the sweeper (the list shows the payment unknown a moment after it is).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            setup.payments.sweep().await.unwrap();
            let swept = setup
                .payments
                .payment(buyer, false, payment.id)
                .await
                .unwrap();
            if swept.status == PaymentStatus::Approved {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{backend}: {swept:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The reason of a buyer's own refund.
fn changed_mind() -> RefundReason {
    RefundReason::parse("changed my mind").unwrap()
}
