//! The chat service's HTTP API on the spawned binary, on SQLite and on PostgreSQL: behaviours
//! named for what they show, each from its own given (its own people and rooms), sharing one
//! server per backend.

mod common;

use std::time::{Duration, Instant};

use common::api::{eventually, Api, Person};
use common::behaviour;
use common::live;
use reqwest::Method;
use serde_json::{json, Value};

/// Sending goes through user-chat's credit policy: these tests send more than a day's default.
const ALLOWANCE: &str = "--free-messages-per-day";
const MANY: &str = "1000000";

/// An id no room or message has.
const NOBODY_KNOWS: &str = "01a20d49-b793-726d-81e9-4fc681e97995";

fn seqs(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

/// Given: Ada made the group and invited Bob, who joined; Cy is not in it.
struct Group {
    ada: Person,
    bob: Person,
    cy: Person,
    id: String,
}

impl Group {
    /// A path under the room: `/v1/rooms/{id}{rest}`.
    fn at(&self, rest: &str) -> String {
        format!("/v1/rooms/{}{rest}", self.id)
    }
}

async fn a_group(api: &Api) -> Group {
    let (ada, bob, cy) = (
        api.someone("Ada").await,
        api.someone("Bob").await,
        api.someone("Cy").await,
    );
    let (status, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Tea", "members": [bob.id]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();
    let joined = api
        .post(&bob, &format!("/v1/rooms/{id}/members"), json!(null))
        .await;
    assert_eq!(joined.0, 204, "{}", joined.1);
    Group { ada, bob, cy, id }
}

/// The message `who` sent with `body`, as sent.
async fn sent(api: &Api, who: &Person, room: &str, txn_id: &str, body: &str) -> Value {
    let (status, message) = api.send(who, room, txn_id, body).await;
    assert_eq!(status, 201, "{message}");
    message
}

/// The room's newest message in history, as `who` reads it.
async fn newest(api: &Api, who: &Person, group: &Group) -> Value {
    api.get(who, &group.at("/messages?limit=1")).await.1["items"][0].clone()
}

async fn a_group_is_its_creators_and_the_others_are_members_once_they_join(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let (status, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": " Tea ", "members": [bob.id]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "Tea", "names are trimmed");
    let room_id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(
        room["invited"],
        json!([bob.id]),
        "nobody is put in a room without consent"
    );
    let (status, refused) = api.send(&bob, &room_id, "early", "before joining").await;
    assert_eq!(status, 403, "an invitee is not a member yet: {refused}");
    let joins = format!("/v1/rooms/{room_id}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 204);
    let (_, room) = api.get(&ada, &format!("/v1/rooms/{room_id}")).await;
    let role_of = |who: &Person| {
        room["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == who.id.as_str())
            .map(|m| m["role"].clone())
    };
    assert_eq!(role_of(&ada), Some(json!("owner")));
    assert_eq!(role_of(&bob), Some(json!("member")));
    assert_eq!(room["invited"], json!([]));
    assert_eq!(room["last_seq"], 3, "created, invited, joined");
    let (status, bad) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "\u{200B} "}),
        )
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (422, Some("name"))
    );
}

async fn a_txn_id_makes_a_send_safe_to_retry(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob) = (&group.ada, &group.bob);
    let first = sent(api, bob, &group.id, "txn-1", "Shall we?").await;
    assert_eq!(
        (first["seq"].as_i64(), first["sender_id"].as_str()),
        (Some(4), Some(bob.id.as_str()))
    );
    let (status, retry) = api.send(bob, &group.id, "txn-1", "Shall we?").await;
    assert_eq!((status, &retry), (200, &first));
    let (status, reused) = api.send(bob, &group.id, "txn-1", "Something else").await;
    assert_eq!(
        (status, reused["type"].as_str()),
        (409, Some("urn:msa:problem:txn-id-reused"))
    );
    // Another sender's txn_id space is their own.
    assert_eq!(api.send(ada, &group.id, "txn-1", "Yes!").await.0, 201);
}

async fn only_members_read_or_post_and_bad_input_is_named(api: &Api) {
    let group = a_group(api).await;
    let (bob, cy) = (&group.bob, &group.cy);
    assert_eq!(api.send(cy, &group.id, "c-1", "hello?").await.0, 403);
    assert_eq!(api.get(cy, &group.at("/messages")).await.0, 403);
    assert_eq!(api.send(cy, NOBODY_KNOWS, "c-1", "hello?").await.0, 404);
    let (status, bad) = api
        .post(bob, &group.at("/messages"), json!({"body": "   "}))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<_> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["txn_id", "body"]);
    let long_txn = "t".repeat(65);
    assert_eq!(api.send(bob, &group.id, &long_txn, "hello").await.0, 422);
    let (status, _) = api.send(bob, &group.id, "long", &"x".repeat(4001)).await;
    assert_eq!(status, 422);
    assert_eq!(
        api.send(bob, &group.id, "max", &"x".repeat(4000)).await.0,
        201
    );
}

