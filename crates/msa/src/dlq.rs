//! `msa dlq list` and `msa dlq replay`: the events consumers gave up on.
//!
//! A dead letter is settled once its event is in the consumer's inbox, which is what a successful
//! replay leaves behind; so replaying twice handles nothing twice, and the list shows what is
//! still open. With Kafka the letters are read from `<context>.events.dlq`; in-process they sit in
//! the consumer's query database.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use msa_kafka::KafkaConfig;
use msa_kernel::bus::{events_topic, DeadLetter};
use msa_kernel::consumer::{Consumer, RetryPolicy};
use serde_json::json;

use crate::bus::{dead_letters_for, kafka_config};
use crate::cli::{DlqListArgs, DlqReplayArgs, StorageArgs};
use crate::consumers::{self, home_of};
use crate::storage::{self, ContextStores};

/// A dead letter and whether a replay has settled it (`None`: its consumer's home is unknown).
struct Listed {
    letter: DeadLetter,
    settled: Option<bool>,
}

/// Every dead letter of events from the contexts, oldest first.
async fn collect(
    storage: &StorageArgs,
    kafka: Option<&KafkaConfig>,
) -> Result<(Vec<Listed>, HashMap<&'static str, ContextStores>)> {
    let mut stores = HashMap::new();
    for context in crate::contexts::names() {
        stores.insert(context, storage::open(storage, context).await?);
    }
    let mut letters = Vec::new();
    for source in crate::contexts::event_sources() {
        let topic = events_topic(source);
        match kafka {
            // One topic holds the letters of every consumer of the source's events.
            Some(_) => {
                let dead = dead_letters_for(kafka, &stores[&source])?;
                letters.extend(
                    dead.list(&topic)
                        .await
                        .with_context(|| format!("reading {topic}.dlq"))?,
                );
            }
            // Each consumer keeps its letters at home.
            None => {
                for home in crate::contexts::names() {
                    let dead = dead_letters_for(None, &stores[&home])?;
                    letters.extend(dead.list(&topic).await?);
                }
            }
        }
    }
    letters.sort_by_key(|letter| letter.dead_at);
    let mut listed = Vec::with_capacity(letters.len());
    for letter in letters {
        let settled = match stores.get(home_of(&letter.consumer)) {
            Some(home) => Some(
                home.read_models
                    .was_handled(&letter.consumer, letter.delivery.event.event_id)
                    .await?,
            ),
            None => None,
        };
        listed.push(Listed { letter, settled });
    }
    Ok((listed, stores))
}

pub async fn list(args: DlqListArgs) -> Result<()> {
    let kafka = kafka_config(&args.kafka)?;
    let (listed, _) = collect(&args.storage, kafka.as_ref()).await?;
    let shown: Vec<_> = listed
        .iter()
        .filter(|l| {
            args.consumer
                .as_deref()
                .is_none_or(|c| c == l.letter.consumer)
        })
        .filter(|l| args.all || l.settled != Some(true))
        .collect();
    for Listed { letter, settled } in &shown {
        let event = &letter.delivery.event;
        let status = match settled {
            Some(true) => "settled",
            Some(false) => "open",
            None => "unknown-consumer",
        };
        if args.json {
            println!(
                "{}",
                json!({
                    "consumer": letter.consumer,
                    "status": status,
                    "dead_at": letter.dead_at,
                    "attempts": letter.attempts,
                    "error": letter.error,
                    "topic": letter.delivery.topic,
                    "event": event,
                })
            );
        } else {
            println!(
                "{}  {:<24} {:<8} {} {}@{} ({}, {} attempts): {}",
                letter.dead_at.format("%Y-%m-%d %H:%M:%S"),
                letter.consumer,
                status,
                event.event_type,
                event.stream_id,
                event.version,
                event.event_id,
                letter.attempts,
                letter.error
            );
        }
    }
    if !args.json {
        let open = shown.iter().filter(|l| l.settled != Some(true)).count();
        eprintln!("{} dead letters shown, {open} open", shown.len());
    }
    Ok(())
}

pub async fn replay(args: DlqReplayArgs) -> Result<()> {
    let kafka = kafka_config(&args.kafka)?;
    let (listed, stores) = collect(&args.storage, kafka.as_ref()).await?;
    let deps = crate::consumers::ConsumerDeps {
        payment_events: Some(stores["payment"].events.clone()),
        directory: Some(crate::user_chat::directory(&args.storage, &stores["user"]).await?),
        // Replays change no allowance-dependent answer: credits and refunds only.
        free_messages_per_day: 0,
    };
    let known = consumers::all(deps);
    let Some(spec) = known.iter().find(|spec| spec.name == args.consumer) else {
        let names: Vec<_> = known.iter().map(|spec| spec.name).collect();
        bail!(
            "MSA_DLQ_CONSUMER (--consumer): no consumer is named `{}` (known: {})",
            args.consumer,
            if names.is_empty() {
                "none yet".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let home = &stores[spec.home];
    let consumer = Consumer::new(
        home.read_models.clone(),
        dead_letters_for(kafka.as_ref(), home)?,
        RetryPolicy::default(),
    );
    let open: Vec<DeadLetter> = listed
        .into_iter()
        .filter(|l| l.letter.consumer == spec.name && l.settled == Some(false))
        .map(|l| l.letter)
        .collect();
    let replayed = consumer.replay(&*spec.handler, &open).await;
    let describe = |letter: &DeadLetter| {
        let event = &letter.delivery.event;
        format!(
            "{} {}@{} ({})",
            event.event_type, event.stream_id, event.version, event.event_id
        )
    };
    for letter in &replayed.handled {
        println!("handled {}", describe(letter));
    }
    for (letter, error) in &replayed.failing {
        println!("still failing {}: {error}", describe(letter));
    }
    let (handled, failed) = (replayed.handled.len(), replayed.failing.len());
    eprintln!(
        "{}: {handled} dead letters handled, {failed} still failing",
        spec.name
    );
    if failed > 0 {
        bail!(
            "{failed} dead letters of {} still fail; they stay open",
            spec.name
        );
    }
    Ok(())
}
