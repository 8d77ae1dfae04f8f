//! Slows down password guessing without handing strangers a way to lock owners out.
//!
//! - Per account **and client address**: after 5 failed logins, each further failure from that
//!   address locks that address out of that account for twice as long as the last (1 s, 2 s,
//!   4 s … up to 15 min). The owner, from another address, is not affected.
//! - Per account, from all addresses together: at most 100 failures in 15 minutes; past that the
//!   account takes no login from anyone until the 15 minutes are over. One address cannot reach
//!   it (its own locks allow about 15 failures in 15 minutes, and the edge's limit on password
//!   attempts per address fewer still): only guessing spread over many addresses can.
//!
//! Kept in memory, per process: a deployment with several user-service instances should route
//! logins for one email to one instance, or accept a few more guesses per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account and address before the first lock.
const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(1);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures an account takes from all addresses together within [`ACCOUNT_WINDOW`].
pub const ACCOUNT_CEILING: u32 = 100;
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked entries, those whose lock or window has ended are dropped.
const PRUNE_ABOVE: usize = 100_000;

/// Who tries: an account (its normalized email) from a client address (`None`: unknown).
type Attempt = (String, Option<IpAddr>);

#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pairs: HashMap<Attempt, Failures>,
    accounts: HashMap<String, Window>,
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

struct Window {
    started: Instant,
    failures: u32,
}

fn seconds_until(until: Instant) -> u64 {
    (until - Instant::now()).as_secs_f64().ceil().max(1.0) as u64
}

impl LoginThrottle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds)` while `account` is locked for `client` (or for everyone).
    pub fn check(&self, account: &str, client: Option<IpAddr>) -> Result<(), u64> {
        let state = self.state();
        let now = Instant::now();
        if let Some(window) = state.accounts.get(account) {
            let ends = window.started + ACCOUNT_WINDOW;
            if window.failures >= ACCOUNT_CEILING && ends > now {
                return Err(seconds_until(ends));
            }
        }
        match state
            .pairs
            .get(&(account.to_owned(), client))
            .and_then(|f| f.locked_until)
        {
            Some(until) if until > now => Err(seconds_until(until)),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, account: &str, client: Option<IpAddr>) {
        let mut state = self.state();
        let now = Instant::now();
        if state.pairs.len() > PRUNE_ABOVE {
            state
                .pairs
                .retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        if state.accounts.len() > PRUNE_ABOVE {
            state
                .accounts
                .retain(|_, w| w.started + ACCOUNT_WINDOW > now);
        }
        let window = state.accounts.entry(account.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if window.started + ACCOUNT_WINDOW <= now {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures += 1;
        let failures = state
            .pairs
            .entry((account.to_owned(), client))
            .or_insert(Failures {
                count: 0,
                locked_until: None,
            });
        failures.count += 1;
        if failures.count >= FREE_FAILURES {
            let doublings = (failures.count - FREE_FAILURES).min(20);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(LONGEST_LOCK);
            failures.locked_until = Some(now + lock);
        }
    }

    /// A success from `client` ends that address's locks on the account. The account's window
    /// stays: the owner logging in does not give guessers elsewhere a fresh ceiling.
    pub fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        self.state().pairs.remove(&(account.to_owned(), client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_address_locks_after_five_failures_and_the_owner_elsewhere_is_not_locked() {
        let throttle = LoginThrottle::default();
        let (stranger, owner) = (address("203.0.113.7"), address("198.51.100.9"));
        for _ in 0..4 {
            throttle.failed("ada@example.com", stranger);
            assert!(throttle.check("ada@example.com", stranger).is_ok());
        }
        throttle.failed("ada@example.com", stranger);
        assert_eq!(throttle.check("ada@example.com", stranger), Err(1));
        assert!(throttle.check("ada@example.com", owner).is_ok());
        assert!(throttle.check("bob@example.com", stranger).is_ok());
        throttle.succeeded("ada@example.com", stranger);
        assert!(throttle.check("ada@example.com", stranger).is_ok());
    }

    #[test]
    fn guessing_from_many_addresses_meets_the_account_ceiling() {
        let throttle = LoginThrottle::default();
        for i in 0..ACCOUNT_CEILING {
            let from = address(&format!("10.0.{}.{}", i / 250, i % 250));
            assert!(throttle.check("ada@example.com", from).is_ok());
            throttle.failed("ada@example.com", from);
        }
        let anyone = address("198.51.100.9");
        assert!(throttle.check("ada@example.com", anyone).unwrap_err() > 800);
        assert!(throttle.check("bob@example.com", anyone).is_ok());
    }
}
