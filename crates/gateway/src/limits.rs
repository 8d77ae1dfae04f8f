//! Rate limits per client address and per user (token buckets, the `governor` crate): over the
//! limit, 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use msa_http::Problem;
use uuid::Uuid;

pub struct Limits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl Limits {
    /// Requests per second allowed, each with a burst of twice that.
    pub fn new(per_address: NonZeroU32, per_user: NonZeroU32) -> Self {
        let quota = |rate: NonZeroU32| {
            Quota::per_second(rate).allow_burst(rate.saturating_mul(NonZeroU32::new(2).unwrap()))
        };
        Self {
            per_address: RateLimiter::keyed(quota(per_address)),
            per_user: RateLimiter::keyed(quota(per_user)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check(&self, address: IpAddr, user: Option<Uuid>) -> Result<(), Problem> {
        let refuse = |not_until: governor::NotUntil<_>, who: &str| {
            let wait = not_until.wait_time_from(self.clock.now());
            Problem::too_many_requests(
                format!("too many requests from this {who}; slow down"),
                wait.as_secs() + 1,
            )
        };
        self.per_address
            .check_key(&address)
            .map_err(|n| refuse(n, "address"))?;
        if let Some(user) = user {
            self.per_user
                .check_key(&user)
                .map_err(|n| refuse(n, "user"))?;
        }
        Ok(())
    }

    /// Forgets idle keys (call now and then so the maps do not grow without end).
    pub fn shrink(&self) {
        self.per_address.retain_recent();
        self.per_user.retain_recent();
    }
}
