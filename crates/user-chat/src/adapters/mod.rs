pub mod http;
pub mod members;
pub mod profiles;
pub mod read_models;
pub mod remote;
