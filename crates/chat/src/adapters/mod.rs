pub mod history;
pub mod http;
pub mod live;
pub mod search;
