//! `msa chaos`: a deployment of its own under the chat load, faults injected on a schedule, and
//! an audit from outside at the end (see [`audit`]). What each fault is: [`faults`]; how the
//! deployment is started and broken: [`deployment`]; the load: [`load`].

mod audit;
mod deployment;
mod faults;
mod load;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::Serialize;

use self::audit::Counts;
use self::deployment::Deployment;
use self::faults::Fault;
use self::load::Load;
use crate::cli::{ChaosArgs, ChaosDeployment, FaultKind};

/// Load before the first fault, so the report starts from a deployment that works.
const WARM_UP: Duration = Duration::from_secs(5);

/// One fault as it happened.
#[derive(Serialize)]
struct Injected {
    fault: String,
    /// Seconds since the load started.
    started_s: f64,
    ended_s: f64,
    /// Failed send attempts from the fault's start to the next one's.
    failed_attempts: usize,
    /// From the fault's end until a send attempted after it was acknowledged (None: none was).
    recovery_s: Option<f64>,
    /// What the failed attempts got, most frequent first.
    answers: Vec<(String, usize)>,
}

#[derive(Serialize)]
struct Report {
    deployment: String,
    users: u32,
    offered_per_sec: u32,
    load_s: f64,
    #[serde(flatten)]
    counts: Counts,
    stream_reconnects: u64,
    /// Sends the clients did not make because 4,096 were being tried (during an outage).
    held_back: u64,
    faults: Vec<Injected>,
    /// Worst recovery per kind of fault, seconds.
    worst_recovery_s: Vec<(String, Option<f64>)>,
    problems: Vec<String>,
}

/// The fault kinds to inject and whether the tools each needs are here: named kinds are
/// required; without names, every kind this machine can make.
fn kinds(args: &ChaosArgs) -> Result<(Vec<FaultKind>, bool, bool)> {
    let named = !args.faults.is_empty();
    let mut kinds = if named {
        args.faults.clone()
    } else {
        vec![
            FaultKind::Kill,
            FaultKind::Postgres,
            FaultKind::Broker,
            FaultKind::Partition,
            FaultKind::Disk,
            FaultKind::Clock,
        ]
    };
    let single = args.deployment == ChaosDeployment::Single;
    let mut clock = kinds.contains(&FaultKind::Clock);
    if clock && !deployment::clock_can_step() {
        if named {
            bail!("the clock fault needs libfaketime: apt-get install faketime");
        }
        eprintln!("note: no libfaketime (apt-get install faketime): the clock is not stepped");
        kinds.retain(|k| *k != FaultKind::Clock);
        clock = false;
    }
    let disk = single && kinds.contains(&FaultKind::Disk);
    Ok((kinds, clock, disk))
}

