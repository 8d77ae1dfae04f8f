//! The payment context (a core service): payments for credit packs through a provider, refunds,
//! provider webhooks, and one credit wallet per user. It knows users only by id (the access
//! token's `sub`) and references no other context.
//!
//! - [`domain`]: products, the `Payment` aggregate (its state machine) and the `Wallet` aggregate
//!   (a double-entry ledger of credits with a daily free allowance);
//! - [`application`]: the use cases and the provider port; the process manager that credits
//!   wallets as payments are approved and refunded;
//! - [`adapters`]: HTTP, the projections (payments, ledger), the sandbox and Toss providers.

pub mod adapters;
pub mod application;
pub mod domain;

/// What other services may use of the payment context: its events and the wallet DTOs (the
/// architecture test holds application services to this module).
pub mod contract {
    pub use crate::application::payments::export::{
        ExportedPayment, ExportedRefund, PaymentRecordPage, PaymentRecords,
    };
    pub use crate::application::views::LedgerEntry;
    pub use crate::application::wallets::{Spent, WalletView};
    pub use crate::domain::{FundedBy, PaymentEvent, SpendKey, Wallet, WalletEvent};
}

/// The payment context's own query-side tables (versions 4000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The payment context, as the composition root sees it (`msa_context`).
pub struct Context;

impl msa_context::BoundedContext for Context {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        migrator()
    }

    fn projections(
        &self,
        _backend: msa_sql::Backend,
    ) -> Vec<std::sync::Arc<dyn msa_kernel::Projection<msa_sql::Tx>>> {
        vec![
            std::sync::Arc::new(adapters::payment_list::PaymentList),
            std::sync::Arc::new(adapters::ledger::Ledger),
            std::sync::Arc::new(adapters::holds::Holds),
            std::sync::Arc::new(adapters::uncredited::Uncredited),
        ]
    }

    fn api_document(&self) -> utoipa::openapi::OpenApi {
        <adapters::http::PaymentApiDoc as utoipa::OpenApi>::openapi()
    }

    fn events(&self, document: &mut serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let mut events = msa_http::asyncapi::event_payloads::<domain::PaymentEvent>(
            <domain::PaymentEvent as msa_kernel::DomainEvent>::CONTEXT,
            document,
        );
        events.extend(msa_http::asyncapi::event_payloads::<domain::WalletEvent>(
            <domain::WalletEvent as msa_kernel::DomainEvent>::CONTEXT,
            document,
        ));
        events
    }
}
