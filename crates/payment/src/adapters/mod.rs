pub mod holds;
pub mod http;
pub mod ledger;
pub mod payment_list;
pub mod sandbox;
pub mod toss;
pub mod uncredited;
pub mod webhook_signature;
