//! The faults `msa chaos` injects, and how each is made and ended.

use std::fmt;
use std::time::Duration;

use anyhow::Result;

use super::deployment::Deployment;
use crate::cli::FaultKind;
use msa_testkit::link::LinkState;

/// How long a fault that lasts holds (the broker's outage as the issue of record asks: 10 s).
const HOLD: Duration = Duration::from_secs(10);
/// How long PostgreSQL stays down between its stop and its start.
const POSTGRES_DOWN: Duration = Duration::from_secs(5);
/// How far the wall clock steps forward (then back).
const CLOCK_STEP_SECONDS: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of a process, started again at once.
    Kill(String),
    /// PostgreSQL stopped at once (as a crash), started again after a few seconds.
    PostgresRestart,
    /// The broker unreachable for 10 s: connections dropped, new ones refused.
    BrokerDown,
    /// A service's port blocked for 10 s: connections stall, nothing crosses.
    Partition(String),
    /// The SQLite directory's filesystem full for 10 s.
    DiskFull,
    /// Every msa process's wall clock 2 minutes ahead for 10 s, then back.
    ClockStep,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(name) => write!(f, "kill {name}"),
            Fault::PostgresRestart => write!(f, "postgres restart"),
            Fault::BrokerDown => write!(f, "broker down 10 s"),
            Fault::Partition(name) => write!(f, "partition {name} 10 s"),
            Fault::DiskFull => write!(f, "disk full 10 s"),
            Fault::ClockStep => write!(f, "clock +{CLOCK_STEP_SECONDS} s for 10 s, then back"),
        }
    }
}

/// Every fault of the kinds asked for that this deployment has: a kill of each process, a
/// partition of each service.
pub fn plan(kinds: &[FaultKind], deployment: &Deployment) -> Vec<Fault> {
    let mut faults = Vec::new();
    for kind in kinds {
        match kind {
            FaultKind::Kill => faults.extend(deployment.killable().into_iter().map(Fault::Kill)),
            FaultKind::Postgres if deployment.has_postgres() => faults.push(Fault::PostgresRestart),
            FaultKind::Broker if deployment.has_broker() => faults.push(Fault::BrokerDown),
            FaultKind::Partition => {
                faults.extend(deployment.partitionable().into_iter().map(Fault::Partition))
            }
            FaultKind::Disk if deployment.has_disk() => faults.push(Fault::DiskFull),
            FaultKind::Clock if deployment.has_clock() => faults.push(Fault::ClockStep),
            _ => {}
        }
    }
    faults
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill(_) => FaultKind::Kill,
            Fault::PostgresRestart => FaultKind::Postgres,
            Fault::BrokerDown => FaultKind::Broker,
            Fault::Partition(_) => FaultKind::Partition,
            Fault::DiskFull => FaultKind::Disk,
            Fault::ClockStep => FaultKind::Clock,
        }
    }

    /// Makes the fault, holds it, and ends it; returns when it has ended (the moment recovery is
    /// measured from).
    pub async fn run(&self, deployment: &mut Deployment) -> Result<()> {
        match self {
            Fault::Kill(name) => deployment.kill(name).await,
            Fault::PostgresRestart => {
                deployment.stop_postgres().await?;
                tokio::time::sleep(POSTGRES_DOWN).await;
                deployment.start_postgres().await
            }
            Fault::BrokerDown => {
                deployment.set_broker(LinkState::Down);
                tokio::time::sleep(HOLD).await;
                deployment.set_broker(LinkState::Up);
                Ok(())
            }
            Fault::Partition(name) => {
                deployment.set_link(name, LinkState::Partitioned);
                tokio::time::sleep(HOLD).await;
                deployment.set_link(name, LinkState::Up);
                Ok(())
            }
            Fault::DiskFull => {
                let filled = deployment.fill_disk().await;
                tokio::time::sleep(HOLD).await;
                deployment.free_disk().await?;
                filled
            }
            Fault::ClockStep => {
                deployment.set_clock(CLOCK_STEP_SECONDS)?;
                tokio::time::sleep(HOLD).await;
                deployment.set_clock(0)
            }
        }
    }
}
