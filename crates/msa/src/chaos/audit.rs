//! The audit after the load, from outside through the public API (and `msa dlq list`): what is
//! in each room's history, what each stream carried, what each wallet and its ledger say.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use super::load::{body_of, txn_of, Load, Outcome};

/// The counts `msa chaos` prints; any of the `must be 0` ones above zero fails the run.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Sends the clients made (each txn_id once, however many times it was tried).
    pub sent: usize,
    pub acknowledged: usize,
    /// Refused for good, or given up on by the client: never acknowledged.
    pub not_acknowledged: usize,
    /// Posted though never acknowledged (the answer was lost): fine, when paid for.
    pub posted_unacknowledged: usize,
    /// Spends given back: the recovery's refunds and refused posts'.
    pub refunded: usize,
    /// Must be 0: acknowledged sends missing from history.
    pub lost: usize,
    /// Must be 0: messages in history more than once.
    pub duplicated: usize,
    /// Must be 0: spends with neither a message nor a refund.
    pub stuck: usize,
    /// Must be 0: messages in history with no spend, or with a spend that was refunded.
    pub unpaid: usize,
    /// Must be 0: (member, message) pairs a member's stream did not carry.
    pub undelivered: usize,
    /// Must be 0: (member, message) pairs a member's stream carried more than once.
    pub delivered_twice: usize,
    /// Must be 0: wallets whose balance is not their ledger's.
    pub wallet_mismatches: usize,
    /// Must be 0: events a consumer gave up on.
    pub dead_letters: usize,
}

impl Counts {
    pub fn failures(&self) -> Vec<String> {
        [
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("stuck", self.stuck),
            ("unpaid", self.unpaid),
            ("undelivered", self.undelivered),
            ("delivered twice", self.delivered_twice),
            ("wallet mismatches", self.wallet_mismatches),
            ("dead letters", self.dead_letters),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect()
    }
}

/// Every message body in a room's history, oldest first.
async fn history(load: &Load, room: usize) -> Result<Vec<String>> {
    let (id, members) = &load.rooms[room];
    let reader = &load.people[members[0]].user;
    let mut bodies = Vec::new();
    let mut after = -1i64;
    loop {
        let path = if after < 0 {
            format!("/v1/rooms/{id}/messages?after=0&limit=100")
        } else {
            format!("/v1/rooms/{id}/messages?after={after}&limit=100")
        };
        let (status, page) = load
            .bench
            .call(reqwest::Method::GET, &path, Some(&reader.token), None)
            .await?;
        if status != 200 {
            bail!("reading {path}: {status} {page}");
        }
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return Ok(bodies);
        }
        for item in &items {
            after = after.max(item["seq"].as_i64().unwrap_or(after));
            bodies.push(item["body"].as_str().unwrap_or_default().to_owned());
        }
    }
}

/// A person's ledger, newest first.
async fn ledger(load: &Load, person: usize) -> Result<Vec<Value>> {
    let token = &load.people[person].user.token;
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/wallet/ledger?limit=100&cursor={cursor}"),
            None => "/v1/wallet/ledger?limit=100".to_owned(),
        };
        let (status, page) = load
            .bench
            .call(reqwest::Method::GET, &path, Some(token), None)
            .await?;
        if status != 200 {
            bail!("reading {path}: {status} {page}");
        }
        entries.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(entries),
        }
    }
}

