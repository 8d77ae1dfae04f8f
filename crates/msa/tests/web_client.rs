//! The web client as people use it: real headless Chromium over WebDriver, against the binary
//! spawned on a random port (and once against the microservices behind the gateway). Controls
//! are found by their accessible names (issue 23's names, which screen readers announce); the
//! ids and data attributes used besides are those the client documents for tests.
//!
//! A failing test leaves each browser's screenshot, HTML and console log under
//! `target/browser-screenshots/<test>/`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::api::Api;
use common::browser::{self, until, Browser, Lab, Options, Role, Shown, ENTER, SHIFT, WAIT};

/// Enter, as one key stroke wherever the focus is.
const ENTER_KEY: char = '\u{E007}';
use common::{free_port, spawn_serving, Server};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// Fast password hashing, and room for the many sign-ups of a test from one address.
const FAST_FLAGS: [&str; 6] = [
    "--password-hash-memory-kib",
    "64",
    "--password-hash-iterations",
    "1",
    "--password-attempts-per-minute",
    "100000",
];

/// The accessible names of the page's controls in one language.
struct Names {
    email: &'static str,
    password: &'static str,
    nickname: &'static str,
    sign_up: &'static str,
    log_in: &'static str,
    log_out: &'static str,
    rooms: &'static str,
    new_direct_chat: &'static str,
    open_chat: &'static str,
    messages: &'static str,
    message: &'static str,
    buy_credits: &'static str,
    pay: &'static str,
}

const EN: Names = Names {
    email: "Email",
    password: "Password",
    nickname: "Nickname",
    sign_up: "Sign up",
    log_in: "Log in",
    log_out: "Log out",
    rooms: "Rooms",
    new_direct_chat: "New direct chat",
    open_chat: "Open chat",
    messages: "Messages",
    message: "Message",
    buy_credits: "Buy credits",
    pay: "Pay",
};

const KO: Names = Names {
    email: "이메일",
    password: "비밀번호",
    nickname: "닉네임",
    sign_up: "가입하기",
    log_in: "로그인",
    log_out: "로그아웃",
    rooms: "대화방",
    new_direct_chat: "새 1:1 대화",
    open_chat: "대화 열기",
    messages: "메시지 목록",
    message: "메시지",
    buy_credits: "크레딧 구매",
    pay: "결제하기",
};

/// Someone using the page in a browser of their own.
struct Person {
    browser: Browser,
    names: &'static Names,
    email: String,
}

fn email_of(nickname: &str) -> String {
    format!("{}@example.com", nickname.to_lowercase())
}

impl Person {
    /// Opens the page at `base` in a new browser and signs up as `nickname`.
    async fn signs_up(lab: &Lab, base: &str, nickname: &str, options: Options) -> Person {
        let names = if options.language.starts_with("ko") {
            &KO
        } else {
            &EN
        };
        let person = Person {
            browser: lab.browser(nickname, options).await,
            names,
            email: email_of(nickname),
        };
        person.browser.open(&format!("{base}/")).await;
        person.browser.fill(names.email, &person.email).await;
        person.browser.fill(names.password, PASSWORD).await;
        person.browser.fill(names.nickname, nickname).await;
        person.browser.press(names.sign_up).await;
        person.sees_the_room_list().await;
        person
    }

    /// Opens the page at `base` in a new browser and logs in as `nickname` (signed up before).
    async fn logs_in(lab: &Lab, base: &str, nickname: &str, options: Options) -> Person {
        let person = Person {
            browser: lab.browser(nickname, options).await,
            names: &EN,
            email: email_of(nickname),
        };
        person.browser.open(&format!("{base}/")).await;
        person.browser.fill(EN.email, &person.email).await;
        person.browser.fill(EN.password, PASSWORD).await;
        person.browser.press(EN.log_in).await;
        person.sees_the_room_list().await;
        person
    }

    async fn sees_the_room_list(&self) {
        self.browser.get(Role::Region, self.names.rooms).await;
    }

    async fn sees_the_sign_in_form(&self) {
        self.browser.get(Role::TextBox, self.names.email).await;
        self.browser.get(Role::Button, self.names.log_in).await;
    }

    /// Opens a direct chat with `nickname` through **New direct chat**.
    async fn opens_a_direct_chat_with(&self, nickname: &str) {
        self.browser.press(self.names.new_direct_chat).await;
        self.browser.fill(self.names.nickname, nickname).await;
        self.browser.press(self.names.open_chat).await;
        self.browser.get(Role::Log, self.names.messages).await;
    }

    /// Opens the room listed as `name` in the room list.
    async fn opens_the_room(&self, name: &str) {
        let what = format!("{}: the room {name:?} in the room list", self.browser.name);
        let rooms = browser::xpath(Role::Region, self.names.rooms);
        let room = until(&what, WAIT, || {
            self.browser.find_within(&rooms, Role::Button, name)
        })
        .await;
        room.click().await.unwrap();
        self.browser.get(Role::Log, self.names.messages).await;
    }

    /// Types `text` into the message box and presses Enter.
    async fn sends(&self, text: &str) {
        self.browser.fill(self.names.message, text).await;
        self.browser.keys(ENTER).await;
    }

    async fn messages(&self) -> Result<Vec<Shown>, String> {
        self.browser.messages(self.names.messages).await
    }

    /// Waits until the room shows `text` once, in `state` where given; fails if it shows twice.
    async fn sees_once(&self, text: &str, state: Option<&str>) -> Shown {
        let what = format!(
            "{}: the message {text:?}{} in the room",
            self.browser.name,
            state.map(|s| format!(" ({s})")).unwrap_or_default()
        );
        until(&what, WAIT, || async {
            let all = self.messages().await?;
            let matching: Vec<&Shown> = all.iter().filter(|m| m.says(text)).collect();
            match matching.as_slice() {
                [one] if state.is_none() || one.state.as_deref() == state => Ok((*one).clone()),
                [] => Err(format!("{} messages, none says it", all.len())),
                [one] => Err(format!("shown as {one:?}")),
                many => panic!(
                    "{}: {text:?} shown {} times: {many:?}",
                    self.browser.name,
                    many.len()
                ),
            }
        })
        .await
    }

    /// A token for the API, as this person (a log-in of its own).
    async fn token(&self, api: &Api) -> String {
        let body = json!({"email": self.email, "password": PASSWORD});
        let (status, tokens) = api
            .call(Method::POST, "/v1/auth/token", "", Some(body))
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    }
}

/// The single server (SQLite in `data`) on `port` (0: any), with `extra` flags.
fn single_server(data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve",
        "--listen",
        &listen,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend(FAST_FLAGS);
    args.extend(extra);
    spawn_serving(&args)
}

