//! The `Payment` and `Wallet` aggregates: given past events, when a command, then events or a
//! refusal.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use msa_kernel::testing::given;
use msa_payment::domain::{
    FundedBy, HeldCredits, Payment, PaymentCommand, PaymentError, PaymentEvent, PaymentKey,
    Product, ProviderVerdict, RefundReason, RefundRequest, SpendKey, Wallet, WalletCommand,
    WalletError, WalletEvent, RECORD_MISMATCH,
};
use uuid::Uuid;

const BUYER: Uuid = Uuid::from_u128(1);
const OTHER: Uuid = Uuid::from_u128(2);
const REFUND: Uuid = Uuid::from_u128(10);

fn at(minutes: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn requested() -> PaymentEvent {
    PaymentEvent::PaymentRequested {
        order_id: "order-1".into(),
        user_id: BUYER,
        product_id: "credits-100".into(),
        credits: 100,
        amount: 1000,
        currency: "KRW".into(),
        provider: "sandbox".into(),
        requested_at: at(0),
    }
}

fn sent() -> PaymentEvent {
    PaymentEvent::ConfirmationSent {
        payment_key: "approve-1".into(),
    }
}

fn approved() -> PaymentEvent {
    PaymentEvent::PaymentApproved {
        payment_key: "approve-1".into(),
        amount: 1000,
        approved_at: at(1),
    }
}

fn refund(amount: i64, caller: Uuid, admin: bool, now: i64) -> PaymentCommand {
    PaymentCommand::RequestRefund(RefundRequest {
        refund_id: REFUND,
        amount,
        reason: RefundReason::parse("changed my mind").unwrap(),
        caller,
        caller_is_admin: admin,
        now: at(now),
        window: Duration::days(7),
        held: None,
    })
}

#[test]
fn a_request_records_the_products_price_and_credits() {
    given::<Payment>([])
        .when(PaymentCommand::Request {
            order_id: "order-1".into(),
            user_id: BUYER,
            product: Product {
                id: "credits-100".into(),
                credits: 100,
                amount: 1000,
                currency: "KRW".into(),
            },
            provider: "sandbox".into(),
            at: at(0),
        })
        .then([requested()]);
}

#[test]
fn confirming_checks_owner_and_amount_then_the_outcome_is_unknown_until_the_provider_answers() {
    let confirm = |caller, amount| PaymentCommand::SendForConfirmation {
        caller,
        payment_key: PaymentKey::parse("approve-1").unwrap(),
        amount,
    };
    given::<Payment>([requested()])
        .when(confirm(BUYER, 999))
        .then_error(|e| *e == PaymentError::AmountMismatch { expected: 1000 });
    given::<Payment>([requested()])
        .when(confirm(OTHER, 1000))
        .then_error(|e| *e == PaymentError::NotYours);
    given::<Payment>([requested()])
        .when(confirm(BUYER, 1000))
        .then([sent()]);
    // Never sent twice: an unknown outcome is looked up instead.
    given::<Payment>([requested(), sent()])
        .when(confirm(BUYER, 1000))
        .then_error(|e| *e == PaymentError::OutcomePending);
    given::<Payment>([requested(), sent(), approved()])
        .when(confirm(BUYER, 1000))
        .then_error(|e| matches!(e, PaymentError::NotConfirmable("approved")));
}

#[test]
fn a_verdict_decides_an_open_payment_once_and_late_reports_change_nothing() {
    let verdict = ProviderVerdict::Approved {
        payment_key: "approve-1".into(),
        amount: 1000,
        approved_at: at(1),
    };
    given::<Payment>([requested(), sent()])
        .when(PaymentCommand::Resolve(verdict.clone()))
        .then([approved()]);
    given::<Payment>([requested(), sent(), approved()])
        .when(PaymentCommand::Resolve(verdict))
        .then([]);
    given::<Payment>([requested(), sent(), approved()])
        .when(PaymentCommand::Resolve(ProviderVerdict::Canceled))
        .then([]);
    given::<Payment>([requested(), sent()])
        .when(PaymentCommand::Resolve(ProviderVerdict::Pending))
        .then([]);
    // Charged a different amount than ordered: recorded for an operator, and the payment
    // fails (its credits are never granted).
    let charged_five = ProviderVerdict::Approved {
        payment_key: "approve-1".into(),
        amount: 5,
        approved_at: at(1),
    };
    let mismatch = PaymentEvent::MismatchFound {
        ours: "order of 1000 KRW".into(),
        provider: "approved 5".into(),
    };
    given::<Payment>([requested(), sent()])
        .when(PaymentCommand::Resolve(charged_five.clone()))
        .then([
            mismatch.clone(),
            PaymentEvent::PaymentFailed {
                code: RECORD_MISMATCH.into(),
                message: "the provider approved 5, the order is 1000 KRW".into(),
            },
        ]);
    // A late report of another amount for an approved payment is recorded, once.
    given::<Payment>([requested(), sent(), approved()])
        .when(PaymentCommand::Resolve(charged_five.clone()))
        .then([mismatch.clone()]);
    given::<Payment>([requested(), sent(), approved(), mismatch])
        .when(PaymentCommand::Resolve(charged_five))
        .then([]);
}

#[test]
fn a_refund_with_held_credits_records_them_and_refuses_a_stale_or_wrong_hold() {
    let held = |credits, minutes| {
        let mut command = refund(600, BUYER, false, 5);
        if let PaymentCommand::RequestRefund(request) = &mut command {
            request.held = Some(HeldCredits {
                credits,
                valid_until: at(minutes),
            });
        }
        command
    };
    given::<Payment>([requested(), sent(), approved()])
        .when(held(60, 6))
        .then([PaymentEvent::RefundRequested {
            refund_id: REFUND,
            amount: 600,
            reason: "changed my mind".into(),
            by: BUYER,
            held_credits: Some(60),
        }]);
    // Past its time the sweeper may have released the hold.
    given::<Payment>([requested(), sent(), approved()])
        .when(held(60, 4))
        .then_error(|e| *e == PaymentError::HoldOutdated);
    given::<Payment>([requested(), sent(), approved()])
        .when(held(59, 6))
        .then_error(|e| *e == PaymentError::HoldOutdated);
    // Impossible amounts are refused, never wrapped.
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(i64::MAX, BUYER, false, 5))
        .then_error(|e| *e == PaymentError::RefundExceedsRemaining { remaining: 1000 });
}

