//! The payment context's model: products, the `Payment` aggregate and its state machine, and the
//! `Wallet` aggregate with its double-entry ledger of credits.

mod keys;
mod money;
mod payment;
mod product;
mod refund_reason;
mod wallet;

pub use keys::{PaymentKey, SpendKey, MAX_KEY_BYTES};
pub use money::{Money, Settlement};
pub use payment::{
    credits_for_refund, HeldCredits, Payment, PaymentCommand, PaymentError, PaymentEvent,
    PaymentStatus, ProviderVerdict, RefundRequest, RECORD_MISMATCH,
};
pub use product::{Catalog, Product, DEFAULT_CATALOG};
pub use refund_reason::RefundReason;
pub use wallet::{Account, FundedBy, Hold, Wallet, WalletCommand, WalletError, WalletEvent};
