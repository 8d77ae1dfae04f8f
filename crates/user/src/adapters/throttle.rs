//! Slows down password guessing: after a few failed logins for one account, each further failure
//! locks it for twice as long as the last (1 s, 2 s, 4 s … up to 15 min). Kept in memory, per
//! process: a deployment with several user-service instances should route logins for one email
//! to one instance, or accept a few more guesses per instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the first lock.
const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(1);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// Above this many tracked accounts, entries whose lock has ended are dropped.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// `Err(seconds)` while the account is locked.
    pub fn check(&self, account: &str) -> Result<(), u64> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        match accounts.get(account).and_then(|f| f.locked_until) {
            Some(until) if until > Instant::now() => {
                Err((until - Instant::now()).as_secs_f64().ceil() as u64)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, account: &str) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() > PRUNE_ABOVE {
            let now = Instant::now();
            accounts.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        let failures = accounts.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        failures.count += 1;
        if failures.count >= FREE_FAILURES {
            let doublings = (failures.count - FREE_FAILURES).min(20);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(LONGEST_LOCK);
            failures.locked_until = Some(Instant::now() + lock);
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::LoginThrottle;

    #[test]
    fn an_account_locks_after_five_failures_and_unlocks_on_success() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            throttle.failed("ada@example.com");
            assert!(throttle.check("ada@example.com").is_ok());
        }
        throttle.failed("ada@example.com");
        assert_eq!(throttle.check("ada@example.com"), Err(1));
        assert!(throttle.check("bob@example.com").is_ok());
        throttle.succeeded("ada@example.com");
        assert!(throttle.check("ada@example.com").is_ok());
    }
}