#[test]
fn only_unconfirmed_payments_expire_and_only_after_the_expiry() {
    let expire = |now| PaymentCommand::Expire {
        now: at(now),
        after: Duration::minutes(30),
    };
    given::<Payment>([requested()]).when(expire(29)).then([]);
    given::<Payment>([requested()])
        .when(expire(30))
        .then([PaymentEvent::PaymentExpired]);
    given::<Payment>([requested(), sent()])
        .when(expire(90))
        .then([]);
}

#[test]
fn refunds_never_exceed_the_approved_amount_with_reservations_counted() {
    let reserved = PaymentEvent::RefundRequested {
        refund_id: REFUND,
        amount: 600,
        reason: "changed my mind".into(),
        by: BUYER,
        held_credits: None,
    };
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(600, BUYER, false, 5))
        .then([reserved.clone()]);
    // 600 is reserved: only 400 remain, even before the provider answered.
    given::<Payment>([requested(), sent(), approved(), reserved.clone()])
        .when(refund(401, BUYER, false, 5))
        .then_error(|e| *e == PaymentError::RefundExceedsRemaining { remaining: 400 });
    given::<Payment>([requested(), sent(), approved(), reserved.clone()])
        .when(PaymentCommand::CompleteRefund { refund_id: REFUND })
        .then([PaymentEvent::RefundCompleted {
            refund_id: REFUND,
            amount: 600,
            refunded_total: 600,
        }]);
    // A refund the provider refused frees its reservation.
    given::<Payment>([requested(), sent(), approved(), reserved])
        .when(PaymentCommand::FailRefund {
            refund_id: REFUND,
            code: "X".into(),
            message: "no".into(),
        })
        .then([PaymentEvent::RefundFailed {
            refund_id: REFUND,
            amount: 600,
            code: "X".into(),
            message: "no".into(),
        }]);
    given::<Payment>([requested(), sent()])
        .when(refund(100, BUYER, false, 5))
        .then_error(|e| matches!(e, PaymentError::NotRefundable("unknown")));
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(0, BUYER, false, 5))
        .then_error(|e| *e == PaymentError::InvalidRefundAmount);
}

