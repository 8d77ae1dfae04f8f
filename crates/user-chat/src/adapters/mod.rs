pub mod http;
pub mod members;
pub mod open_spends;
pub mod profiles;
pub mod read_models;
pub mod remote;
