pub mod history;
pub mod http;
pub mod invites;
pub mod live;
pub mod live_frames;
pub mod live_limits;
pub mod live_routes;
pub mod search;
