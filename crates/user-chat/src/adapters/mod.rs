pub mod export_http;
pub mod http;
pub mod members;
pub mod open_spends;
pub mod profiles;
pub mod read_models;
pub mod remote;
pub mod remote_records;