#[test]
fn owners_refund_within_the_window_and_admins_any_time() {
    let eight_days = 8 * 24 * 60;
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(100, BUYER, false, eight_days))
        .then_error(|e| *e == PaymentError::RefundWindowClosed);
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(100, OTHER, false, 5))
        .then_error(|e| *e == PaymentError::NotYours);
    given::<Payment>([requested(), sent(), approved()])
        .when(refund(100, OTHER, true, eight_days))
        .then([PaymentEvent::RefundRequested {
            refund_id: REFUND,
            amount: 100,
            reason: "changed my mind".into(),
            by: OTHER,
            held_credits: None,
        }]);
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn spend(key: &str, today: u32) -> WalletCommand {
    WalletCommand::Spend {
        spend_key: SpendKey::parse(key).unwrap(),
        today: day(today),
        allowance: 2,
    }
}

fn spent(entry: u64, key: &str, funded_by: FundedBy, d: u32) -> WalletEvent {
    WalletEvent::MessageSpent {
        entry,
        spend_key: key.into(),
        funded_by,
        day: day(d),
    }
}

#[test]
fn the_free_allowance_is_spent_first_then_credits_and_it_renews_each_day() {
    let purchased = WalletEvent::CreditsPurchased {
        entry: 1,
        payment_id: Uuid::from_u128(7),
        credits: 1,
    };
    let history = [
        purchased.clone(),
        spent(2, "a", FundedBy::Allowance, 27),
        spent(3, "b", FundedBy::Allowance, 27),
    ];
    given::<Wallet>(history.clone())
        .when(spend("c", 27))
        .then([spent(4, "c", FundedBy::Credits, 27)]);
    given::<Wallet>(history.clone())
        .when(spend("c", 28))
        .then([spent(4, "c", FundedBy::Allowance, 28)]);
    let mut broke = history.to_vec();
    broke.push(spent(4, "c", FundedBy::Credits, 27));
    given::<Wallet>(broke.clone())
        .when(spend("d", 27))
        .then_error(|e| *e == WalletError::OutOfCredits);
    // A refunded spend gives its credit back.
    broke.push(WalletEvent::SpendRefunded {
        entry: 5,
        spend_key: "c".into(),
        funded_by: FundedBy::Credits,
        day: day(27),
    });
    given::<Wallet>(broke)
        .when(spend("d", 27))
        .then([spent(6, "d", FundedBy::Credits, 27)]);
}

#[test]
fn a_revocation_takes_what_the_balance_holds_and_records_the_shortfall() {
    let purchased = WalletEvent::CreditsPurchased {
        entry: 1,
        payment_id: Uuid::from_u128(7),
        credits: 3,
    };
    given::<Wallet>([purchased])
        .when(WalletCommand::Revoke {
            payment_id: Uuid::from_u128(7),
            refund_id: REFUND,
            credits: 5,
        })
        .then([WalletEvent::CreditsRevoked {
            entry: 2,
            payment_id: Uuid::from_u128(7),
            refund_id: REFUND,
            credits: 3,
            shortfall: 2,
        }]);
}

fn purchased(entry: u64, credits: u64) -> WalletEvent {
    WalletEvent::CreditsPurchased {
        entry,
        payment_id: Uuid::from_u128(20),
        credits,
    }
}

fn hold(credits: u64, owe_the_rest: bool) -> WalletCommand {
    WalletCommand::HoldForRefund {
        payment_id: Uuid::from_u128(20),
        refund_id: REFUND,
        credits,
        owe_the_rest,
        at: at(0),
    }
}