async fn admins_invite_and_moderate_and_a_ban_keeps_a_user_out(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob, cy) = (&group.ada, &group.bob, &group.cy);
    let invites = group.at("/invites");
    let cy_ref = json!({"user_id": cy.id});
    assert_eq!(
        api.post(bob, &invites, cy_ref.clone()).await.0,
        403,
        "a member"
    );
    let joins = group.at("/members");
    assert_eq!(api.post(cy, &joins, json!({})).await.0, 403, "not invited");
    assert_eq!(api.post(ada, &invites, cy_ref.clone()).await.0, 204);
    assert_eq!(api.post(cy, &joins, json!({})).await.0, 204);
    assert_eq!(api.send(cy, &group.id, "c-2", "hi all").await.0, 201);
    let kick = group.at(&format!("/members/{}", cy.id));
    assert_eq!(
        api.call(Method::DELETE, &kick, &bob.token, None).await.0,
        403
    );
    assert_eq!(
        api.call(Method::DELETE, &kick, &ada.token, None).await.0,
        204
    );
    // A ban keeps them out for good.
    assert_eq!(
        api.post(ada, &group.at("/bans"), cy_ref.clone()).await.0,
        204
    );
    assert_eq!(api.post(ada, &invites, cy_ref).await.0, 403);
    assert_eq!(api.post(cy, &joins, json!({})).await.0, 403);
    eventually(|| async { api.get(cy, "/v1/rooms").await.1["items"] == json!([]) }).await;
}

async fn the_last_owner_hands_over_before_leaving(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob) = (&group.ada, &group.bob);
    let leave = group.at("/members/me");
    let (status, refused) = api.call(Method::DELETE, &leave, &ada.token, None).await;
    assert_eq!(status, 409, "{refused}");
    let promote = group.at(&format!("/members/{}/role", bob.id));
    let owner = Some(json!({"role": "owner"}));
    assert_eq!(
        api.call(Method::PUT, &promote, &bob.token, owner.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        api.call(Method::PUT, &promote, &ada.token, owner).await.0,
        204
    );
    assert_eq!(
        api.call(Method::DELETE, &leave, &ada.token, None).await.0,
        204
    );
    assert_eq!(api.get(ada, &group.at("")).await.0, 403);
}