/// The bodies of the room's last 100 messages, through the API.
async fn history_bodies(api: &Api, token: &str, room: &str) -> Vec<String> {
    let path = format!("/v1/rooms/{room}/messages?limit=100");
    let (status, page) = api.call(Method::GET, &path, token, None).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The id of the first room in the inbox of the holder of `token`.
async fn only_room(api: &Api, token: &str) -> String {
    until("a room in the inbox", WAIT, || async {
        let (_, inbox) = api.call(Method::GET, "/v1/inbox", token, None).await;
        inbox["items"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| inbox.to_string())
    })
    .await
}

/// Two people sign up in two browsers, Ada opens a direct chat with Bob by his nickname, and
/// each sees the other's messages arrive while the room is open.
async fn two_people_talk(lab: &Lab, base: &str) -> (Person, Person) {
    let ada = Person::signs_up(lab, base, "Ada", Options::default()).await;
    let bob = Person::signs_up(lab, base, "Bob", Options::default()).await;
    ada.opens_a_direct_chat_with("Bob").await;
    ada.sends("hello Bob").await;
    ada.sees_once("hello Bob", Some("sent")).await;
    bob.opens_the_room("Ada").await;
    bob.sees_once("hello Bob", None).await;
    // Live, both ways: each message arrives in the other's open room without a reload.
    bob.sends("hello Ada").await;
    ada.sees_once("hello Ada", None).await;
    ada.sends("how are you?").await;
    bob.sees_once("how are you?", None).await;
    bob.sees_once("hello Ada", Some("sent")).await;
    (ada, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_in_two_browsers_see_each_others_messages_live() {
    browser::run("two_people_live", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        let (ada, _bob) = two_people_talk(&lab, &server.base).await;
        // Shift+Enter makes a new line; Enter then sends both lines as one message.
        ada.browser.fill(ada.names.message, "two").await;
        ada.browser.keys(&format!("{SHIFT}{ENTER}")).await;
        ada.browser.keys("lines").await;
        ada.browser.keys(ENTER).await;
        let shown = until("the two-line message", WAIT, || async {
            let all = ada.messages().await?;
            all.into_iter()
                .find(|m| m.body.as_deref().is_some_and(|b| b.contains("lines")))
                .ok_or_else(|| "not shown".to_owned())
        })
        .await;
        assert_eq!(shown.body.as_deref().map(str::trim), Some("two\nlines"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_session_and_the_history() {
    browser::run("reload_keeps_session", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        let (ada, _bob) = two_people_talk(&lab, &server.base).await;
        ada.browser.reload().await;
        ada.sees_the_room_list().await;
        assert!(
            !ada.browser.shows(Role::TextBox, ada.names.email).await,
            "the sign-in form is back after a reload"
        );
        ada.opens_the_room("Bob").await;
        for text in ["hello Bob", "hello Ada", "how are you?"] {
            ada.sees_once(text, None).await;
        }
    })
    .await;
}

/// The account dialog changes the nickname and the picture; both are the server's after a
/// reload, and an address that is not https:// is refused with the field's reason shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_dialog_changes_the_nickname_and_the_picture() {
    browser::run("account_profile", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        let ada = Person::signs_up(&lab, &server.base, "Ada", Options::default()).await;
        ada.sees_the_room_list().await;
        let picture = "Picture (an https:// address)";
        ada.browser.press("Account").await;
        ada.browser
            .fill(picture, "http://example.com/ada.png")
            .await;
        ada.browser.press("Save").await;
        until("the refusal shown", WAIT, || async {
            let shown = ada
                .browser
                .script(
                    "return document.getElementById('account-status').textContent",
                    vec![],
                )
                .await;
            let shown = shown.as_str().unwrap_or_default().to_owned();
            if shown.contains("https://") {
                Ok(())
            } else {
                Err(format!("status {shown:?}"))
            }
        })
        .await;
        ada.browser
            .fill(picture, "https://example.com/ada.png")
            .await;
        ada.browser.fill(ada.names.nickname, "Ada2").await;
        ada.browser.press("Save").await;
        until("saved", WAIT, || async {
            let shown = ada
                .browser
                .script(
                    "return document.getElementById('account-status').textContent",
                    vec![],
                )
                .await;
            let shown = shown.as_str().unwrap_or_default().to_owned();
            if shown == "Saved." {
                Ok(())
            } else {
                Err(format!("status {shown:?}"))
            }
        })
        .await;
        ada.browser.reload().await;
        ada.sees_the_room_list().await;
        ada.browser.press("Account").await;
        for (field, expected) in [
            (picture, "https://example.com/ada.png"),
            (ada.names.nickname, "Ada2"),
        ] {
            let value = ada
                .browser
                .get(Role::TextBox, field)
                .await
                .prop("value")
                .await;
            assert_eq!(value.ok().flatten().as_deref(), Some(expected), "{field}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_server_is_down_arrives_exactly_once() {
    const TEXT: &str = "sent while the server was down";
    browser::run("sent_while_down", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = single_server(data.path(), port, &[]);
        let (ada, bob) = two_people_talk(&lab, &server.base).await;
        let base = server.base.clone();

        server.process.kill();
        ada.sends(TEXT).await;
        let pending = ada.sees_once(TEXT, Some("pending")).await;
        assert!(pending.txn_id.is_some(), "{pending:?}");
        // A few retries fail before the server is back.
        tokio::time::sleep(Duration::from_secs(3)).await;
        ada.sees_once(TEXT, Some("pending")).await;

        let server = single_server(data.path(), port, &[]);
        assert_eq!(server.base, base);
        let sent = ada.sees_once(TEXT, Some("sent")).await;
        assert_eq!(sent.txn_id, pending.txn_id);
        bob.sees_once(TEXT, None).await;

        let api = Api::at(server);
        let token = ada.token(&api).await;
        let room = only_room(&api, &token).await;
        // Later retries (after the stream reconnects, say) must not add a second copy.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let bodies = history_bodies(&api, &token, &room).await;
        let copies = bodies.iter().filter(|b| *b == TEXT).count();
        assert_eq!(copies, 1, "history: {bodies:?}");
        ada.sees_once(TEXT, Some("sent")).await;
        bob.sees_once(TEXT, None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_back_reaches_the_first_of_many_messages() {
    const MANY: usize = 300;
    browser::run("scroll_back", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &["--free-messages-per-day", "1000"]);
        let api = Api::at(server);
        let ada = api.person("Ada").await;
        api.person("Bob").await;
        let (status, room) = api
            .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
            .await;
        assert_eq!(status, 201, "{room}");
        let room = room["id"].as_str().unwrap().to_owned();
        for n in 1..=MANY {
            let (txn_id, body) = (format!("seed-{n}"), format!("message {n}"));
            loop {
                let (status, answer) = api.send(&ada, &room, &txn_id, &body).await;
                if status == 429 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                assert_eq!(status, 201, "message {n}: {answer}");
                break;
            }
        }

        let ada = Person::logs_in(&lab, &api.server.base, "Ada", Options::default()).await;
        ada.opens_the_room("Bob").await;
        ada.sees_once(&format!("message {MANY}"), None).await;
        let log = ada.browser.get(Role::Log, EN.messages).await;
        let log = serde_json::to_value(&log).unwrap();
        // Scroll to the top again and again, as a reader going back does, until the start. The
        // page holds a window of the messages, not all of them: each view shows a run of
        // consecutive messages, oldest first, never too many; together they are every message.
        let mut seen = std::collections::BTreeSet::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let view = ada
                .browser
                .script(
                    "const log = arguments[0];
                     log.scrollTop = 0;
                     log.dispatchEvent(new Event('scroll'));
                     return [!!document.getElementById('history-start'),
                             [...log.querySelectorAll('[data-message-id] .body')].map(e => e.textContent)];",
                    vec![log.clone()],
                )
                .await;
            let numbers: Vec<usize> = view[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|text| {
                    let text = text.as_str().unwrap();
                    text.strip_prefix("message ")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("a message {text:?} nobody sent"))
                })
                .collect();
            assert!(
                numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
                "a view shows consecutive messages, oldest first, each once: {numbers:?}"
            );
            assert!(
                numbers.len() <= 100,
                "the page keeps a window of messages, not {} of them",
                numbers.len()
            );
            seen.extend(numbers);
            if view[0] == true && seen.contains(&1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not within 60 s: the beginning of the conversation (#history-start); \
                 seen {} messages",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let expected: std::collections::BTreeSet<usize> = (1..=MANY).collect();
        assert_eq!(
            seen, expected,
            "scrolling back showed every message of the room"
        );
    })
    .await;
}

/// Composes as a Korean input method does: each step (jamo by jamo) an
/// `Input.imeSetComposition`, firing compositionstart (first) and compositionupdate.
async fn compose(browser: &Browser, steps: &[&str]) {
    for step in steps {
        let length = step.chars().count();
        browser
            .cdp(
                "Input.imeSetComposition",
                json!({"text": step, "selectionStart": length, "selectionEnd": length}),
            )
            .await;
    }
}

/// Ends the composition with `text` (compositionend; the text is then in the field).
async fn commit(browser: &Browser, text: &str) {
    browser.cdp("Input.insertText", json!({"text": text})).await;
}

/// How Chromium delivers the Enter that ends a composition, by platform.
#[derive(Clone, Copy, Debug)]
enum ImeEnter {
    /// Windows and Linux (and CDP's own IME): keydown with keyCode 229 (isComposing, key
    /// "Process"), then the composition ends; no other keydown.
    ComposingKeydownOnly,
    /// macOS: keydown with keyCode 229 (isComposing, key "Enter"), the composition ends, then
    /// keydown Enter (keyCode 13, isComposing false).
    ComposingKeydownThenEnter,
}

/// Types `syllables` as a Korean input method does (each syllable composed jamo by jamo,
/// committed when the next starts; the last still composing), then presses Enter once, as
/// `platform` delivers it.
async fn type_korean_and_press_enter(browser: &Browser, syllables: &[&[&str]], platform: ImeEnter) {
    let (last, before) = syllables.split_last().unwrap();
    for steps in before {
        compose(browser, steps).await;
        commit(browser, steps.last().unwrap()).await;
    }
    compose(browser, last).await;
    let key = match platform {
        ImeEnter::ComposingKeydownOnly => "Process",
        ImeEnter::ComposingKeydownThenEnter => "Enter",
    };
    browser
        .cdp(
            "Input.dispatchKeyEvent",
            json!({"type": "rawKeyDown", "windowsVirtualKeyCode": 229, "key": key,
                   "code": "Enter"}),
        )
        .await;
    commit(browser, last.last().unwrap()).await;
    if let ImeEnter::ComposingKeydownThenEnter = platform {
        browser.keys(ENTER).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn korean_composed_with_an_input_method_and_one_enter_sends_one_whole_message() {
    browser::run("korean_ime", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        // The Korean UI (browser language ko): the controls carry Korean names.
        let ada = Person::signs_up(&lab, &server.base, "Ada", Options::korean()).await;
        for button in [KO.log_out, KO.buy_credits] {
            ada.browser.get(Role::Button, button).await;
        }
        let api = Api::at(server);
        api.person("Bob").await;
        ada.opens_a_direct_chat_with("Bob").await;
        let field = ada.browser.get(Role::TextBox, KO.message).await;
        field.click().await.unwrap();
        let field = serde_json::to_value(&field).unwrap();
        let value = "return arguments[0].value";

        // Composing alone sends nothing: the whole word waits in the box.
        compose(&ada.browser, &["ㅇ", "아", "안"]).await;
        commit(&ada.browser, "안").await;
        compose(&ada.browser, &["ㄴ", "녀"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ada.browser.script(value, vec![field.clone()]).await, "안녀");
        let none = ada.messages().await.unwrap();
        assert!(none.is_empty(), "sent while composing: {none:?}");
        commit(&ada.browser, "녀").await;
        // Select all and delete: the box is empty again.
        ada.browser.keys("\u{E009}a\u{E000}\u{E003}").await;
        assert_eq!(ada.browser.script(value, vec![field.clone()]).await, "");

        let words: [(&str, &[&[&str]], ImeEnter); 2] = [
            (
                "안녕하세요",
                &[
                    &["ㅇ", "아", "안"],
                    &["ㄴ", "녀", "녕"],
                    &["ㅎ", "하"],
                    &["ㅅ", "세"],
                    &["ㅇ", "요"],
                ],
                ImeEnter::ComposingKeydownOnly,
            ),
            (
                "반가워요",
                &[
                    &["ㅂ", "바", "반"],
                    &["ㄱ", "가"],
                    &["ㅇ", "우", "워"],
                    &["ㅇ", "요"],
                ],
                ImeEnter::ComposingKeydownThenEnter,
            ),
        ];
        for (word, syllables, platform) in words {
            type_korean_and_press_enter(&ada.browser, syllables, platform).await;
            ada.sees_once(word, Some("sent")).await;
            // Nothing more comes of that one Enter: no second copy, no stray syllable.
            tokio::time::sleep(Duration::from_millis(700)).await;
            ada.sees_once(word, Some("sent")).await;
            let left = ada.browser.script(value, vec![field.clone()]).await;
            assert_eq!(left, "", "the box after {word:?} ({platform:?})");
        }

        let shown: Vec<Option<String>> = ada
            .messages()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(
            shown,
            [Some("안녕하세요".to_owned()), Some("반가워요".to_owned())]
        );
        let token = ada.token(&api).await;
        let room = only_room(&api, &token).await;
        let mut bodies = history_bodies(&api, &token, &room).await;
        bodies.sort();
        assert_eq!(
            bodies,
            ["반가워요", "안녕하세요"],
            "exactly the two whole messages"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_using_only_the_keyboard_signs_up_opens_a_chat_and_sends() {
    browser::run("keyboard_only", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let api = Api::at(single_server(data.path(), 0, &[]));
        api.person("Bob").await;
        let ada = lab.browser("Ada", Options::default()).await;
        ada.open(&format!("{}/", api.server.base)).await;
        ada.get(Role::TextBox, EN.email).await;
        // Tab from the top of the page to each control, type, and Enter on the buttons.
        let typing = [
            (EN.email, "ada@example.com"),
            (EN.password, PASSWORD),
            (EN.nickname, "Ada"),
        ];
        for (field, text) in typing {
            ada.tab_to(Role::TextBox, field).await;
            ada.keys(text).await;
        }
        ada.tab_to(Role::Button, EN.sign_up).await;
        ada.stroke(ENTER_KEY).await;
        ada.get(Role::Region, EN.rooms).await;
        ada.tab_to(Role::Button, EN.new_direct_chat).await;
        ada.stroke(ENTER_KEY).await;
        ada.tab_to(Role::TextBox, EN.nickname).await;
        ada.keys("Bob").await;
        ada.stroke(ENTER_KEY).await;
        ada.get(Role::Log, EN.messages).await;
        ada.tab_to(Role::TextBox, EN.message).await;
        ada.keys("typed without a mouse").await;
        ada.stroke(ENTER_KEY).await;
        let person = Person {
            browser: ada,
            names: &EN,
            email: email_of("Ada"),
        };
        person
            .sees_once("typed without a mouse", Some("sent"))
            .await;
    })
    .await;
}

/// Which check to make on each view.
#[derive(Clone, Copy)]
enum Check {
    /// axe-core: no serious or critical violation.
    Accessibility,
    /// Nothing scrolls sideways.
    NoSidewaysScroll,
}

async fn problems_on(lab: &Lab, browser: &Browser, view: &str, check: Check) -> Vec<String> {
    // Let the view settle (late renders, transitions) before judging it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    match check {
        Check::Accessibility => browser
            .serious_accessibility_findings(&lab.axe_script())
            .await
            .into_iter()
            .map(|finding| format!("{view}: {finding}"))
            .collect(),
        Check::NoSidewaysScroll => {
            let (scroll, client) = browser.page_widths().await;
            let phone = Options::phone().width as i64;
            assert!(
                client <= phone,
                "{view}: the window is {client} px wide, not a phone's"
            );
            if scroll > client {
                vec![format!(
                    "{view}: the page is {scroll} px wide in a {client} px window"
                )]
            } else {
                Vec::new()
            }
        }
    }
}

/// Visits every view (signed out, the room list, the new direct chat dialog, a room, a room
/// offering credits, buying credits, the account, search and message-actions dialogs, a new
/// group and its members) and checks each.
async fn every_view(lab: &Lab, options: Options, check: Check) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let free = ["--free-messages-per-day", "1"];
    let api = Api::at(single_server(data.path(), 0, &free));
    let base = api.server.base.clone();
    api.person("Bob").await;
    let browser = lab.browser("Ada", options).await;
    let mut problems = Vec::new();
    browser.open(&format!("{base}/")).await;
    browser.get(Role::TextBox, EN.email).await;
    problems.extend(problems_on(lab, &browser, "signed out", check).await);

    browser.fill(EN.email, &email_of("Ada")).await;
    browser.fill(EN.password, PASSWORD).await;
    browser.fill(EN.nickname, "Ada").await;
    browser.press(EN.sign_up).await;
    let ada = Person {
        browser,
        names: &EN,
        email: email_of("Ada"),
    };
    ada.sees_the_room_list().await;
    problems.extend(problems_on(lab, &ada.browser, "the room list", check).await);

    ada.browser.press(EN.new_direct_chat).await;
    ada.browser.get(Role::Button, EN.open_chat).await;
    problems.extend(problems_on(lab, &ada.browser, "the new direct chat dialog", check).await);
    ada.browser.fill(EN.nickname, "Bob").await;
    ada.browser.press(EN.open_chat).await;
    ada.browser.get(Role::Log, EN.messages).await;
    ada.sends("a message, so the room is not empty").await;
    ada.sees_once("a message, so the room is not empty", Some("sent"))
        .await;
    problems.extend(problems_on(lab, &ada.browser, "a room", check).await);

    // The free allowance is 1 here: the next message is refused and the page offers credits.
    ada.sends("one too many").await;
    ada.sees_once("one too many", Some("failed")).await;
    let offer = ada
        .browser
        .get_within("//*[@role='alert']", Role::Button, EN.buy_credits)
        .await;
    problems.extend(problems_on(lab, &ada.browser, "a room offering credits", check).await);

    offer.click().await.unwrap();
    ada.browser.get(Role::Button, EN.pay).await;
    problems.extend(problems_on(lab, &ada.browser, "buying credits", check).await);
    closes_the_dialog(&ada.browser, Role::Button, EN.pay).await;

    // The dialogs opened from the header and from a message.
    let dialogs = [
        (
            "Account",
            Role::Button,
            "Change password",
            "the account dialog",
        ),
        ("Search messages", Role::Button, "Find", "the search dialog"),
    ];
    for (opener, role, inside, view) in dialogs {
        // On a phone the room list and a room are separate screens.
        if !ada.browser.shows(Role::Button, opener).await
            && ada.browser.shows(Role::Button, "Back to rooms").await
        {
            ada.browser.press("Back to rooms").await;
        }
        ada.browser.press(opener).await;
        ada.browser.get(role, inside).await;
        problems.extend(problems_on(lab, &ada.browser, view, check).await);
        closes_the_dialog(&ada.browser, role, inside).await;
    }
    if !ada.browser.shows(Role::Log, EN.messages).await {
        ada.opens_the_room("Bob").await;
    }
    let actions = until("a message's actions button", WAIT, || async {
        ada.browser
            .client
            .find(fantoccini::Locator::Css("#messages .actions-button"))
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    actions.click().await.unwrap();
    ada.browser.get(Role::Button, "Reply").await;
    problems.extend(problems_on(lab, &ada.browser, "a message's actions", check).await);
    closes_the_dialog(&ada.browser, Role::Button, "Reply").await;

    // A group room and its members.
    if ada.browser.shows(Role::Button, "Back to rooms").await {
        ada.browser.press("Back to rooms").await;
    }
    ada.browser.press("New group").await;
    ada.browser.fill("Group name", "Team").await;
    problems.extend(problems_on(lab, &ada.browser, "the new group dialog", check).await);
    ada.browser.press("Create").await;
    ada.browser.press("Members").await;
    ada.browser.get(Role::TextBox, "Invite by nickname").await;
    problems.extend(problems_on(lab, &ada.browser, "a group's members", check).await);
    problems
}

/// Closes the open dialog with Escape, as a keyboard user does, and waits until the control
/// of `role` named `inside` (in it) is gone.
async fn closes_the_dialog(browser: &Browser, role: Role, inside: &str) {
    browser.stroke('\u{E00C}').await;
    let what = format!("the dialog with {inside:?} closed by Escape");
    until(&what, WAIT, || async {
        match browser.find(role, inside).await {
            Ok(_) => Err("still open".to_owned()),
            Err(_) => Ok(()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_nothing_serious_on_any_view() {
    browser::run("axe", |lab: Arc<Lab>| async move {
        let problems = every_view(&lab, Options::default(), Check::Accessibility).await;
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_scrolls_sideways_on_a_phone() {
    browser::run("phone_width", |lab: Arc<Lab>| async move {
        let problems = every_view(&lab, Options::phone(), Check::NoSidewaysScroll).await;
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_out_of_credits_buys_some_in_the_page_and_goes_on() {
    browser::run("out_of_credits", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &["--free-messages-per-day", "1"]);
        let api = Api::at(server);
        api.person("Bob").await;
        let ada = Person::signs_up(&lab, &api.server.base, "Ada", Options::default()).await;
        ada.opens_a_direct_chat_with("Bob").await;
        ada.sends("the free one").await;
        ada.sees_once("the free one", Some("sent")).await;

        // The second is refused (402): the page offers credits.
        ada.sends("the paid one").await;
        ada.sees_once("the paid one", Some("failed")).await;
        let offer = ada
            .browser
            .get_within("//*[@role='alert']", Role::Button, EN.buy_credits)
            .await;
        offer.click().await.unwrap();
        ada.browser.press(EN.pay).await;

        // Paid through the sandbox: the refused message goes out, and so does the next.
        ada.sees_once("the paid one", Some("sent")).await;
        until("#balance showing 99 credits", WAIT, || async {
            let balance = ada
                .browser
                .client
                .find(fantoccini::Locator::Id("balance"))
                .await
                .map_err(|e| e.to_string())?;
            let shown = balance.text().await.map_err(|e| e.to_string())?;
            (shown.trim() == "99").then_some(()).ok_or(shown)
        })
        .await;
        ada.sends("and one more").await;
        ada.sees_once("and one more", Some("sent")).await;

        let token = ada.token(&api).await;
        let room = only_room(&api, &token).await;
        let mut bodies = history_bodies(&api, &token, &room).await;
        bodies.sort();
        assert_eq!(bodies, ["and one more", "the free one", "the paid one"]);
        let (_, wallet) = api.call(Method::GET, "/v1/wallet", &token, None).await;
        assert_eq!(wallet["balance"], 98, "{wallet}");
    })
    .await;
}

/// The browser's `msa_refresh` cookie (HttpOnly, so read through the DevTools protocol).
async fn refresh_cookie(browser: &Browser, refresh_url: &str) -> Value {
    let cookies = browser
        .cdp("Network.getCookies", json!({"urls": [refresh_url]}))
        .await;
    cookies["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "msa_refresh")
        .cloned()
        .unwrap_or_else(|| panic!("no msa_refresh cookie for {refresh_url}: {cookies}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_session() {
    browser::run("log_out", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        let base = server.base.clone();
        let ada = Person::signs_up(&lab, &base, "Ada", Options::default()).await;
        let refresh_url = format!("{base}/v1/auth/refresh");
        let cookie = refresh_cookie(&ada.browser, &refresh_url).await;
        assert_eq!(cookie["httpOnly"], true, "{cookie}");
        assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
        let readable = ada.browser.script("return document.cookie", vec![]).await;
        assert!(
            !readable
                .as_str()
                .unwrap_or_default()
                .contains("msa_refresh"),
            "page scripts can read the refresh token: {readable}"
        );

        ada.browser.press(EN.log_out).await;
        ada.sees_the_sign_in_form().await;
        ada.browser.reload().await;
        ada.sees_the_sign_in_form().await;
        assert!(
            !ada.browser.shows(Role::Region, EN.rooms).await,
            "the room list after logging out and reloading"
        );

        let refresh = |cookie: Value| {
            reqwest::Client::new()
                .post(&refresh_url)
                .header(
                    "cookie",
                    format!("msa_refresh={}", cookie["value"].as_str().unwrap()),
                )
                .header("x-requested-with", "msa-web")
                .json(&json!({}))
                .send()
        };
        let answer = refresh(cookie).await.unwrap();
        assert_eq!(
            answer.status(),
            401,
            "the old refresh cookie after logging out: {}",
            answer.text().await.unwrap_or_default()
        );
        // The same request with the cookie of a new log-in is answered (so the refusal above
        // is the log-out's doing).
        ada.browser.fill(EN.email, &ada.email).await;
        ada.browser.fill(EN.password, PASSWORD).await;
        ada.browser.press(EN.log_in).await;
        ada.sees_the_room_list().await;
        let answer = refresh(refresh_cookie(&ada.browser, &refresh_url).await)
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "a fresh refresh cookie");
        drop(server);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_talk_live_through_the_gateway() {
    let Some((_services, gateway)) = common::microservices::Microservices::start(&[]).await else {
        return;
    };
    let ready = format!("{}/readyz", gateway.base);
    common::api::within(Duration::from_secs(60), "the gateway ready", || async {
        reqwest::get(&ready)
            .await
            .is_ok_and(|answer| answer.status() == 200)
    })
    .await;
    browser::run("gateway_two_people_live", |lab: Arc<Lab>| async move {
        let (ada, _bob) = two_people_talk(&lab, &gateway.base).await;
        ada.browser.reload().await;
        ada.sees_the_room_list().await;
        ada.opens_the_room("Bob").await;
        ada.sees_once("how are you?", None).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_browser_test_leaves_a_screenshot_of_each_browser() {
    use futures::FutureExt;
    if browser::Tools::find().is_none() {
        return;
    }
    let test = "harness_leaves_evidence";
    let outcome = std::panic::AssertUnwindSafe(browser::run(test, |lab: Arc<Lab>| async move {
        for name in ["First", "Second"] {
            let browser = lab.browser(name, Options::default()).await;
            let page = format!("data:text/html,<title>{name}</title><h1>{name} was here</h1>");
            browser.open(&page).await;
        }
        panic!("a browser test failing on purpose");
    }))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "the failure went on");
    let folder = browser::evidence_folder(test);
    for name in ["First", "Second"] {
        let png = std::fs::read(folder.join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png is a PNG");
        let html = std::fs::read_to_string(folder.join(format!("{name}.html"))).unwrap();
        assert!(html.contains(&format!("{name} was here")), "{html}");
    }
}

/// The XPath of the message in the log whose text is `body`.
fn message_saying(body: &str) -> String {
    assert!(!body.contains('\''), "a body without quotes: {body}");
    format!("//*[@role='log']//li[p[contains(@class, 'body') and normalize-space()='{body}']]")
}

impl Person {
    /// Opens the actions of the message saying `body`: its "⋯" button, named after its sender
    /// (`sender`: a nickname, or "You").
    async fn opens_the_actions_of(&self, body: &str, sender: &str) {
        let name = format!("Actions for the message from {sender}");
        let button = self
            .browser
            .get_within(&message_saying(body), Role::Button, &name)
            .await;
        button.click().await.unwrap();
        self.browser.get(Role::Button, "Reply").await;
    }

    /// Waits until the message saying `body` shows `detail` in it (a reaction, a quote…).
    async fn sees_in(&self, body: &str, detail: &str) -> Shown {
        let what = format!("{}: {detail:?} in the message {body:?}", self.browser.name);
        until(&what, WAIT, || async {
            let all = self.messages().await?;
            let message = all
                .iter()
                .find(|m| m.says(body))
                .ok_or_else(|| format!("{} messages, none says {body:?}", all.len()))?;
            message
                .text
                .contains(detail)
                .then(|| message.clone())
                .ok_or_else(|| format!("it shows {:?}", message.text))
        })
        .await
    }

    /// Waits until no message says `body` any more.
    async fn no_longer_sees(&self, body: &str) {
        let what = format!("{}: {body:?} gone from the room", self.browser.name);
        until(&what, WAIT, || async {
            let all = self.messages().await?;
            match all.iter().find(|m| m.says(body)) {
                Some(still) => Err(format!("still shown: {still:?}")),
                None => Ok(()),
            }
        })
        .await
    }

    /// The text of the element with `id` now.
    async fn text_of(&self, id: &str) -> String {
        let text = self
            .browser
            .script(
                "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
                vec![json!(id)],
            )
            .await;
        text.as_str().unwrap_or_default().trim().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_reacted_to_replied_to_edited_and_deleted_in_both_browsers() {
    browser::run("message_actions", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &[]);
        let (ada, bob) = two_people_talk(&lab, &server.base).await;

        // React: Bob likes Ada's question; both see the count.
        bob.opens_the_actions_of("how are you?", "Ada").await;
        bob.browser.press("React 👍").await;
        bob.sees_in("how are you?", "👍 1").await;
        ada.sees_in("how are you?", "👍 1").await;

        // Reply: Bob answers that question; the answer quotes it, for both.
        bob.opens_the_actions_of("how are you?", "Ada").await;
        bob.browser.press("Reply").await;
        until("Bob's reply bar", WAIT, || async {
            let bar = bob.text_of("reply-text").await;
            (bar == "Replying to Ada: how are you?")
                .then_some(())
                .ok_or(bar)
        })
        .await;
        bob.sends("fine, thanks").await;
        bob.sees_in("fine, thanks", "↪ Ada: how are you?").await;
        ada.sees_in("fine, thanks", "↪ You: how are you?").await;

        // Edit: Ada rewrites her question; both see the new text, marked edited, and the
        // reply quotes it as it is now.
        ada.opens_the_actions_of("how are you?", "You").await;
        ada.browser.press("Edit").await;
        ada.browser.fill("Edit message", "how have you been?").await;
        ada.browser.press("Save").await;
        for person in [&ada, &bob] {
            person.sees_in("how have you been?", "edited").await;
            person.no_longer_sees("how are you?").await;
            person.sees_in("fine, thanks", "how have you been?").await;
        }

        // Delete: Ada deletes her greeting; in its place both see that it was deleted.
        let greeting = ada.sees_once("hello Bob", None).await;
        ada.opens_the_actions_of("hello Bob", "You").await;
        ada.browser.press("Delete").await;
        for person in [&ada, &bob] {
            person.no_longer_sees("hello Bob").await;
            let deleted = person.sees_once("Message deleted", None).await;
            assert_eq!(deleted.id, greeting.id, "{}", person.browser.name);
        }

        // Typing: while Ada types (a while after her last typing notice), Bob is told.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            bob.text_of("typing").await,
            "",
            "a typing notice before any typing"
        );
        ada.browser.fill(EN.message, "I am wri").await;
        until("Bob told that Ada is typing", WAIT, || async {
            let notice = bob.text_of("typing").await;
            (notice == "Ada is typing…").then_some(()).ok_or(notice)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_a_message_and_opens_its_room() {
    browser::run("search", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let api = Api::at(single_server(data.path(), 0, &[]));
        api.person("Bob").await;
        let ada = Person::signs_up(&lab, &api.server.base, "Ada", Options::default()).await;
        ada.opens_a_direct_chat_with("Bob").await;
        ada.sends("the blue whale sings at dawn").await;
        ada.sends("nothing to see here").await;
        ada.sees_once("nothing to see here", Some("sent")).await;
        if ada.browser.shows(Role::Button, "Back to rooms").await {
            ada.browser.press("Back to rooms").await;
        }

        ada.browser.press("Search messages").await;
        ada.browser.fill("Words to find", "whale").await;
        // Search reads a projection: ask again until it has the message.
        let hit = until("a search result for \"whale\"", WAIT, || async {
            ada.browser.press("Find").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let results = browser::xpath(Role::Any, "Search messages");
            let buttons = ada
                .browser
                .client
                .find_all(fantoccini::Locator::XPath(&format!(
                    "{results}//ul[@id='search-results']//button"
                )))
                .await
                .map_err(|e| e.to_string())?;
            let mut texts = Vec::new();
            for button in buttons {
                texts.push(button.text().await.map_err(|e| e.to_string())?);
            }
            match texts.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(format!("{texts:?}")),
            }
        })
        .await;
        assert!(hit.contains("the blue whale sings at dawn"), "{hit}");
        assert!(hit.starts_with("Bob"), "the result names its room: {hit}");
        assert_eq!(ada.text_of("search-status").await, "1 found");

        let result = ada
            .browser
            .get_within("//ul[@id='search-results']", Role::Button, &hit)
            .await;
        result.click().await.unwrap();
        ada.browser.get(Role::Log, EN.messages).await;
        ada.sees_once("the blue whale sings at dawn", None).await;
        assert_eq!(ada.text_of("room-title").await, "Bob");

        // Words nobody wrote find nothing.
        ada.browser.press("Search messages").await;
        ada.browser.fill("Words to find", "narwhal").await;
        ada.browser.press("Find").await;
        until("\"0 found\"", WAIT, || async {
            let status = ada.text_of("search-status").await;
            (status == "0 found").then_some(()).ok_or(status)
        })
        .await;
    })
    .await;
}

/// Bob's read marker in `room` (the seq he has read up to; 0: none).
async fn read_marker(api: &Api, bob: &common::api::Person, room: &str) -> u64 {
    let (status, markers) = api
        .get(bob, &format!("/v1/rooms/{room}/read-markers"))
        .await;
    assert_eq!(status, 200, "{markers}");
    markers["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["user_id"] == bob.id.as_str())
        .and_then(|m| m["seq"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_marker_follows_what_is_read_and_a_burst_stays_light() {
    const SEEDED: usize = 120;
    const BURST: usize = 400;
    browser::run("read_marker_and_burst", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        // A burst from one sender: the per-user and per-address limits lifted for it.
        let flags = [
            "--free-messages-per-day",
            "10000",
            "--rate-limit-per-user",
            "1000000",
            "--rate-limit-per-address",
            "1000000",
        ];
        let api = Api::at(single_server(data.path(), 0, &flags));
        let ada = api.person("Ada").await;
        let bob_api = api.person("Bob").await;
        let (status, room) = api
            .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
            .await;
        assert_eq!(status, 201, "{room}");
        let room = room["id"].as_str().unwrap().to_owned();
        let send = |n: usize, body: String| {
            let (api, ada, room) = (&api, &ada, &room);
            async move {
                let (status, posted) = api.send(ada, room, &format!("t-{n}"), &body).await;
                assert_eq!(status, 201, "{posted}");
                posted["seq"].as_u64().unwrap()
            }
        };
        let mut last = 0;
        for n in 1..=SEEDED {
            last = send(n, format!("message {n}")).await;
        }

        // Bob opens the room at its newest message: his marker moves there.
        let bob = Person::logs_in(&lab, &api.server.base, "Bob", Options::default()).await;
        bob.opens_the_room("Ada").await;
        bob.sees_once(&format!("message {SEEDED}"), None).await;
        common::api::within(WAIT, "Bob's marker at the newest message", || async {
            read_marker(&api, &bob_api, &room).await == last
        })
        .await;

        // Scrolled back to earlier messages, Bob has not read one that arrives meanwhile.
        let log = serde_json::to_value(bob.browser.get(Role::Log, EN.messages).await).unwrap();
        let scroll = |to_top: bool| {
            let log = log.clone();
            let browser = &bob.browser;
            async move {
                browser
                    .script(
                        "const log = arguments[0];
                         log.scrollTop = arguments[1] ? 0 : log.scrollHeight;
                         log.dispatchEvent(new Event('scroll'));",
                        vec![log, json!(to_top)],
                    )
                    .await;
            }
        };
        for _ in 0..5 {
            scroll(true).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let unseen = send(SEEDED + 1, "while you were reading".into()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            read_marker(&api, &bob_api, &room).await,
            last,
            "the marker moved to a message Bob never had on screen"
        );
        // Back at the bottom he sees it, and the marker follows.
        until("Bob back at the newest message", WAIT, || async {
            scroll(false).await;
            let shown = bob.messages().await?;
            shown
                .iter()
                .any(|m| m.says("while you were reading"))
                .then_some(())
                .ok_or_else(|| format!("{} shown, not the new one", shown.len()))
        })
        .await;
        common::api::within(WAIT, "Bob's marker at the message he scrolled to", || async {
            read_marker(&api, &bob_api, &room).await == unseen
        })
        .await;

        // A burst: the page keeps a window of messages in the DOM and says a summary to screen
        // readers, not every message.
        bob.browser
            .script(
                "window.announced = [];
                 new MutationObserver(() => {
                     const text = document.getElementById('announcer').textContent;
                     if (text) window.announced.push(text);
                 }).observe(document.getElementById('announcer'), {childList: true, characterData: true, subtree: true});",
                vec![],
            )
            .await;
        for n in 1..=BURST {
            send(SEEDED + 1 + n, format!("burst {n}")).await;
        }
        bob.sees_once(&format!("burst {BURST}"), None).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let shown = bob.messages().await.unwrap();
        assert!(
            shown.len() <= 100,
            "{} messages in the DOM after a burst of {BURST}",
            shown.len()
        );
        let announced = bob.browser.script("return window.announced", vec![]).await;
        let announced: Vec<String> = serde_json::from_value(announced).unwrap();
        assert!(
            !announced.is_empty() && announced.len() <= 20,
            "{} announcements of a burst of {BURST}: {announced:?}",
            announced.len()
        );
        assert!(
            announced
                .iter()
                .any(|a| a.ends_with("new messages from Ada")),
            "a summary of the burst: {announced:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_opens_from_the_service_worker_while_the_server_is_down() {
    browser::run("offline_shell", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let mut server = single_server(data.path(), 0, &[]);
        let ada = Person::signs_up(&lab, &server.base, "Ada", Options::default()).await;
        until(
            "the service worker in control of the page",
            WAIT,
            || async {
                let controlled = ada
                    .browser
                    .script("return !!navigator.serviceWorker.controller", vec![])
                    .await;
                (controlled == true)
                    .then_some(())
                    .ok_or_else(|| "not yet".to_owned())
            },
        )
        .await;

        server.process.kill();
        ada.browser.reload().await;
        // The page and its scripts came from the worker's cache: they run, and say that the
        // server cannot be reached (the session could not be resumed).
        ada.sees_the_sign_in_form().await;
        until(
            "the page saying the server is unreachable",
            WAIT,
            || async {
                let said = ada.text_of("auth-error").await;
                (said == "The server cannot be reached. Try again in a moment.")
                    .then_some(())
                    .ok_or(said)
            },
        )
        .await;
        assert_eq!(
            ada.browser.script("return document.title", vec![]).await,
            "msa chat"
        );
    })
    .await;
}

/// A stand-in for Toss's API (`--toss-base-url`): approves every confirmation as asked and
/// keeps the bodies of the confirmations it was sent.
async fn toss_stand_in() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let confirmations = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = confirmations.clone();
    let app = axum::Router::new().route(
        "/v1/payments/confirm",
        post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.clone());
                axum::Json(
                    json!({"paymentKey": body["paymentKey"], "orderId": body["orderId"],
                    "currency": "KRW", "status": "DONE", "totalAmount": body["amount"],
                    "balanceAmount": body["amount"], "approvedAt": "2026-12-06T21:00:05+09:00"}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), confirmations)
}

/// Toss's payment window itself (Toss's SDK and pages) is not reachable here; what the page does
/// around it is: it asks for Toss's SDK under a policy that admits it (and only under Toss), and
/// handles the URLs Toss sends the browser back to: a success confirms the payment it names
/// with the key Toss gave (never for another order or amount), a failure cancels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_from_tosss_payment_window_the_page_confirms_or_gives_up_the_payment() {
    const CLIENT_KEY: &str = "test_ck_stand_in_0123456789";
    let (toss, confirmations) = toss_stand_in().await;
    browser::run("toss_return", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let toss_flags = [
            "--payment-provider",
            "toss",
            "--toss-secret-key",
            "test_sk_stand_in",
            "--toss-base-url",
            &toss,
            "--toss-client-key",
            CLIENT_KEY,
        ];
        let api = Api::at(single_server(data.path(), 0, &toss_flags));
        let base = api.server.base.clone();
        let page = reqwest::get(format!("{base}/")).await.unwrap();
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self' https://js.tosspayments.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("frame-src https://*.tosspayments.com"),
            "{csp}"
        );

        let ada = Person::signs_up(&lab, &base, "Ada", Options::default()).await;
        let token = ada.token(&api).await;
        let (_, me) = api.call(Method::GET, "/v1/users/me", &token, None).await;
        let ada_api = common::api::Person {
            id: me["id"].as_str().unwrap().to_owned(),
            nickname: "Ada".into(),
            token,
        };
        let payment_status = |id: String| {
            let (api, ada_api) = (&api, &ada_api);
            async move {
                let (_, payment) = api.get(ada_api, &format!("/v1/payments/{id}")).await;
                payment["status"].as_str().unwrap_or_default().to_owned()
            }
        };

        // Pay: the page goes for Toss's SDK (its host is cut off here: no window opens, and
        // the page gives the payment up, saying so). The policy let the request go.
        ada.browser.cdp("Network.enable", json!({})).await;
        ada.browser
            .cdp("Network.setBlockedURLs", json!({"urls": ["*tosspayments.com*"]}))
            .await;
        ada.browser
            .script(
                "window.refused = [];
                 document.addEventListener('securitypolicyviolation', e => window.refused.push(e.blockedURI));",
                vec![],
            )
            .await;
        ada.browser.press(EN.buy_credits).await;
        ada.browser.press(EN.pay).await;
        until("the page saying Toss's window could not be loaded", WAIT, || async {
            let said = ada.text_of("buy-error").await;
            said.contains("Toss’s payment window could not be loaded")
                .then_some(())
                .ok_or(said)
        })
        .await;
        let asked = ada
            .browser
            .script(
                "return [...document.scripts].map(s => s.src).filter(s => s.includes('tosspayments'))",
                vec![],
            )
            .await;
        assert_eq!(asked, json!(["https://js.tosspayments.com/v2/standard"]));
        let refused = ada.browser.script("return window.refused", vec![]).await;
        assert_eq!(refused, json!([]), "the CSP refused Toss's SDK");
        let (_, payments) = api.get(&ada_api, "/v1/payments").await;
        assert_eq!(payments["items"][0]["status"], "canceled", "{payments}");
        ada.browser.stroke('\u{E00C}').await;

        // A payment, as the page requests it before going to Toss's window.
        let requested = |key: &'static str| {
            let (api, ada_api) = (&api, &ada_api);
            async move {
                let (status, payment) = api.request_payment(ada_api, key, "credits-100").await;
                assert_eq!(status, 201, "{payment}");
                payment
            }
        };
        let back_from_toss = |query: String| {
            let browser = &ada.browser;
            let base = &base;
            async move {
                browser.open(&format!("{base}/?{query}")).await;
            }
        };

        // A success URL for another amount confirms nothing.
        let payment = requested("toss-tampered").await;
        let (id, order) = (payment["id"].as_str().unwrap(), payment["order_id"].as_str().unwrap());
        back_from_toss(format!(
            "toss=success&payment={id}&paymentType=NORMAL&paymentKey=tkey_tampered&orderId={order}&amount=1"
        ))
        .await;
        until("the page refusing a changed return URL", WAIT, || async {
            let said = ada.text_of("status").await;
            said.contains("another order or amount").then_some(()).ok_or(said)
        })
        .await;
        assert_eq!(payment_status(id.to_owned()).await, "requested");
        assert!(confirmations.lock().unwrap().is_empty(), "confirmed a changed return");

        // A failure URL: the payment is given up, with Toss's reason shown.
        let payment = requested("toss-failed").await;
        let (id, order) = (payment["id"].as_str().unwrap(), payment["order_id"].as_str().unwrap());
        back_from_toss(format!(
            "toss=fail&payment={id}&code=PAY_PROCESS_CANCELED&message=The%20buyer%20canceled&orderId={order}"
        ))
        .await;
        until("the page saying why the payment failed", WAIT, || async {
            let said = ada.text_of("status").await;
            (said == "The payment was not approved: The buyer canceled")
                .then_some(())
                .ok_or(said)
        })
        .await;
        until("the failed payment canceled", WAIT, || async {
            let status = payment_status(id.to_owned()).await;
            (status == "canceled").then_some(()).ok_or(status)
        })
        .await;

        // The success URL Toss sends: the page confirms with Toss's key, and the credits arrive.
        let payment = requested("toss-paid").await;
        let (id, order) = (payment["id"].as_str().unwrap(), payment["order_id"].as_str().unwrap());
        back_from_toss(format!(
            "toss=success&payment={id}&paymentType=NORMAL&paymentKey=tkey_paid&orderId={order}&amount=1000"
        ))
        .await;
        until("#balance showing 100 credits", WAIT, || async {
            let shown = ada.text_of("balance").await;
            (shown == "100").then_some(()).ok_or(shown)
        })
        .await;
        assert_eq!(payment_status(id.to_owned()).await, "approved");
        let sent = confirmations.lock().unwrap().clone();
        assert_eq!(
            sent,
            [json!({"paymentKey": "tkey_paid", "orderId": order, "amount": 1000})],
            "what Toss was asked to confirm"
        );
        // The return URL is taken off the address, so a reload repeats nothing.
        let address = ada.browser.script("return location.href", vec![]).await;
        assert_eq!(address, json!(format!("{base}/")));
    })
    .await;
}

/// Opens the room called `name` in `who`'s room list, clicking again if the list was redrawn
/// between finding the room and clicking it.
async fn open_room_steadily(who: &Person, name: &str) {
    let rooms = browser::xpath(Role::Region, who.names.rooms);
    until(&format!("the room {name:?} opened"), WAIT, || async {
        let room = who.browser.find_within(&rooms, Role::Button, name).await?;
        room.click().await.map_err(|e| e.to_string())
    })
    .await;
    who.browser.get(Role::Log, who.names.messages).await;
}

/// A direct room stays bound to the person it was opened with: once they erase their account
/// the room list shows a deleted account there, and after the nickname hold a stranger who takes
/// the nickname gets a new room, never the old one (issue 27 item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_peer_shows_as_a_deleted_account_not_the_next_holder_of_the_name() {
    browser::run("erased_peer", |lab: Arc<Lab>| async move {
        let data = tempfile::tempdir().unwrap();
        let server = single_server(data.path(), 0, &["--nickname-hold", "2s"]);
        let (ada, bob) = two_people_talk(&lab, &server.base).await;
        let client = reqwest::Client::new();
        let tokens: Value = client
            .post(format!("{}/v1/auth/token", server.base))
            .json(&json!({"email": bob.email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let erased = client
            .delete(format!("{}/v1/users/me", server.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .json(&serde_json::json!({"password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(erased.status(), 204);
        // The hold passes; a stranger takes the nickname.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let stranger = client
            .post(format!("{}/v1/users", server.base))
            .json(
                &json!({"email": "stranger@example.com", "password": PASSWORD, "nickname": "Bob"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(stranger.status(), 201);

        ada.browser.reload().await;
        open_room_steadily(&ada, "Deleted account").await;
        ada.sees_once("hello Ada", None).await;
        // A direct chat with "Bob" now is a new room with the stranger.
        ada.opens_a_direct_chat_with("Bob").await;
        ada.sends("who are you?").await;
        ada.sees_once("who are you?", Some("sent")).await;
        let shown = ada.messages().await.unwrap();
        assert!(
            shown.iter().all(|m| m.body.as_deref() != Some("hello Ada")),
            "the new room holds the old conversation"
        );
        open_room_steadily(&ada, "Deleted account").await;
        ada.sees_once("hello Ada", None).await;
    })
    .await;
}
