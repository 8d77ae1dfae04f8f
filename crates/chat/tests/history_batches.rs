//! History and search written a batch at a time (runs of posted messages in one statement) hold
//! exactly what they hold when written one event at a time, on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use msa_chat::adapters::history::History;
use msa_chat::adapters::search::Search;
use msa_chat::domain::{Emoji, MessageBody, Role, Room, RoomEvent, RoomKind};
use msa_kernel::repository::encode;
use msa_kernel::{Aggregate, EventMetadata, ProjectionRunner, StreamId, Upcasters};
use msa_testkit::TestStores;
use sqlx::Row;
use uuid::Uuid;

/// A log that mixes long runs of posts (across rooms) with edits, reactions, redactions and
/// membership changes in between, so batches cut runs at every kind of event.
async fn write_log(stores: &TestStores) {
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let rooms: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut seqs = BTreeMap::new();
    let mut posted: Vec<(usize, Uuid)> = Vec::new();
    let append = |room: usize, change: RoomEvent| {
        let stream = StreamId::new(Room::KIND, rooms[room].to_string());
        let event = encode(&change, &EventMetadata::new_conversation(None)).unwrap();
        let version = change.seq() - 1;
        async move {
            stores
                .events
                .append(&stream, version, vec![event], None)
                .await
                .unwrap();
        }
    };
    for room in 0..rooms.len() {
        seqs.insert(room, 1);
        let members = BTreeMap::from([(users[0], Role::Owner), (users[1], Role::Member)]);
        append(
            room,
            RoomEvent::RoomCreated {
                seq: 1,
                kind: RoomKind::Group,
                name: Some(format!("room {room}")),
                creator: users[0],
                members,
            },
        )
        .await;
    }
    let body = |text: String| MessageBody::parse(&text).unwrap();
    for round in 0..150usize {
        // Edits, reactions and redactions go to the room of the message they name.
        let named = match round % 25 {
            11 => Some(posted[posted.len() - 3]),
            13 | 14 => Some(posted[posted.len() - 2]),
            17 => Some(posted[posted.len() - 4]),
            _ => None,
        };
        let room = named.map_or(round % rooms.len(), |(room, _)| room);
        let seq = {
            let seq = seqs.get_mut(&room).unwrap();
            *seq += 1;
            *seq
        };
        let change = match (round % 25, named) {
            (7, _) => RoomEvent::MemberJoined {
                seq,
                user_id: users[2 + round % 2],
            },
            (11, Some((_, message_id))) => RoomEvent::MessageEdited {
                seq,
                message_id,
                body: body(format!("edited in round {round}")),
            },
            (13 | 14, Some((_, message_id))) => RoomEvent::ReactionAdded {
                seq,
                message_id,
                user_id: users[round % 2],
                emoji: Emoji::parse(":tada:").unwrap(),
            },
            (17, Some((_, message_id))) => RoomEvent::MessageRedacted {
                seq,
                message_id,
                by: users[0],
            },
            _ => {
                let message_id = Uuid::now_v7();
                let reply_to = posted.last().filter(|_| round % 5 == 0).map(|(_, id)| *id);
                posted.push((room, message_id));
                RoomEvent::MessagePosted {
                    seq,
                    message_id,
                    sender_id: users[round % 2],
                    body: body(format!("message {round} about tea")),
                    reply_to,
                }
            }
        };
        append(room, change).await;
    }
}

/// Every table of history and search, row by row, as text.
async fn contents(stores: &TestStores) -> Vec<String> {
    let queries = [
        "SELECT room_id, kind, name, created_at, last_seq FROM chat_rooms ORDER BY room_id",
        "SELECT room_id, user_id, role FROM chat_members ORDER BY room_id, user_id",
        "SELECT room_id, seq, message_id, sender_id, body, reply_to, created_at, edited_at, redacted FROM chat_messages ORDER BY room_id, seq",
        "SELECT room_id, seq, message_id, body, edited_at FROM chat_message_edits ORDER BY room_id, seq",
        "SELECT room_id, message_id, user_id, emoji FROM chat_reactions ORDER BY message_id, user_id, emoji",
        "SELECT message_id, room_id, seq, sender_id, body, created_at FROM chat_search ORDER BY message_id",
        "SELECT room_id, user_id, seq FROM chat_read_markers ORDER BY room_id, user_id",
    ];
    let mut rows = Vec::new();
    for query in queries {
        for row in sqlx::query(query)
            .fetch_all(stores.read_models.pool())
            .await
            .unwrap()
        {
            let fields: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .map(|text| format!("{text:?}"))
                        .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                        .unwrap()
                })
                .collect();
            rows.push(fields.join(" | "));
        }
    }
    rows
}

async fn batches_write_what_single_events_write(stores: TestStores) {
    // History moves senders' read markers, a table of the chat context's migrations.
    msa_chat::migrator()
        .run(stores.read_models.pool())
        .await
        .unwrap();
    write_log(&stores).await;
    let search = Search {
        backend: stores.read_models.backend(),
    };
    let one_by_one =
        ProjectionRunner::new(stores.events.clone(), stores.read_models.clone()).with_batch_size(1);
    one_by_one.catch_up(&History).await.unwrap();
    one_by_one.catch_up(&search).await.unwrap();
    let single = contents(&stores).await;
    assert!(single.len() > 150, "the log reached the tables: {single:?}");

    // Batches of several sizes: runs are cut by batch ends and by other events.
    for batch_size in [7, 64, 500] {
        let batched = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone())
            .with_batch_size(batch_size);
        batched.rebuild(&History).await.unwrap();
        batched.rebuild(&search).await.unwrap();
        assert_eq!(contents(&stores).await, single, "batches of {batch_size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_write_what_single_events_write_on_sqlite() {
    batches_write_what_single_events_write(TestStores::sqlite(Upcasters::new()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_write_what_single_events_write_on_postgres() {
    let Some(stores) = TestStores::postgres(Upcasters::new()).await else {
        return;
    };
    batches_write_what_single_events_write(stores).await;
}