pub async fn run(args: ChaosArgs) -> Result<()> {
    let (kinds, clock, disk) = kinds(&args)?;
    let work = tempfile::Builder::new().prefix("msa-chaos-").tempdir()?;
    eprintln!(
        "starting the {:?} deployment (logs in {})…",
        args.deployment,
        work.path().display()
    );
    let started = Deployment::start(&args, work.path(), clock, disk).await;
    let mut deployment = match started {
        Ok(deployment) => deployment,
        // A disk of its own needs root: without names, go on without that fault.
        Err(error) if disk && args.faults.is_empty() && format!("{error:#}").contains("tmpfs") => {
            eprintln!("note: {error:#}; the disk is not filled");
            Deployment::start(&args, work.path(), clock, false).await?
        }
        Err(error) => return Err(error),
    };
    // Interrupted, the deployment is still taken down (and the tmpfs unmounted).
    let outcome = tokio::select! {
        outcome = run_on(&args, &kinds, &mut deployment) => outcome,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    deployment.stop().await;
    if args.keep || outcome.is_err() {
        let kept = work.keep();
        eprintln!("the run's logs are in {}", kept.display());
    }
    outcome
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

async fn run_on(args: &ChaosArgs, kinds: &[FaultKind], deployment: &mut Deployment) -> Result<()> {
    let plan = faults::plan(kinds, deployment);
    if !args.faults.is_empty() {
        let missing: Vec<String> = args
            .faults
            .iter()
            .filter(|kind| !plan.iter().any(|fault| fault.kind() == **kind))
            .map(|kind| format!("{kind:?}").to_lowercase())
            .collect();
        if !missing.is_empty() {
            bail!(
                "the {:?} deployment has nothing for these faults: {}",
                args.deployment,
                missing.join(", ")
            );
        }
    }
    if plan.is_empty() {
        bail!("no fault of the kinds asked for applies to this deployment");
    }
    eprintln!(
        "the deployment is ready at {}; setting up {} people…",
        deployment.entry, args.users
    );
    let load = Load::set_up(
        &deployment.entry,
        args.users as usize,
        args.room_size as usize,
    )
    .await
    .context("setting up the people")?;
    let (stop_streams, streams_stopped) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = (0..load.people.len())
        .map(|person| tokio::spawn(load.clone().read_stream(person, streams_stopped.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.streams_ready.load(Ordering::Relaxed) < load.people.len() as u64 {
        if Instant::now() > deadline {
            bail!("not every stream opened within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    eprintln!(
        "sending {} messages/s; faults: {}",
        args.rate,
        plan.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (stop_sending, sending_stopped) = tokio::sync::watch::channel(false);
    let people = load.people.len();
    let every = Duration::from_secs_f64(people as f64 / f64::from(args.rate));
    let senders: Vec<_> = (0..people)
        .map(|person| {
            let offset = every.mul_f64(person as f64 / people as f64);
            tokio::spawn(load.clone().send_on_schedule(
                person,
                every,
                offset,
                sending_stopped.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(WARM_UP).await;
    let mut injected: Vec<(Fault, Duration, Duration)> = Vec::new();
    let mut round = plan.clone();
    let until = args.duration.map(|d| load.started + d);
    loop {
        if round.is_empty() {
            if until.is_none() {
                break;
            }
            round = plan.clone();
            round.shuffle(&mut rand::thread_rng());
        }
        if until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        let fault = round.remove(0);
        let start = load.started.elapsed();
        eprintln!("{:>7.1} s  {fault}", start.as_secs_f64());
        fault
            .run(deployment)
            .await
            .with_context(|| format!("injecting {fault}"))?;
        injected.push((fault, start, load.started.elapsed()));
        tokio::time::sleep(args.fault_gap).await;
    }
    if let Some(until) = until {
        tokio::time::sleep_until(until.into()).await;
    }
    let _ = stop_sending.send(true);
    let load_s = load.started.elapsed().as_secs_f64();
    eprintln!("{load_s:>7.1} s  load stopped; waiting for sends still being tried…");
    futures::future::join_all(senders).await;

    eprintln!(
        "auditing (waiting up to {:?} for the system to settle)…",
        args.settle
    );
    let (counts, problems) = settle_and_audit(&load, deployment, args.settle).await?;
    let _ = stop_streams.send(true);
    futures::future::join_all(readers).await;

    let report = report(args, &load, load_s, counts, problems, &injected);
    print(&report, args.json)?;
    let failures = report.counts.failures();
    if !failures.is_empty() {
        bail!("the audit failed: {}", failures.join(", "));
    }
    Ok(())
}

/// Audits until everything holds or `settle` has passed; the last audit's counts. An audit that
/// cannot read something (a service or the broker just came back) is tried again, and fails the
/// run only at the deadline.
async fn settle_and_audit(
    load: &Arc<Load>,
    deployment: &Deployment,
    settle: Duration,
) -> Result<(Counts, Vec<String>)> {
    let deadline = Instant::now() + settle;
    loop {
        match audit_once(load, deployment).await {
            Ok((counts, mut problems)) => {
                let holds = counts.failures().is_empty() && audit::settled(load);
                if holds || Instant::now() > deadline {
                    problems.truncate(60);
                    return Ok((counts, problems));
                }
            }
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(error) => eprintln!("audit incomplete, trying again: {error:#}"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn audit_once(load: &Load, deployment: &Deployment) -> Result<(Counts, Vec<String>)> {
    let mut counts = Counts::default();
    let (posted, mut problems) = audit::messages(load, &mut counts).await?;
    problems.extend(audit::money(load, &posted, &mut counts).await?);
    let (missing, twice) = audit::deliveries(load, &posted);
    counts.undelivered = missing.len();
    counts.delivered_twice = twice.len();
    problems.extend(missing.into_iter().take(20));
    problems.extend(twice.into_iter().take(20));
    let letters = deployment.dead_letters().await?;
    counts.dead_letters = letters.len();
    problems.extend(letters.iter().take(20).map(|l| format!("dead letter: {l}")));
    Ok((counts, problems))
}

fn report(
    args: &ChaosArgs,
    load: &Load,
    load_s: f64,
    counts: Counts,
    problems: Vec<String>,
    injected: &[(Fault, Duration, Duration)],
) -> Report {
    let record = load.record.lock().unwrap();
    let acknowledged: Vec<(Duration, Duration)> = record
        .sends
        .values()
        .filter_map(|send| send.acknowledged)
        .collect();
    let faults: Vec<Injected> = injected
        .iter()
        .enumerate()
        .map(|(i, (fault, start, end))| {
            let next = injected.get(i + 1).map_or(Duration::MAX, |(_, s, _)| *s);
            let recovery = acknowledged
                .iter()
                .filter(|(attempt, _)| attempt >= end)
                .map(|(_, done)| *done - *end)
                .min();
            let mut answers = std::collections::HashMap::<String, usize>::new();
            let failures: Vec<&String> = record
                .failures
                .iter()
                .filter(|(at, _)| at >= start && *at < next)
                .map(|(_, what)| what)
                .collect();
            for what in &failures {
                *answers.entry((*what).clone()).or_default() += 1;
            }
            let mut answers: Vec<(String, usize)> = answers.into_iter().collect();
            answers.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            Injected {
                fault: fault.to_string(),
                started_s: start.as_secs_f64(),
                ended_s: end.as_secs_f64(),
                failed_attempts: failures.len(),
                recovery_s: recovery.map(|r| r.as_secs_f64()),
                answers,
            }
        })
        .collect();
    let mut worst: Vec<(String, Option<f64>)> = Vec::new();
    for fault in &faults {
        match worst.iter_mut().find(|(name, _)| *name == fault.fault) {
            Some((_, recovery)) => {
                *recovery = match (*recovery, fault.recovery_s) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                }
            }
            None => worst.push((fault.fault.clone(), fault.recovery_s)),
        }
    }
    Report {
        deployment: format!("{:?}", args.deployment).to_lowercase(),
        users: args.users,
        offered_per_sec: args.rate,
        load_s,
        counts,
        stream_reconnects: load.reconnects.load(Ordering::Relaxed),
        held_back: load.held_back.load(Ordering::Relaxed),
        faults,
        worst_recovery_s: worst,
        problems,
    }
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "{} deployment, {} people, {}/s offered for {:.0} s",
        report.deployment, report.users, report.offered_per_sec, report.load_s
    );
    println!(
        "{:<34} {:>8} {:>8} {:>10}  what failed attempts got",
        "fault", "at s", "failed", "recovery s"
    );
    for fault in &report.faults {
        let answers: Vec<String> = fault
            .answers
            .iter()
            .take(3)
            .map(|(what, n)| format!("{n}× {what}"))
            .collect();
        println!(
            "{:<34} {:>8.1} {:>8} {:>10}  {}",
            fault.fault,
            fault.started_s,
            fault.failed_attempts,
            fault
                .recovery_s
                .map_or("never".to_owned(), |r| format!("{r:.2}")),
            answers.join(", ")
        );
    }
    let c = &report.counts;
    println!(
        "sent {}, acknowledged {}, not acknowledged {} (posted anyway {}), refunded {}",
        c.sent, c.acknowledged, c.not_acknowledged, c.posted_unacknowledged, c.refunded
    );
    println!(
        "lost {}, duplicated {}, stuck {}, unpaid {}, undelivered {}, delivered twice {}, wallet mismatches {}, dead letters {}",
        c.lost, c.duplicated, c.stuck, c.unpaid, c.undelivered, c.delivered_twice, c.wallet_mismatches, c.dead_letters
    );
    println!(
        "stream reconnects {}, sends held back by the client (4,096 in flight) {}",
        report.stream_reconnects, report.held_back
    );
    if report.faults.len() > report.worst_recovery_s.len() {
        for (fault, worst) in &report.worst_recovery_s {
            println!(
                "worst recovery {fault}: {}",
                worst.map_or("never".to_owned(), |r| format!("{r:.2} s"))
            );
        }
    }
    for problem in &report.problems {
        println!("  {problem}");
    }
    Ok(())
}