#[test]
fn a_refund_holds_its_credits_then_settles_or_releases_them_never_a_shortfall() {
    let held = WalletEvent::CreditsHeld {
        entry: 2,
        payment_id: Uuid::from_u128(20),
        refund_id: REFUND,
        credits: 10,
        owed: 0,
        held_at: at(0),
    };
    given::<Wallet>([purchased(1, 10)])
        .when(hold(10, false))
        .then([held.clone()]);
    // Held credits are not the balance: a second refund of them, or a spend, is refused.
    given::<Wallet>([purchased(1, 10), held.clone()])
        .when(WalletCommand::HoldForRefund {
            payment_id: Uuid::from_u128(21),
            refund_id: Uuid::from_u128(11),
            credits: 10,
            owe_the_rest: false,
            at: at(0),
        })
        .then_error(|e| {
            *e == WalletError::CreditsSpent {
                needed: 10,
                available: 0,
            }
        });
    given::<Wallet>([purchased(1, 10), held.clone()])
        .when(WalletCommand::Spend {
            spend_key: SpendKey::parse("m").unwrap(),
            today: day(27),
            allowance: 0,
        })
        .then_error(|e| *e == WalletError::OutOfCredits);
    given::<Wallet>([purchased(1, 10), held.clone()])
        .when(hold(10, false))
        .then([]);
    given::<Wallet>([purchased(1, 10), held.clone()])
        .when(WalletCommand::SettleHold { refund_id: REFUND })
        .then([WalletEvent::HoldSettled {
            entry: 3,
            payment_id: Uuid::from_u128(20),
            refund_id: REFUND,
            credits: 10,
        }]);
    given::<Wallet>([purchased(1, 10), held])
        .when(WalletCommand::ReleaseHold { refund_id: REFUND })
        .then([WalletEvent::HoldReleased {
            entry: 3,
            payment_id: Uuid::from_u128(20),
            refund_id: REFUND,
            credits: 10,
        }]);
    given::<Wallet>([purchased(1, 10)])
        .when(WalletCommand::SettleHold { refund_id: REFUND })
        .then([]);
}

#[test]
fn what_an_admin_refund_takes_beyond_the_balance_is_a_debt_that_blocks_spending_until_repaid() {
    let held = WalletEvent::CreditsHeld {
        entry: 2,
        payment_id: Uuid::from_u128(20),
        refund_id: REFUND,
        credits: 4,
        owed: 6,
        held_at: at(0),
    };
    given::<Wallet>([purchased(1, 4)])
        .when(hold(10, true))
        .then([held.clone()]);
    let settled = WalletEvent::HoldSettled {
        entry: 3,
        payment_id: Uuid::from_u128(20),
        refund_id: REFUND,
        credits: 4,
    };
    let owed = WalletEvent::DebtRecorded {
        entry: 4,
        payment_id: Uuid::from_u128(20),
        refund_id: REFUND,
        credits: 6,
    };
    given::<Wallet>([purchased(1, 4), held.clone()])
        .when(WalletCommand::SettleHold { refund_id: REFUND })
        .then([settled.clone(), owed.clone()]);
    let in_debt = [purchased(1, 4), held, settled, owed];
    given::<Wallet>(in_debt.clone())
        .when(WalletCommand::Spend {
            spend_key: SpendKey::parse("m").unwrap(),
            today: day(27),
            allowance: 20,
        })
        .then_error(|e| *e == WalletError::InDebt { debt: 6 });
    // A purchase pays the debt first.
    given::<Wallet>(in_debt)
        .when(WalletCommand::Purchase {
            payment_id: Uuid::from_u128(22),
            credits: 100,
        })
        .then([
            WalletEvent::CreditsPurchased {
                entry: 5,
                payment_id: Uuid::from_u128(22),
                credits: 100,
            },
            WalletEvent::DebtRepaid {
                entry: 6,
                payment_id: Uuid::from_u128(22),
                credits: 6,
            },
        ]);
    // Credits never wrap.
    given::<Wallet>([purchased(1, u64::MAX)])
        .when(WalletCommand::Purchase {
            payment_id: Uuid::from_u128(22),
            credits: 1,
        })
        .then_error(|e| *e == WalletError::TooManyCredits);
}
