pub mod history;
pub mod http;
