//! The payment context's model: products, the `Payment` aggregate and its state machine, and the
//! `Wallet` aggregate with its double-entry ledger of credits.

mod payment;
mod product;
mod wallet;

pub use payment::{
    Payment, PaymentCommand, PaymentError, PaymentEvent, PaymentStatus, ProviderVerdict,
};
pub use product::{Catalog, Product, DEFAULT_CATALOG};
pub use wallet::{Account, FundedBy, Wallet, WalletCommand, WalletError, WalletEvent};
