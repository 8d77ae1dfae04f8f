//! What one client may hold of the live stream: open sockets per address (counted from the
//! upgrade, before authentication too), open sockets per user, and typing notices per user and
//! room. A socket holds its slots while it is open; they are given back when it closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Close code for a user with too many sockets open (4000-4999 are the application's).
pub const TOO_MANY_SOCKETS: u16 = 4029;

#[derive(Debug, Clone, Copy)]
pub struct LiveLimitSettings {
    /// Sockets one address may have open; `None` where a proxy in front counts them (the
    /// gateway), since every socket then comes from the proxy's address.
    pub per_address: Option<usize>,
    /// Sockets one user may have open (a phone, a laptop, a few tabs).
    pub per_user: usize,
    /// At most one typing notice per user and room this often; more are dropped.
    pub typing_every: Duration,
}

impl Default for LiveLimitSettings {
    fn default() -> Self {
        Self {
            per_address: Some(32),
            per_user: 8,
            typing_every: Duration::from_secs(2),
        }
    }
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    by_user: HashMap<Uuid, usize>,
    typing: HashMap<(Uuid, Uuid), Instant>,
}

pub struct LiveLimits {
    settings: LiveLimitSettings,
    counts: Mutex<Counts>,
}

/// A socket's place in a count, given back when dropped.
pub struct Slot {
    limits: Arc<LiveLimits>,
    key: SlotKey,
}

enum SlotKey {
    Address(IpAddr),
    User(Uuid),
    Uncounted,
}

impl LiveLimits {
    pub fn new(settings: LiveLimitSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A socket from `address`; `None` when the address has its share open already.
    pub fn take_address(self: &Arc<Self>, address: Option<IpAddr>) -> Option<Slot> {
        let (Some(limit), Some(address)) = (self.settings.per_address, address) else {
            return Some(self.slot(SlotKey::Uncounted));
        };
        let mut counts = self.counts();
        let open = counts.by_address.entry(address).or_default();
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(self.slot(SlotKey::Address(address)))
    }

    /// A socket of `user`; `None` when the user has their share open already.
    pub fn take_user(self: &Arc<Self>, user: Uuid) -> Option<Slot> {
        let mut counts = self.counts();
        let open = counts.by_user.entry(user).or_default();
        if *open >= self.settings.per_user {
            return None;
        }
        *open += 1;
        Some(self.slot(SlotKey::User(user)))
    }

    fn slot(self: &Arc<Self>, key: SlotKey) -> Slot {
        Slot {
            limits: self.clone(),
            key,
        }
    }

    /// Whether `user` may send a typing notice to `room` now.
    pub fn typing_allowed(&self, user: Uuid, room: Uuid) -> bool {
        let every = self.settings.typing_every;
        let now = Instant::now();
        let mut counts = self.counts();
        if counts.typing.len() > 10_000 {
            counts
                .typing
                .retain(|_, at| now.duration_since(*at) < every);
        }
        match counts.typing.get(&(user, room)) {
            Some(at) if now.duration_since(*at) < every => false,
            _ => {
                counts.typing.insert((user, room), now);
                true
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(open) = map.get_mut(key) {
                *open -= 1;
                if *open == 0 {
                    map.remove(key);
                }
            }
        }
        match &self.key {
            SlotKey::Address(address) => give_back(&mut counts.by_address, address),
            SlotKey::User(user) => give_back(&mut counts.by_user, user),
            SlotKey::Uncounted => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_while_held_and_given_back_when_dropped() {
        let limits = LiveLimits::new(LiveLimitSettings {
            per_address: Some(2),
            per_user: 1,
            typing_every: Duration::from_secs(60),
        });
        let address = Some(IpAddr::from([10, 0, 0, 1]));
        let first = limits.take_address(address).unwrap();
        let _second = limits.take_address(address).unwrap();
        assert!(limits.take_address(address).is_none());
        assert!(limits
            .take_address(Some(IpAddr::from([10, 0, 0, 2])))
            .is_some());
        drop(first);
        assert!(limits.take_address(address).is_some());

        let user = Uuid::now_v7();
        let held = limits.take_user(user).unwrap();
        assert!(limits.take_user(user).is_none());
        drop(held);
        assert!(limits.take_user(user).is_some());

        let room = Uuid::now_v7();
        assert!(limits.typing_allowed(user, room));
        assert!(!limits.typing_allowed(user, room));
        assert!(limits.typing_allowed(user, Uuid::now_v7()));
    }
}
