//! Slows down password guessing without handing strangers a way to lock owners out.
//!
//! - Per account **and client address**: after 5 failed logins, each further failure from that
//!   address locks that address out of that account for twice as long as the last (1 s, 2 s,
//!   4 s … up to 15 min). The owner, from another address, is not affected.
//! - Per account, from all addresses together: at most 100 failures in 15 minutes; past that the
//!   account takes no login from a new address until the 15 minutes are over. An address the
//!   account logged in from lately (the last 30 days, up to 8) is never held by the ceiling, so
//!   guessing spread over many addresses cannot lock the owner out of their own devices.
//! - An IPv6 client counts by its /64 (what one subscriber gets): a block of addresses is one
//!   guesser, not millions.
//!
//! Kept in memory, per process: a deployment with several user-service instances should route
//! logins for one email to one instance, or accept a few more guesses per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::application::ports::LoginAttempts;

/// Failures allowed per account and address before the first lock.
const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(1);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures an account takes from all addresses together within [`ACCOUNT_WINDOW`].
pub const ACCOUNT_CEILING: u32 = 100;
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked entries, those whose lock or window has ended are dropped.
const PRUNE_ABOVE: usize = 100_000;
/// Addresses an account logged in from that the ceiling never holds: how many, how long.
const KNOWN_ADDRESSES: usize = 8;
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The address a client counts as: an IPv6 one by its /64.
fn counted(client: Option<IpAddr>) -> Option<IpAddr> {
    match client? {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            Some(IpAddr::V6(prefix.into()))
        }
        v4 => Some(v4),
    }
}

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
    /// Addresses each account logged in from lately, newest last.
    known: HashMap<String, Vec<(IpAddr, Instant)>>,
}

impl State {
    fn knows(&self, account: &str, client: Option<IpAddr>, now: Instant) -> bool {
        let Some(client) = client else { return false };
        self.known.get(account).is_some_and(|known| {
            known
                .iter()
                .any(|(address, at)| *address == client && now.duration_since(*at) < KNOWN_FOR)
        })
    }
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
}

impl LoginAttempts for LoginThrottle {
    /// `Err(seconds)` while `account` is locked for `client` (or for everyone).
    fn check(&self, account: &str, client: Option<IpAddr>) -> Result<(), u64> {
        let client = counted(client);
        let state = self.state();
        let now = Instant::now();
        if let Some(window) = state.accounts.get(account) {
            let ends = window.started + ACCOUNT_WINDOW;
            if window.failures >= ACCOUNT_CEILING
                && ends > now
                && !state.knows(account, client, now)
            {
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

    fn failed(&self, account: &str, client: Option<IpAddr>) {
        let client = counted(client);
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
    fn succeeded(&self, account: &str, client: Option<IpAddr>) {
        let client = counted(client);
        let mut state = self.state();
        state.pairs.remove(&(account.to_owned(), client));
        if let Some(client) = client {
            if state.known.len() > PRUNE_ABOVE {
                let now = Instant::now();
                state.known.retain(|_, known| {
                    known
                        .iter()
                        .any(|(_, at)| now.duration_since(*at) < KNOWN_FOR)
                });
            }
            let known = state.known.entry(account.to_owned()).or_default();
            known.retain(|(address, _)| *address != client);
            known.push((client, Instant::now()));
            if known.len() > KNOWN_ADDRESSES {
                known.remove(0);
            }
        }
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

    #[test]
    fn the_ceiling_never_holds_an_address_the_owner_logged_in_from() {
        let throttle = LoginThrottle::default();
        let home = address("198.51.100.9");
        throttle.succeeded("ada@example.com", home);
        // Guessing from many addresses reaches the ceiling.
        for n in 0..ACCOUNT_CEILING {
            let guesser = Some(IpAddr::from([203, 0, 113, (n % 250) as u8 + 1]));
            throttle.failed("ada@example.com", guesser);
        }
        assert!(throttle
            .check("ada@example.com", address("192.0.2.44"))
            .is_err());
        assert!(
            throttle.check("ada@example.com", home).is_ok(),
            "the owner's own address is not locked out"
        );
    }

    #[test]
    fn an_ipv6_block_counts_as_one_address() {
        let throttle = LoginThrottle::default();
        for n in 1..=FREE_FAILURES {
            throttle.failed("ada@example.com", address(&format!("2001:db8::{n:x}")));
        }
        assert!(
            throttle
                .check("ada@example.com", address("2001:db8::ffff"))
                .is_err(),
            "another address of the same /64 is the same guesser"
        );
        assert!(throttle
            .check("ada@example.com", address("2001:db8:0:1::1"))
            .is_ok());
    }
}
