//! Rate limits at the edge, one design for both deployments (the gateway in front of the
//! services, the single server in front of itself): requests per client address and per user,
//! and a much smaller allowance per address for the requests that hash a password (sign-up,
//! log-in, password change), whose cost (argon2, tens of milliseconds of a core each) would let
//! one address slow every log-in down. Token buckets from the `governor` crate; over a limit,
//! 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::http::Method;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::Problem;

#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    /// Requests per second per client address (bursts of twice that).
    pub per_address: NonZeroU32,
    /// Requests per second per signed-in user (bursts of twice that).
    pub per_user: NonZeroU32,
    /// Password-hashing requests per minute per client address (bursts of the same number).
    pub password_attempts_per_minute: NonZeroU32,
    /// Chat streams (WebSockets) one client address may hold open, authenticated or not.
    pub streams_per_address: usize,
}

pub struct RateLimits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<Uuid>,
    password_attempts: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

/// Whether `method path` hashes a password (the requests [`RateLimits::check_password_attempt`]
/// counts).
pub fn hashes_a_password(method: &Method, path: &str) -> bool {
    method == Method::POST && (path == "/v1/users" || path == "/v1/auth/token")
        || method == Method::PUT && path == "/v1/users/me/password"
        || method == Method::DELETE && path == "/v1/users/me"
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        let per_second = |rate: NonZeroU32| {
            Quota::per_second(rate).allow_burst(rate.saturating_mul(NonZeroU32::new(2).unwrap()))
        };
        Self {
            per_address: RateLimiter::keyed(per_second(settings.per_address)),
            per_user: RateLimiter::keyed(per_second(settings.per_user)),
            password_attempts: RateLimiter::keyed(Quota::per_minute(
                settings.password_attempts_per_minute,
            )),
            clock: DefaultClock::default(),
        }
    }

    fn refuse(
        &self,
        not_until: governor::NotUntil<governor::clock::QuantaInstant>,
        what: &str,
    ) -> Problem {
        let wait = not_until.wait_time_from(self.clock.now());
        Problem::too_many_requests(format!("too many {what}; slow down"), wait.as_secs() + 1)
    }

    /// Counts a request of `address` (and of `user`, when signed in).
    pub fn check(&self, address: IpAddr, user: Option<Uuid>) -> Result<(), Problem> {
        self.per_address
            .check_key(&address)
            .map_err(|n| self.refuse(n, "requests from this address"))?;
        if let Some(user) = user {
            self.per_user
                .check_key(&user)
                .map_err(|n| self.refuse(n, "requests from this user"))?;
        }
        Ok(())
    }

    /// Counts a request that hashes a password.
    pub fn check_password_attempt(&self, address: IpAddr) -> Result<(), Problem> {
        self.password_attempts
            .check_key(&address)
            .map_err(|n| self.refuse(n, "sign-ups and log-ins from this address"))
    }

    /// Both checks for `method path`.
    pub fn check_request(
        &self,
        method: &Method,
        path: &str,
        address: IpAddr,
        user: Option<Uuid>,
    ) -> Result<(), Problem> {
        self.check(address, user)?;
        if hashes_a_password(method, path) {
            self.check_password_attempt(address)?;
        }
        Ok(())
    }

    /// Forgets idle keys (call now and then so the maps do not grow without end).
    pub fn shrink(&self) {
        self.per_address.retain_recent();
        self.per_user.retain_recent();
        self.password_attempts.retain_recent();
    }
}

/// A budget of some action per user and minute (chat's edits and reactions, which cost no
/// credit): over it, 429 with `Retry-After`.
pub struct PerUserBudget {
    what: &'static str,
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl PerUserBudget {
    /// `per_minute` actions a minute, in bursts of up to that many.
    pub fn per_minute(what: &'static str, per_minute: NonZeroU32) -> Self {
        Self {
            what,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }

    pub fn spend(&self, user: Uuid) -> Result<(), Problem> {
        self.limiter.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Problem::too_many_requests(
                format!("too many {} a minute; slow down", self.what),
                wait.as_secs() + 1,
            )
        })?;
        // Keys of users idle a while are forgotten now and then.
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_per_user_refuses_past_its_size_and_other_users_go_on() {
        let budget = PerUserBudget::per_minute("edits", NonZeroU32::new(2).unwrap());
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        budget.spend(ada).unwrap();
        budget.spend(ada).unwrap();
        assert_eq!(budget.spend(ada).unwrap_err().status, 429);
        budget.spend(bob).unwrap();
    }

    #[test]
    fn password_attempts_are_limited_apart_from_other_requests() {
        let limits = RateLimits::new(RateLimitSettings {
            per_address: NonZeroU32::new(1000).unwrap(),
            per_user: NonZeroU32::new(1000).unwrap(),
            password_attempts_per_minute: NonZeroU32::new(3).unwrap(),
            streams_per_address: 32,
        });
        let address = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..3 {
            limits
                .check_request(&Method::POST, "/v1/auth/token", address, None)
                .unwrap();
        }
        let refused = limits
            .check_request(&Method::POST, "/v1/users", address, None)
            .unwrap_err();
        assert_eq!(refused.status, 429);
        // Other requests of that address, and another address's log-ins, go on.
        limits
            .check_request(&Method::GET, "/v1/rooms", address, None)
            .unwrap();
        limits
            .check_request(
                &Method::POST,
                "/v1/auth/token",
                IpAddr::from([192, 0, 2, 2]),
                None,
            )
            .unwrap();
    }
}