async fn history_pages_newest_first_or_oldest_first_after_a_seq(api: &Api) {
    let group = a_group(api).await;
    let bob = &group.bob;
    for i in 0..5 {
        sent(
            api,
            bob,
            &group.id,
            &format!("b-{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    let last = api.get(bob, &group.at("")).await.1["last_seq"]
        .as_i64()
        .unwrap();
    let history = group.at("/messages");
    eventually(|| async { seqs(&api.get(bob, &format!("{history}?limit=1")).await.1) == [last] })
        .await;
    let (_, newest) = api.get(bob, &format!("{history}?limit=3")).await;
    assert_eq!(seqs(&newest), [last, last - 1, last - 2]);
    assert_eq!(newest["items"][0]["body"], "message 4");
    let (_, older) = api
        .get(bob, &format!("{history}?limit=2&before={}", last - 2))
        .await;
    assert_eq!(seqs(&older), [last - 3, last - 4]);
    let (_, from_start) = api.get(bob, &format!("{history}?after=0&limit=2")).await;
    assert_eq!(
        seqs(&from_start),
        [4, 5],
        "membership events have seqs but are not messages"
    );
    for bad in ["before=x", "limit=101", "before=1&after=1"] {
        assert_eq!(
            api.get(bob, &format!("{history}?{bad}")).await.0,
            422,
            "{bad}"
        );
    }
    // My rooms show each room's last message.
    eventually(|| async {
        api.get(bob, "/v1/rooms").await.1["items"][0]["last_message"]["body"] == "message 4"
    })
    .await;
}

async fn an_edit_keeps_the_earlier_body_and_only_the_sender_edits(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob) = (&group.ada, &group.bob);
    let message = sent(api, bob, &group.id, "e-1", "first words").await;
    let path = group.at(&format!("/messages/{}", message["id"].as_str().unwrap()));
    let edit = |who: &Person, body: &str| {
        let (token, body) = (who.token.clone(), Some(json!({"body": body})));
        let path = path.clone();
        async move { api.call(Method::PATCH, &path, &token, body).await.0 }
    };
    assert_eq!(edit(bob, "second words").await, 204);
    assert_eq!(edit(bob, "").await, 422);
    assert_eq!(edit(ada, "her words").await, 403, "not the sender");
    assert_eq!(edit(bob, "third words").await, 204);
    eventually(|| async { newest(api, bob, &group).await["body"] == "third words" }).await;
    assert!(newest(api, bob, &group).await["edited_at"].is_string());
    let (_, edits) = api.get(bob, &format!("{path}/edits")).await;
    let earlier: Vec<_> = edits["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edit| edit["body"].as_str().unwrap())
        .collect();
    assert_eq!(earlier, ["first words", "second words"], "oldest first");
    let unknown = group.at(&format!("/messages/{NOBODY_KNOWS}"));
    let body = Some(json!({"body": "x"}));
    assert_eq!(
        api.call(Method::PATCH, &unknown, &bob.token, body).await.0,
        404
    );
}

async fn reactions_are_one_per_user_and_emoji_and_counted(api: &Api) {
    let group = a_group(api).await;
    let bob = &group.bob;
    let message = sent(api, bob, &group.id, "r-1", "react to me").await;
    let reaction = |emoji: &str| {
        group.at(&format!(
            "/messages/{}/reactions/{emoji}",
            message["id"].as_str().unwrap()
        ))
    };
    for emoji in ["%F0%9F%91%8D", "%F0%9F%91%8D", ":tada:"] {
        assert_eq!(
            api.call(Method::PUT, &reaction(emoji), &bob.token, None)
                .await
                .0,
            204
        );
    }
    assert_eq!(
        api.call(Method::PUT, &reaction("nope"), &bob.token, None)
            .await
            .0,
        422
    );
    let both = json!([{"emoji": ":tada:", "count": 1}, {"emoji": "👍", "count": 1}]);
    eventually(|| async { newest(api, bob, &group).await["reactions"] == both }).await;
    let removed = api
        .call(Method::DELETE, &reaction(":tada:"), &bob.token, None)
        .await;
    assert_eq!(removed.0, 204);
    let thumbs = json!([{"emoji": "👍", "count": 1}]);
    eventually(|| async { newest(api, bob, &group).await["reactions"] == thumbs }).await;
}

async fn a_redaction_takes_the_body_its_edits_and_reactions_and_keeps_the_place(api: &Api) {
    let group = a_group(api).await;
    let bob = &group.bob;
    let message = sent(api, bob, &group.id, "d-1", "regrettable").await;
    let path = group.at(&format!("/messages/{}", message["id"].as_str().unwrap()));
    let call = |method: Method, path: String, body: Option<Value>| {
        let token = bob.token.clone();
        async move { api.call(method, &path, &token, body).await.0 }
    };
    let edited = Some(json!({"body": "still regrettable"}));
    assert_eq!(call(Method::PATCH, path.clone(), edited).await, 204);
    assert_eq!(
        call(Method::PUT, format!("{path}/reactions/:tada:"), None).await,
        204
    );
    eventually(|| async { newest(api, bob, &group).await["reactions"] != json!([]) }).await;
    assert_eq!(call(Method::DELETE, path.clone(), None).await, 204);
    eventually(|| async { newest(api, bob, &group).await["redacted"] == true }).await;
    let gone = newest(api, bob, &group).await;
    assert_eq!(
        (
            gone["body"].as_str(),
            gone["reactions"].clone(),
            gone["seq"].clone()
        ),
        (Some(""), json!([]), message["seq"].clone())
    );
    assert_eq!(
        api.get(bob, &format!("{path}/edits")).await.1["items"],
        json!([])
    );
    let again = Some(json!({"body": "back?"}));
    assert_eq!(call(Method::PATCH, path, again).await, 410);
}

/// Commands about a message are decided on the room's and the message's streams, never on
/// history (which applies them a moment later).
async fn a_message_just_sent_can_be_changed_at_once_and_stays_deleted(api: &Api) {
    let group = a_group(api).await;
    let bob = &group.bob;
    let call = |method: Method, path: String, body: Option<Value>| {
        let token = bob.token.clone();
        async move { api.call(method, &path, &token, body).await.0 }
    };
    for round in 0..4 {
        let message = sent(api, bob, &group.id, &format!("fresh-{round}"), "just sent").await;
        let fresh = group.at(&format!("/messages/{}", message["id"].as_str().unwrap()));
        let reply = json!({"txn_id": format!("fresh-reply-{round}"), "body": "re", "reply_to": message["id"]});
        assert_eq!(
            call(Method::POST, group.at("/messages"), Some(reply)).await,
            201
        );
        let tada = format!("{fresh}/reactions/:tada:");
        assert_eq!(call(Method::PUT, tada.clone(), None).await, 204);
        let edited = Some(json!({"body": "edited"}));
        assert_eq!(call(Method::PATCH, fresh.clone(), edited).await, 204);
        assert_eq!(call(Method::DELETE, fresh.clone(), None).await, 204);
        let revived = Some(json!({"body": "back from the dead"}));
        assert_eq!(
            call(Method::PATCH, fresh.clone(), revived).await,
            410,
            "an edit right after the deletion"
        );
        assert_eq!(call(Method::PUT, tada, None).await, 410);
        assert_eq!(call(Method::DELETE, fresh, None).await, 204);
    }
}

async fn a_reply_names_a_message_of_the_same_room(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob) = (&group.ada, &group.bob);
    let first = sent(api, ada, &group.id, "q-1", "Tea at five?").await;
    let first_id = first["id"].as_str().unwrap();
    let reply = json!({"txn_id": "r-1", "body": "replying", "reply_to": first_id});
    let (status, replied) = api.post(bob, &group.at("/messages"), reply).await;
    assert_eq!(
        (status, replied["reply_to"].as_str()),
        (201, Some(first_id))
    );
    // Not a post of this room: another room's message, a seq of this room that is not a
    // message (its creation), one past its end, an unknown id.
    let (status, direct) = api
        .post(
            bob,
            "/v1/rooms",
            json!({"kind": "direct", "members": [ada.id]}),
        )
        .await;
    assert!(status == 201 || status == 200, "{direct}");
    let elsewhere = sent(
        api,
        bob,
        direct["id"].as_str().unwrap(),
        "other-room",
        "elsewhere",
    )
    .await;
    let room: uuid::Uuid = group.id.parse().unwrap();
    let forged = |seq| msa_chat::domain::MessageId::of(room, seq).to_string();
    let strays = [
        elsewhere["id"].as_str().unwrap().to_owned(),
        forged(1),
        forged(1_000_000),
        NOBODY_KNOWS.to_owned(),
    ];
    for (n, stray) in strays.into_iter().enumerate() {
        let reply = json!({"txn_id": format!("stray-{n}"), "body": "re", "reply_to": stray});
        let (status, refused) = api.post(bob, &group.at("/messages"), reply).await;
        assert_eq!(
            (status, refused["errors"][0]["field"].as_str()),
            (422, Some("reply_to")),
            "{stray}: {refused}"
        );
    }
}

async fn search_finds_words_in_my_rooms_only_and_never_deleted_bodies(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob, cy) = (&group.ada, &group.bob, &group.cy);
    // Cy was a member, and is no longer.
    let cy_ref = json!({"user_id": cy.id});
    assert_eq!(api.post(ada, &group.at("/invites"), cy_ref).await.0, 204);
    assert_eq!(api.post(cy, &group.at("/members"), json!({})).await.0, 204);
    let kick = group.at(&format!("/members/{}", cy.id));
    assert_eq!(
        api.call(Method::DELETE, &kick, &ada.token, None).await.0,
        204
    );
    let mut last = Value::Null;
    for i in 0..5 {
        last = sent(
            api,
            bob,
            &group.id,
            &format!("s-{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    let last = group.at(&format!("/messages/{}", last["id"].as_str().unwrap()));
    let corrected = Some(json!({"body": "message 4, corrected"}));
    assert_eq!(
        api.call(Method::PATCH, &last, &bob.token, corrected)
            .await
            .0,
        204
    );
    assert_eq!(
        api.call(Method::DELETE, &last, &bob.token, None).await.0,
        204
    );
    let find = |who: &Person, q: &str| {
        let (token, path) = (who.token.clone(), format!("/v1/search/messages?q={q}"));
        async move { api.call(Method::GET, &path, &token, None).await }
    };
    let bodies = |hits: Value| -> Vec<String> {
        hits["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["body"].as_str().unwrap().to_owned())
            .collect()
    };
    // Messages 0-3: message 4 was deleted (after an edit, whose body is gone too).
    eventually(|| async { bodies(find(bob, "MESSAGE").await.1).len() == 4 }).await;
    assert_eq!(bodies(find(bob, "message%203").await.1), ["message 3"]);
    assert_eq!(find(bob, "corrected").await.1["items"], json!([]));
    assert_eq!(
        find(cy, "message").await.1["items"],
        json!([]),
        "not Cy's room any more"
    );
    assert_eq!(
        find(bob, "%22%20OR%20*").await.0,
        200,
        "query syntax is not interpreted"
    );
    assert_eq!(find(bob, "").await.0, 422);
}

async fn my_own_post_moves_my_read_marker_which_never_moves_back(api: &Api) {
    let group = a_group(api).await;
    let (ada, bob, cy) = (&group.ada, &group.bob, &group.cy);
    let unread = || async { api.get(bob, "/v1/rooms").await.1["items"][0]["unread"].clone() };
    sent(api, ada, &group.id, "u-1", "anyone?").await;
    eventually(|| async { unread().await == 1 }).await;
    let mine = sent(api, bob, &group.id, "u-2", "me").await;
    eventually(|| async { unread().await == 0 }).await;
    let read = group.at("/read");
    let last = mine["seq"].as_i64().unwrap();
    assert_eq!(api.post(bob, &read, json!({"seq": last})).await.0, 204);
    assert_eq!(
        api.post(bob, &read, json!({"seq": 1})).await.0,
        204,
        "a marker never moves back"
    );
    assert_eq!(unread().await, 0);
    assert_eq!(api.post(bob, &read, json!({"seq": -1})).await.0, 422);
    assert_eq!(api.post(cy, &read, json!({"seq": 1})).await.0, 403);
}

async fn one_direct_room_per_pair_even_under_races(api: &Api) {
    let (dee, eve) = (api.someone("Dee").await, api.someone("Eve").await);
    let attempts = (0..10).map(|i| {
        let (who, other) = if i % 2 == 0 {
            (&dee, &eve)
        } else {
            (&eve, &dee)
        };
        api.post(
            who,
            "/v1/rooms",
            json!({"kind": "direct", "members": [other.id]}),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 201 || *status == 200),
        "{answers:?}"
    );
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(_, room)| room["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let (status, bad) = api
        .post(&dee, "/v1/rooms", json!({"kind": "direct", "members": []}))
        .await;
    assert_eq!(
        (status, bad["errors"][0]["field"].as_str()),
        (422, Some("kind"))
    );
    let (status, _) = api
        .post(&dee, "/v1/rooms", json!({"kind": "channel"}))
        .await;
    assert_eq!(status, 422);
}

/// Every behaviour of rooms, members, messages and live delivery, on one server.
async fn rooms_members_and_messages(api: &Api) {
    behaviour!(a_group_is_its_creators_and_the_others_are_members_once_they_join(api));
    behaviour!(a_txn_id_makes_a_send_safe_to_retry(api));
    behaviour!(only_members_read_or_post_and_bad_input_is_named(api));
    behaviour!(admins_invite_and_moderate_and_a_ban_keeps_a_user_out(api));
    behaviour!(the_last_owner_hands_over_before_leaving(api));
    behaviour!(history_pages_newest_first_or_oldest_first_after_a_seq(api));
    behaviour!(an_edit_keeps_the_earlier_body_and_only_the_sender_edits(
        api
    ));
    behaviour!(reactions_are_one_per_user_and_emoji_and_counted(api));
    behaviour!(a_redaction_takes_the_body_its_edits_and_reactions_and_keeps_the_place(api));
    behaviour!(a_message_just_sent_can_be_changed_at_once_and_stays_deleted(api));
    behaviour!(a_reply_names_a_message_of_the_same_room(api));
    behaviour!(search_finds_words_in_my_rooms_only_and_never_deleted_bodies(api));
    behaviour!(my_own_post_moves_my_read_marker_which_never_moves_back(api));
    behaviour!(one_direct_room_per_pair_even_under_races(api));
    behaviour!(the_room_list_follows_activity_and_counts_only_live_messages_from_others(api));
    behaviour!(invitations_are_listed_and_can_be_accepted_or_declined(api));
    behaviour!(admins_change_details_and_unban_and_members_see_read_receipts(api));
    behaviour!(live_delivery_and_resume(api));
}

/// Both chat projections rebuild from the events into the same answers (FTS5 included).
async fn the_projections_rebuild_into_the_same_answers(api: &Api, data_dir: &str) {
    let group = a_group(api).await;
    let bob = &group.bob;
    for i in 0..3 {
        sent(
            api,
            bob,
            &group.id,
            &format!("p-{i}"),
            &format!("message {i}"),
        )
        .await;
    }
    let answers = || async {
        (
            api.get(bob, "/v1/rooms").await.1,
            api.get(bob, "/v1/search/messages?q=message").await.1,
        )
    };
    eventually(|| async {
        let (rooms, found) = answers().await;
        rooms.to_string().contains("message 2") && found["items"].as_array().unwrap().len() == 3
    })
    .await;
    let before = answers().await;
    for projection in ["chat.history", "chat.search"] {
        let output = common::msa()
            .args(["projections", "rebuild", projection, "--data-dir", data_dir])
            .output()
            .unwrap();
        common::succeeded(&output);
    }
    assert_eq!(answers().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_members_and_messages_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let api = Api::start(&["--data-dir", data_dir, ALLOWANCE, MANY]);
    rooms_members_and_messages(&api).await;
    the_projections_rebuild_into_the_same_answers(&api, data_dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_members_and_messages_on_postgres() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    let api = Api::start(&["--database-url", &url, ALLOWANCE, MANY]);
    rooms_members_and_messages(&api).await;
}

/// The id of the message with `body`, once history has it.
async fn eventually_message(api: &Api, who: &Person, history: &str, body: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = api.get(who, &format!("{history}?limit=100")).await;
        if let Some(found) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["body"] == body)
        {
            return found["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{body} not in history within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn live_delivery_and_resume(api: &Api) {
    let (ada, bob, cy) = (
        api.someone("Ann").await,
        api.someone("Ben").await,
        api.someone("Cat").await,
    );
    let (_, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Live", "members": [bob.id]}),
        )
        .await;
    let room_id = room["id"].as_str().unwrap().to_owned();
    let joins = format!("/v1/rooms/{room_id}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 204);
    let mut ada_stream = live::connect(api, &ada, None, false).await;
    let mut bob_stream = live::connect(api, &bob, None, true).await;
    let mut cy_stream = live::connect(api, &cy, None, false).await;

    // Two users exchange messages live.
    api.send(&ada, &room_id, "a-1", "hello Ben").await;
    let got = live::messages(&mut bob_stream, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["room_id"].as_str(), got[0]["data"]["body"].as_str()),
        (Some(room_id.as_str()), Some("hello Ben"))
    );
    assert!(got[0]["seq"].as_i64().is_some() && got[0]["cursor"].as_str().is_some());
    api.send(&bob, &room_id, "b-1", "hi Ann").await;
    let got = live::messages(&mut ada_stream, 2).await;
    let bodies: Vec<_> = got
        .iter()
        .map(|f| f["data"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hello Ben", "hi Ann"]);

    // Typing notices reach the other members only, and are not stored.
    use futures::SinkExt;
    let typing = json!({"type": "typing", "room_id": room_id}).to_string();
    bob_stream
        .send(tokio_tungstenite::tungstenite::Message::text(typing))
        .await
        .unwrap();
    let notice = live::next_frame(&mut ada_stream)
        .await
        .expect("a typing notice");
    assert_eq!(
        (notice["type"].as_str(), notice["user_id"].as_str()),
        (Some("typing"), Some(bob.id.as_str()))
    );

    // Bob goes away; Ann posts 50; Bob resumes from his last cursor and gets exactly those 50.
    let got = live::messages(&mut bob_stream, 1).await; // his own "hi Ann"
    let cursor = got[0]["cursor"].as_str().unwrap().to_owned();
    drop(bob_stream);
    for i in 0..50 {
        assert_eq!(
            api.send(&ada, &room_id, &format!("burst-{i}"), &format!("burst {i}"))
                .await
                .0,
            201
        );
    }
    // Ann deletes burst 7 before Bob is back: its body is not sent again.
    let history = format!("/v1/rooms/{room_id}/messages");
    let seven = eventually_message(api, &ada, &history, "burst 7").await;
    let redact = format!("{history}/{seven}");
    assert_eq!(
        api.call(Method::DELETE, &redact, &ada.token, None).await.0,
        204
    );
    let mut bob_stream = live::connect(api, &bob, Some(&cursor), false).await;
    let missed = live::messages(&mut bob_stream, 51).await;
    let bodies: Vec<_> = missed
        .iter()
        .map(|f| f["data"]["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<_> = (0..50)
        .map(|i| {
            if i == 7 {
                String::new()
            } else {
                format!("burst {i}")
            }
        })
        .collect();
    assert_eq!(bodies, expected, "exactly the 50 missed, in order");
    let seqs: Vec<_> = missed.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // ... and then live again.
    api.send(&ada, &room_id, "after", "welcome back").await;
    let got = live::messages(&mut bob_stream, 1).await;
    assert_eq!(got[0]["data"]["body"], "welcome back");

    // A non-member receives nothing of the room.
    let nothing = live::next_frame(&mut cy_stream).await;
    assert!(nothing.is_none(), "{nothing:?}");
    // A room made with Cat invited reaches her open stream as the invitation; once she joins,
    // so does what is said there next.
    let (_, with_cy) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Later", "members": [cy.id]}),
        )
        .await;
    let invited = live::next_frame(&mut cy_stream)
        .await
        .expect("MemberInvited");
    assert_eq!(
        (invited["type"].as_str(), invited["room_id"].as_str()),
        (Some("MemberInvited"), with_cy["id"].as_str())
    );
    let joins = format!("/v1/rooms/{}/members", with_cy["id"].as_str().unwrap());
    assert_eq!(api.post(&cy, &joins, json!(null)).await.0, 204);
    let joined = live::next_frame(&mut cy_stream)
        .await
        .expect("MemberJoined");
    assert_eq!(joined["type"], "MemberJoined");
    api.send(&ada, with_cy["id"].as_str().unwrap(), "later", "hello Cat")
        .await;
    let got = live::messages(&mut cy_stream, 1).await;
    assert_eq!(got[0]["data"]["body"], "hello Cat");

    // Bad cursors and tokens are refused before the upgrade.
    let base = api.server.base.clone();
    let bad = reqwest::get(format!("{base}/v1/stream?since=garbage"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let request = reqwest::Client::new()
        .get(format!("{base}/v1/stream"))
        .bearer_auth("forged");
    let response = request
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// The room list is ordered by the time of each room's last message (an old busy group below a
/// direct chat that just got one), deleted messages are neither the preview nor unread, and my
/// own message moves my read marker.
async fn the_room_list_follows_activity_and_counts_only_live_messages_from_others(api: &Api) {
    let bob_nickname = common::api::numbered("Bob");
    let (ada, bob, cy) = (
        api.someone("Ada").await,
        api.person(&bob_nickname).await,
        api.someone("Cy").await,
    );
    let (_, group) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Busy", "members": [bob.id]}),
        )
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let joins = format!("/v1/rooms/{group}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 204);
    // Many messages in the group: its seq runs far ahead of the direct room's.
    for n in 0..20 {
        api.send(&ada, &group, &format!("g-{n}"), "busy").await;
    }
    let (_, direct) = api
        .post(&cy, "/v1/direct-chats", json!({"nickname": bob_nickname}))
        .await;
    let direct = direct["id"].as_str().unwrap().to_owned();
    let (_, last) = api.send(&cy, &direct, "d-1", "just now").await;
    let order = || async {
        let (_, rooms) = api.get(&bob, "/v1/rooms").await;
        rooms["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["unread"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually(|| async { order().await == vec![(direct.clone(), 1), (group.clone(), 20)] }).await;

    // A deleted message is not unread, and not the preview.
    let message = last["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{direct}/messages/{message}"),
            &cy.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually(|| async {
        let (_, rooms) = api.get(&bob, "/v1/rooms").await;
        let room = rooms["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == direct.as_str())
            .cloned()
            .unwrap();
        room["unread"] == 0 && room["last_message"].is_null()
    })
    .await;

    // Bob answers in the group: he has read it, so nothing there is unread for him.
    api.send(&bob, &group, "b-1", "read it all").await;
    eventually(|| async {
        order()
            .await
            .iter()
            .any(|(id, unread)| *id == group && *unread == 0)
    })
    .await;
    assert_eq!(
        order().await[0].0,
        group,
        "the group is the latest active now"
    );

    // The list comes a page at a time, in the same order, in both lists; a cursor not given
    // out is named.
    for list in ["/v1/rooms", "/v1/inbox"] {
        let (status, first) = api.get(&bob, &format!("{list}?limit=1")).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["items"][0]["id"], group.as_str(), "{list}: {first}");
        let cursor = first["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        let (_, second) = api
            .get(&bob, &format!("{list}?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(
            second["items"][0]["id"],
            direct.as_str(),
            "{list}: {second}"
        );
        let cursor = second["next_cursor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (_, rest) = api
            .get(&bob, &format!("{list}?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(
            (rest["items"].clone(), rest["next_cursor"].clone()),
            (json!([]), Value::Null),
            "{list}"
        );
        for bad in ["cursor=nope", "cursor=%27%3B--", "limit=0", "limit=101"] {
            let (status, problem) = api.get(&bob, &format!("{list}?{bad}")).await;
            let field = if bad.starts_with("cursor") {
                "cursor"
            } else {
                "limit"
            };
            assert_eq!(
                (status, problem["errors"][0]["field"].as_str()),
                (422, Some(field)),
                "{list}?{bad}: {problem}"
            );
        }
    }
}

/// Invitations are listed for the invitee (with who invited), and can be accepted or declined;
/// the inviter sees the outcome on the stream.
async fn invitations_are_listed_and_can_be_accepted_or_declined(api: &Api) {
    let (ada, bob, cy) = (
        api.someone("Ada").await,
        api.someone("Bob").await,
        api.someone("Cy").await,
    );
    let mut ada_stream = live::connect(api, &ada, None, false).await;
    let (_, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Plans", "members": [bob.id, cy.id]}),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let listed = |who: &Person| {
        let token = who.token.clone();
        let api = &api;
        async move {
            let (_, list) = api.call(Method::GET, "/v1/invites", &token, None).await;
            list["items"].as_array().unwrap().clone()
        }
    };
    eventually(|| async { listed(&bob).await.len() == 1 }).await;
    let invitation = &listed(&bob).await[0];
    assert_eq!(
        (
            invitation["room_id"].as_str(),
            invitation["room_name"].as_str(),
            invitation["invited_by"].as_str()
        ),
        (Some(room.as_str()), Some("Plans"), Some(ada.id.as_str()))
    );

    // Bob declines: the invitation is gone, Ada sees it, and Bob cannot join any more.
    let decline = format!("/v1/invites/{room}");
    let (status, _) = api.call(Method::DELETE, &decline, &bob.token, None).await;
    assert_eq!(status, 204);
    eventually(|| async { listed(&bob).await.is_empty() }).await;
    let mut seen = Vec::new();
    while let Some(frame) = live::next_frame(&mut ada_stream).await {
        seen.push(frame["type"].as_str().unwrap_or_default().to_owned());
    }
    assert!(seen.contains(&"InviteDeclined".to_owned()), "{seen:?}");
    let joins = format!("/v1/rooms/{room}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 403);
    let (status, _) = api.call(Method::DELETE, &decline, &bob.token, None).await;
    assert_eq!(status, 403, "declining twice: no longer invited");

    // Cy accepts: a member, and no longer listed.
    assert_eq!(api.post(&cy, &joins, json!(null)).await.0, 204);
    eventually(|| async { listed(&cy).await.is_empty() }).await;
    let (status, _) = api.call(Method::DELETE, &decline, &cy.token, None).await;
    assert_eq!(status, 409, "a member leaves rather than declines");
}

/// Admins rename a group and set its topic, unban, and members see how far each has read.
async fn admins_change_details_and_unban_and_members_see_read_receipts(api: &Api) {
    let (ada, bob, cy) = (
        api.someone("Ada").await,
        api.someone("Bob").await,
        api.someone("Cy").await,
    );
    let (_, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Old", "members": [bob.id, cy.id]}),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let joins = format!("/v1/rooms/{room}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 204);
    let path = format!("/v1/rooms/{room}");
    let change = |who: &Person, body: Value| {
        let (token, path, api) = (who.token.clone(), path.clone(), &api);
        async move { api.call(Method::PATCH, &path, &token, Some(body)).await }
    };
    let (status, view) = change(&ada, json!({"name": "New", "topic": "tea at 5"})).await;
    assert_eq!(
        (status, view["name"].as_str(), view["topic"].as_str()),
        (200, Some("New"), Some("tea at 5"))
    );
    assert_eq!(
        change(&bob, json!({"name": "Mine"})).await.0,
        403,
        "members do not"
    );
    assert_eq!(change(&ada, json!({"name": ""})).await.0, 422);
    let (_, view) = change(&ada, json!({"topic": null})).await;
    assert_eq!(
        (view["name"].as_str(), &view["topic"]),
        (Some("New"), &Value::Null)
    );
    eventually(|| async {
        let (_, rooms) = api.get(&bob, "/v1/rooms").await;
        rooms["items"][0]["name"] == "New"
    })
    .await;

    // A banned invitee cannot join; unbanned and invited again, they can.
    let bans = format!("/v1/rooms/{room}/bans");
    assert_eq!(
        api.post(&ada, &bans, json!({"user_id": cy.id})).await.0,
        204
    );
    assert_eq!(api.post(&cy, &joins, json!(null)).await.0, 403);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{bans}/{}", cy.id),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(status, 403, "members do not unban");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{bans}/{}", cy.id),
            &ada.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let invites = format!("/v1/rooms/{room}/invites");
    assert_eq!(
        api.post(&ada, &invites, json!({"user_id": cy.id})).await.0,
        204
    );
    assert_eq!(api.post(&cy, &joins, json!(null)).await.0, 204);

    // Read receipts: Bob posted, so he has read up to his message; Cy nothing yet.
    let (_, posted) = api.send(&bob, &room, "r-1", "hello").await;
    let seq = posted["seq"].as_i64().unwrap();
    let markers = format!("/v1/rooms/{room}/read-markers");
    eventually(|| async {
        let (_, list) = api.get(&ada, &markers).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == bob.id.as_str() && m["seq"] == seq)
    })
    .await;
    let stranger = api.person("Stranger").await;
    assert_eq!(api.get(&stranger, &markers).await.0, 403);
}
