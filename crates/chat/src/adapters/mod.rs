pub mod history;
pub mod http;
pub mod live;
pub mod live_routes;
pub mod search;
