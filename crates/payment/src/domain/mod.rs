//! The payment context's model: products, the `Payment` aggregate and its state machine, and the
//! `Wallet` aggregate with its double-entry ledger of credits.

mod money;
mod payment;
mod product;
mod wallet;

pub use money::{Money, Settlement};
pub use payment::{
    credits_for_refund, HeldCredits, Payment, PaymentCommand, PaymentError, PaymentEvent,
    PaymentStatus, ProviderVerdict, RefundRequest, RECORD_MISMATCH,
};
pub use product::{Catalog, Product, DEFAULT_CATALOG};
pub use wallet::{Account, FundedBy, Hold, Wallet, WalletCommand, WalletError, WalletEvent};
