//! Where each service runs: one or more instances, each taken out of the rotation while it fails
//! its readiness check and put back when it passes again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::routes::Owner;

/// How often each instance's `/readyz` is asked, and how long it may take to answer.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Every service's instances.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub user: Arc<Instances>,
    pub chat: Arc<Instances>,
    pub payment: Arc<Instances>,
    pub user_chat: Arc<Instances>,
}

impl Upstreams {
    /// Each service's base URLs (several for a service that runs as several instances).
    pub fn new(
        user: Vec<String>,
        chat: Vec<String>,
        payment: Vec<String>,
        user_chat: Vec<String>,
    ) -> Self {
        Self {
            user: Instances::new(user),
            chat: Instances::new(chat),
            payment: Instances::new(payment),
            user_chat: Instances::new(user_chat),
        }
    }

    pub fn of(&self, owner: Owner) -> &Instances {
        match owner {
            Owner::User => &self.user,
            Owner::Chat => &self.chat,
            Owner::Payment => &self.payment,
            Owner::UserChat => &self.user_chat,
        }
    }

    /// Asks every instance whether it is ready, every [`CHECK_EVERY`], for as long as the
    /// gateway runs.
    pub async fn check_forever(self, client: reqwest::Client) {
        loop {
            for owner in Owner::ALL {
                let instances = self.of(owner);
                for instance in &instances.instances {
                    let url = format!("{}/readyz", instance.base);
                    let ready = matches!(
                        client.get(&url).timeout(CHECK_TIMEOUT).send().await,
                        Ok(answer) if answer.status().is_success()
                    );
                    if instances.mark(&instance.base, ready) {
                        tracing::warn!(service = owner.name(), base = %instance.base, ready, "instance readiness changed");
                    }
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
}

/// One service's instances, taken in turn.
#[derive(Debug)]
pub struct Instances {
    instances: Vec<Instance>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Instance {
    base: String,
    healthy: AtomicBool,
}

impl Instances {
    /// At least one base URL; none counts as ready before its first check (requests are still
    /// sent, in turn, meanwhile).
    pub fn new(bases: Vec<String>) -> Arc<Self> {
        assert!(!bases.is_empty(), "a service needs at least one instance");
        Arc::new(Self {
            instances: bases
                .into_iter()
                .map(|base| Instance {
                    base: base.trim_end_matches('/').to_owned(),
                    healthy: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// How many instances (at least one).
    pub fn count(&self) -> usize {
        self.instances.len()
    }

    /// Whether an instance was ready at its last check (and has not failed a call since).
    pub fn any_ready(&self) -> bool {
        self.instances
            .iter()
            .any(|instance| instance.healthy.load(Ordering::Relaxed))
    }

    /// The first instance's base (for what any instance answers alike: the user service's keys).
    pub fn first(&self) -> &str {
        &self.instances[0].base
    }

    /// The next healthy instance in turn; when none is, the next in turn (a service coming
    /// back is tried rather than every request refused until the next check).
    pub fn pick(&self) -> &str {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.instances.len();
        (0..count)
            .map(|offset| &self.instances[(start + offset) % count])
            .find(|instance| instance.healthy.load(Ordering::Relaxed))
            .unwrap_or(&self.instances[start % count])
            .base
            .as_str()
    }

    /// An instance could not be reached: out of the rotation until its next good check.
    pub fn unreachable(&self, base: &str) {
        self.mark(base, false);
    }

    /// Puts an instance in or out of the rotation; whether that changed anything.
    fn mark(&self, base: &str, ready: bool) -> bool {
        self.instances
            .iter()
            .find(|instance| instance.base == base)
            .is_some_and(|instance| instance.healthy.swap(ready, Ordering::Relaxed) != ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_instances_take_turns_and_an_unreachable_one_is_skipped() {
        let instances = Instances::new(vec!["http://a/".into(), "http://b".into()]);
        assert!(
            !instances.any_ready(),
            "none is ready before its first check"
        );
        instances.mark("http://a", true);
        instances.mark("http://b", true);
        let picks: Vec<_> = (0..4).map(|_| instances.pick().to_owned()).collect();
        assert_eq!(picks, ["http://a", "http://b", "http://a", "http://b"]);
        instances.unreachable("http://a");
        assert!((0..4).all(|_| instances.pick() == "http://b"));
        instances.unreachable("http://b");
        let picks: Vec<_> = (0..2).map(|_| instances.pick().to_owned()).collect();
        assert!(picks.contains(&"http://a".to_owned()) && picks.contains(&"http://b".to_owned()));
    }
}