/// The spends of a ledger's entries: txn_id → (spends, refunds) entries about it.
fn spends(entries: &[Value]) -> HashMap<String, (u32, u32)> {
    let mut spends: HashMap<String, (u32, u32)> = HashMap::new();
    for entry in entries {
        let Some((_, txn_id)) = entry["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("message:"))
            .and_then(|r| r.split_once(':'))
        else {
            continue;
        };
        let counted = spends.entry(txn_id.to_owned()).or_default();
        match entry["kind"].as_str() {
            Some("message_spent") => counted.0 += 1,
            Some("spend_refunded") => counted.1 += 1,
            _ => {}
        }
    }
    spends
}

/// The money side: every spend has its message or its refund (not both, not neither), each
/// spent and refunded once; every message its spend; every wallet's balance is its ledger's.
pub async fn money(
    load: &Load,
    posted: &HashSet<String>,
    counts: &mut Counts,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let (mut stuck, mut unpaid, mut refunded, mut mismatches) = (0, 0, 0, 0);
    // Txn_ids with a spend entry, whatever became of it.
    let mut spent = HashSet::new();
    for person in 0..load.people.len() {
        let entries = ledger(load, person).await?;
        for (txn_id, (spends, refunds)) in spends(&entries) {
            let in_history = posted.contains(&body_of(&txn_id));
            match (spends, refunds, in_history) {
                (1, 0, true) => {}
                (1, 1, false) => refunded += 1,
                (1, 0, false) => {
                    stuck += 1;
                    problems.push(format!("{txn_id}: spent, neither posted nor refunded"));
                }
                (1, 1, true) => {
                    unpaid += 1;
                    problems.push(format!("{txn_id}: posted, and its credit given back"));
                }
                (spends, refunds, _) => {
                    counts.duplicated += 1;
                    problems.push(format!(
                        "{txn_id}: spent {spends} times and refunded {refunds} times"
                    ));
                }
            }
            spent.insert(txn_id);
        }
        // The ledger's newest balance and the sum of its movements must both be the wallet's.
        let sum: i64 = entries
            .iter()
            .map(|e| {
                let credits = e["credits"].as_i64().unwrap_or(0);
                match (e["from"].as_str(), e["to"].as_str()) {
                    (_, Some("wallet")) => credits,
                    (Some("wallet"), _) => -credits,
                    _ => 0,
                }
            })
            .sum();
        let newest = entries
            .first()
            .and_then(|e| e["balance"].as_i64())
            .unwrap_or(0);
        let (status, wallet) = load
            .bench
            .call(
                reqwest::Method::GET,
                "/v1/wallet",
                Some(&load.people[person].user.token),
                None,
            )
            .await?;
        if status != 200 {
            bail!("reading person {person}'s wallet: {status} {wallet}");
        }
        let balance = wallet["balance"].as_i64().unwrap_or(-1);
        if balance != newest || balance != sum {
            mismatches += 1;
            problems.push(format!(
                "person {person}: wallet {balance}, ledger's newest balance {newest}, ledger's sum {sum}"
            ));
        }
    }
    for body in posted {
        let txn_id = txn_of(body);
        if !spent.contains(txn_id) {
            unpaid += 1;
            problems.push(format!("{txn_id}: posted with no spend"));
        }
    }
    counts.stuck = stuck;
    counts.unpaid = unpaid;
    counts.refunded = refunded;
    counts.wallet_mismatches = mismatches;
    Ok(problems)
}

/// History and the clients' record: nothing acknowledged lost, nothing twice.
pub async fn messages(load: &Load, counts: &mut Counts) -> Result<(HashSet<String>, Vec<String>)> {
    let mut problems = Vec::new();
    let mut posted = HashSet::new();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for room in 0..load.rooms.len() {
        for body in history(load, room).await? {
            *seen.entry(body.clone()).or_default() += 1;
            posted.insert(body);
        }
    }
    for (body, n) in &seen {
        if *n > 1 {
            counts.duplicated += 1;
            problems.push(format!("{body:?} is in history {n} times"));
        }
    }
    let record = load.record.lock().unwrap();
    counts.sent = record.sends.len();
    for (txn_id, send) in &record.sends {
        let in_history = posted.contains(&body_of(txn_id));
        match send.outcome {
            Outcome::Acknowledged => {
                counts.acknowledged += 1;
                if !in_history {
                    counts.lost += 1;
                    problems.push(format!("{txn_id}: acknowledged, not in history"));
                }
            }
            _ => {
                counts.not_acknowledged += 1;
                if in_history {
                    counts.posted_unacknowledged += 1;
                }
            }
        }
    }
    Ok((posted, problems))
}

/// The (member, message) pairs the streams got wrong so far: (missing, twice).
pub fn deliveries(load: &Load, posted: &HashSet<String>) -> (Vec<String>, Vec<String>) {
    let record = load.record.lock().unwrap();
    let (mut missing, mut twice) = (Vec::new(), Vec::new());
    for body in posted {
        let txn_id = txn_of(body);
        let Some(send) = record.sends.get(txn_id) else {
            continue;
        };
        let room = load.people[send.person].room;
        for &member in &load.rooms[room].1 {
            match record
                .deliveries
                .get(&(member, body.clone()))
                .copied()
                .unwrap_or(0)
            {
                0 => missing.push(format!("person {member} never got {body:?}")),
                1 => {}
                n => twice.push(format!("person {member} got {body:?} {n} times")),
            }
        }
    }
    (missing, twice)
}

/// Whether every send has finished in the clients' eyes.
pub fn settled(load: &Load) -> bool {
    load.record
        .lock()
        .unwrap()
        .sends
        .values()
        .all(|send| send.outcome != Outcome::InFlight)
}
