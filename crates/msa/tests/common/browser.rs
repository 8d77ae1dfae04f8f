//! Real headless Chromium, driven over WebDriver (a chromedriver per test), as the web client's
//! tests meet it: browsers open the page the binary serves, find controls by their accessible
//! names (the names the issue fixes, which screen readers announce), type, press keys, compose
//! with an input method (through the DevTools protocol), and run axe-core.
//!
//! The browser, its driver and axe-core come from `MSA_TEST_CHROMIUM`, `MSA_TEST_CHROMEDRIVER` and
//! `MSA_TEST_AXE` (set by `scripts/test`, which installs them), else from where Debian and
//! `scripts/test` put them. A missing one skips the test, saying so, except under `CI=true`, where
//! it fails. When a test fails, every open browser's screenshot, HTML and console log are saved
//! under `target/browser-screenshots/<test>/` and the folder is printed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{json, Value};

/// How long a page has to show what a test waits for (events cross a broker in one deployment).
pub const WAIT: Duration = Duration::from_secs(20);

/// How long one browser test may take in all.
pub const WHOLE_TEST: Duration = Duration::from_secs(300);

/// The Chromium flags every browser gets (beside its own profile directory and window size).
const FLAGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-default-browser-check",
];

/// Where the tools are.
#[derive(Clone, Debug)]
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    pub axe: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

impl Tools {
    /// The browser, its driver and axe-core; `None` (the test skips, saying why) when one is
    /// missing, except under `CI=true`, where that fails the test.
    pub fn find() -> Option<Tools> {
        let from = |variable: &str, default: Option<PathBuf>| {
            std::env::var_os(variable)
                .map(PathBuf::from)
                .or(default)
                .filter(|path| path.is_file())
        };
        let chromium = from(
            "MSA_TEST_CHROMIUM",
            on_path("chromium").or_else(|| on_path("chromium-browser")),
        );
        let chromedriver = from("MSA_TEST_CHROMEDRIVER", on_path("chromedriver"));
        let axe = from(
            "MSA_TEST_AXE",
            Some(target_dir().join("npm/node_modules/axe-core/axe.min.js")),
        );
        match (chromium, chromedriver, axe) {
            (Some(chromium), Some(chromedriver), Some(axe)) => Some(Tools {
                chromium,
                chromedriver,
                axe,
            }),
            (chromium, chromedriver, axe) => {
                let missing: Vec<&str> = [
                    chromium.is_none().then_some("chromium"),
                    chromedriver.is_none().then_some("chromedriver"),
                    axe.is_none().then_some("axe-core"),
                ]
                .into_iter()
                .flatten()
                .collect();
                assert!(
                    !msa_testkit::in_ci(),
                    "CI=true and no {}: scripts/test installs them",
                    missing.join(", ")
                );
                eprintln!(
                    "SKIPPED: no {} here; run the README's test command (scripts/test installs them)",
                    missing.join(", ")
                );
                None
            }
        }
    }
}

/// A chromedriver on a free port, killed (with the browsers it started) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(tools: &Tools) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = super::free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that dropping it ends the browsers it started too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", tools.chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = client.get(format!("{}/status", driver.url)).send().await;
            if let Ok(answer) = status {
                let body: Value = answer.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {} within 20 s",
                driver.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a browser is opened.
#[derive(Clone, Debug)]
pub struct Options {
    /// The browser's language (`--lang` and `intl.accept_languages`), e.g. "en-US" or "ko".
    pub language: &'static str,
    pub width: u32,
    pub height: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            language: "en-US",
            width: 1280,
            height: 900,
        }
    }
}

impl Options {
    pub fn phone() -> Options {
        Options {
            width: 390,
            height: 844,
            ..Options::default()
        }
    }

    pub fn korean() -> Options {
        Options {
            language: "ko",
            ..Options::default()
        }
    }
}

/// Where a failed test's screenshots go: `target/browser-screenshots/<test>/`.
pub fn evidence_folder(test: &str) -> PathBuf {
    target_dir().join("browser-screenshots").join(test)
}

/// One test's browsers and their driver. Open browsers with [`Lab::browser`].
pub struct Lab {
    test: String,
    tools: Tools,
    driver: Driver,
    open: Mutex<Vec<Browser>>,
}

/// Runs a browser test: `body` gets the lab to open browsers in. When it fails, each open
/// browser's screenshot, HTML and console log are saved (and the folder printed) before the
/// failure goes on. Skips (or fails under `CI=true`) when the browser or its tools are missing.
pub async fn run<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<Lab>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(tools) = Tools::find() else {
        return;
    };
    let lab = Arc::new(Lab {
        test: test.to_owned(),
        driver: Driver::start(&tools).await,
        tools,
        open: Mutex::new(Vec::new()),
    });
    let outcome = AssertUnwindSafe(async {
        // A browser that stops answering must not hang the suite.
        if tokio::time::timeout(WHOLE_TEST, body(lab.clone()))
            .await
            .is_err()
        {
            panic!("the test did not finish within {WHOLE_TEST:?}");
        }
    })
    .catch_unwind()
    .await;
    if outcome.is_err() {
        lab.save_evidence().await;
    }
    lab.close_all().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl Lab {
    /// Opens a new browser (a fresh profile) named `name` in the evidence it leaves.
    pub async fn browser(&self, name: &str, options: Options) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!(
            "--window-size={},{}",
            options.width, options.height
        ));
        args.push(format!("--lang={}", options.language));
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.tools.chromium,
                "args": args,
                "prefs": {"intl.accept_languages": options.language},
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.driver.url)
            .await
            .unwrap_or_else(|error| panic!("open a browser through chromedriver: {error}"));
        // Scripts (axe-core) and page loads get a bound of their own; elements are never
        // waited for implicitly (the tests poll with `until`).
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap_or_else(|error| panic!("set the browser's timeouts: {error}"));
        // Headless windows take the size asked for, but say so once more for the viewport.
        client
            .set_window_size(options.width, options.height)
            .await
            .ok();
        let browser = Browser {
            name: name.to_owned(),
            client,
            _profile: Arc::new(profile),
        };
        self.open.lock().unwrap().push(browser.clone());
        browser
    }

    /// The axe-core script, read once per call (it is about 500 KB).
    pub fn axe_script(&self) -> String {
        std::fs::read_to_string(&self.tools.axe)
            .unwrap_or_else(|error| panic!("read {}: {error}", self.tools.axe.display()))
    }

    /// Saves what each open browser shows into [`evidence_folder`].
    async fn save_evidence(&self) {
        let folder = evidence_folder(&self.test);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).ok();
        let folder = folder.canonicalize().unwrap_or(folder);
        let browsers = self.open.lock().unwrap().clone();
        for browser in browsers {
            let base = folder.join(&browser.name);
            let shot = tokio::time::timeout(Duration::from_secs(10), browser.client.screenshot());
            if let Ok(Ok(png)) = shot.await {
                std::fs::write(base.with_extension("png"), png).ok();
            }
            let html = tokio::time::timeout(Duration::from_secs(10), browser.client.source());
            if let Ok(Ok(html)) = html.await {
                std::fs::write(base.with_extension("html"), html).ok();
            }
            if let Ok(Ok(url)) =
                tokio::time::timeout(Duration::from_secs(5), browser.client.current_url()).await
            {
                std::fs::write(base.with_extension("url.txt"), url.to_string()).ok();
            }
            let log = tokio::time::timeout(Duration::from_secs(5), browser.console_log());
            if let Ok(log) = log.await {
                std::fs::write(base.with_extension("console.txt"), log).ok();
            }
        }
        eprintln!(
            "browser screenshots of the failed test: {}",
            folder.display()
        );
    }

    async fn close_all(&self) {
        let browsers: Vec<Browser> = std::mem::take(&mut *self.open.lock().unwrap());
        for browser in browsers {
            let _ = tokio::time::timeout(Duration::from_secs(10), browser.client.close()).await;
        }
    }
}

/// The roles tests look controls up by, with the roles Chromium may compute for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A field one types in (input, textarea, contenteditable).
    TextBox,
    Button,
    Region,
    Log,
    /// Any element with that accessible name (a heading, a list, a dialog…).
    Any,
}

impl Role {
    fn candidates(self) -> &'static str {
        match self {
            Role::TextBox => "(self::input[not(@type='hidden' or @type='submit' or @type='button' or @type='checkbox' or @type='radio')] or self::textarea or @role='textbox' or @contenteditable='true' or @contenteditable='')",
            Role::Button => "(self::button or @role='button' or self::input[@type='submit' or @type='button'])",
            Role::Region => "(self::section or @role='region')",
            Role::Log => "(@role='log')",
            Role::Any => "true()",
        }
    }

    fn computed(self) -> &'static [&'static str] {
        match self {
            Role::TextBox => &["textbox", "searchbox"],
            Role::Button => &["button"],
            Role::Region => &["region"],
            Role::Log => &["log"],
            Role::Any => &[],
        }
    }
}

/// An XPath string literal of `text`.
fn literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// XPath of the elements of `role` whose name (by the ways HTML gives one) is `name`.
pub fn xpath(role: Role, name: &str) -> String {
    let n = literal(name);
    let mut named = vec![
        format!("@aria-label={n}"),
        format!("@aria-labelledby=//*[normalize-space()={n}]/@id"),
        format!("(not(@aria-label) and @id and @id=//label[normalize-space()={n}]/@for)"),
        format!("(not(@aria-label) and ancestor::label[normalize-space()={n}])"),
    ];
    if matches!(role, Role::Button | Role::Any) {
        named.push(format!(
            "(not(@aria-label) and not(@aria-labelledby) and normalize-space()={n})"
        ));
        named.push(format!("(self::input and @value={n})"));
    }
    format!("//*[{}][{}]", role.candidates(), named.join(" or "))
}

/// A WebDriver command of Chromium's own (the DevTools protocol, computed accessibility).
#[derive(Debug)]
struct Extension {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for Extension {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// One browser (a window with a profile of its own).
#[derive(Clone)]
pub struct Browser {
    pub name: String,
    pub client: Client,
    _profile: Arc<tempfile::TempDir>,
}

/// Waits until `probe` answers `Some`; fails after `limit` naming `what` (and the last `Err`).
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "not within {limit:?}: {what} (last seen: {last})"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Browser {
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("{}: open {url}: {error}", self.name));
    }

    pub async fn reload(&self) {
        self.client
            .refresh()
            .await
            .unwrap_or_else(|error| panic!("{}: reload: {error}", self.name));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("{}: script failed: {error}\n{script}", self.name))
    }

    async fn extension(&self, method: http::Method, path: String, body: Option<Value>) -> Value {
        self.try_extension(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", self.name))
    }

    async fn try_extension(
        &self,
        method: http::Method,
        path: String,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let command = Extension { method, path, body };
        self.client
            .issue_cmd(command)
            .await
            .map_err(|error| error.to_string())
    }

    /// An element's accessible name and role as Chromium computes them (an `Err` when the
    /// element went away meanwhile: the page re-rendered it).
    async fn accessible(&self, element: &Element) -> Result<(String, String), String> {
        let id = element.element_id().to_string();
        let label = self
            .try_extension(
                http::Method::GET,
                format!("element/{id}/computedlabel"),
                None,
            )
            .await?;
        let role = self
            .try_extension(
                http::Method::GET,
                format!("element/{id}/computedrole"),
                None,
            )
            .await?;
        Ok((
            label.as_str().unwrap_or_default().trim().to_owned(),
            role.as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// A DevTools protocol command on the page (e.g. `Input.imeSetComposition`).
    pub async fn cdp(&self, command: &str, params: Value) -> Value {
        let body = json!({"cmd": command, "params": params});
        self.extension(http::Method::POST, "goog/cdp/execute".into(), Some(body))
            .await
    }

    /// The visible element of `role` named `name`, now: `Err` says why there is none. The name
    /// and role are checked with Chromium's own accessibility computation.
    pub async fn find(&self, role: Role, name: &str) -> Result<Element, String> {
        self.find_within("", role, name).await
    }

    /// Like [`Browser::find`], inside the elements `scope` (an XPath) selects.
    pub async fn find_within(
        &self,
        scope: &str,
        role: Role,
        name: &str,
    ) -> Result<Element, String> {
        let path = format!("{scope}{}", xpath(role, name));
        let found = self
            .client
            .find_all(Locator::XPath(&path))
            .await
            .map_err(|error| error.to_string())?;
        let mut seen = Vec::new();
        for element in found {
            if !element.is_displayed().await.unwrap_or(false) {
                seen.push("one that is not displayed".to_owned());
                continue;
            }
            let (label, computed) = self.accessible(&element).await?;
            if label == name
                && (role.computed().is_empty() || role.computed().contains(&computed.as_str()))
            {
                return Ok(element);
            }
            seen.push(format!(
                "one whose accessible name is {label:?} and role {computed:?}"
            ));
        }
        Err(if seen.is_empty() {
            format!("no {role:?} named {name:?}")
        } else {
            format!("no {role:?} named {name:?}, only {}", seen.join("; "))
        })
    }

    /// Waits (up to [`WAIT`]) for the visible element of `role` named `name`.
    pub async fn get(&self, role: Role, name: &str) -> Element {
        let what = format!("{}: a {role:?} named {name:?}", self.name);
        until(&what, WAIT, || self.find(role, name)).await
    }

    /// Waits (up to [`WAIT`]) for the visible element of `role` named `name` inside `scope`.
    pub async fn get_within(&self, scope: &str, role: Role, name: &str) -> Element {
        let what = format!("{}: a {role:?} named {name:?} in {scope}", self.name);
        until(&what, WAIT, || self.find_within(scope, role, name)).await
    }

    /// Whether a visible element of `role` named `name` is there now.
    pub async fn shows(&self, role: Role, name: &str) -> bool {
        self.find(role, name).await.is_ok()
    }

    /// Types `text` into the field named `name`, after clearing it.
    pub async fn fill(&self, name: &str, text: &str) {
        let field = self.get(Role::TextBox, name).await;
        field.clear().await.ok();
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("{}: type into {name:?}: {error}", self.name));
    }

    /// Clicks the button named `name` (waiting for it, and for it to be enabled).
    pub async fn press(&self, name: &str) {
        let what = format!("{}: the button {name:?} enabled", self.name);
        let button = until(&what, WAIT, || async {
            let button = self.find(Role::Button, name).await?;
            match button.is_enabled().await {
                Ok(true) => Ok(button),
                _ => Err("disabled".to_owned()),
            }
        })
        .await;
        button
            .click()
            .await
            .unwrap_or_else(|error| panic!("{}: click {name:?}: {error}", self.name));
    }

    /// Presses keys (WebDriver key codes, e.g. [`ENTER`]) in the focused element.
    pub async fn keys(&self, keys: &str) {
        let focused = self
            .client
            .active_element()
            .await
            .unwrap_or_else(|error| panic!("{}: no focused element: {error}", self.name));
        focused
            .send_keys(keys)
            .await
            .unwrap_or_else(|error| panic!("{}: keys: {error}", self.name));
    }

    /// Presses `key` (a WebDriver key code, e.g. [`TAB`]) wherever the focus is, as a
    /// keyboard does (no element is chosen for it).
    pub async fn stroke(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(actions)
            .await
            .unwrap_or_else(|error| panic!("{}: key {key:?}: {error}", self.name));
    }

    /// The accessible name and role of the focused element (`None` when nothing is focused).
    pub async fn focused(&self) -> Option<(String, String)> {
        let element = self.client.active_element().await.ok()?;
        self.accessible(&element).await.ok()
    }

    /// Presses Tab (at most 30 times) until the element of `role` named `name` has the focus,
    /// as someone using the keyboard alone does; fails naming every stop on the way.
    pub async fn tab_to(&self, role: Role, name: &str) {
        let mut stops = Vec::new();
        for _ in 0..30 {
            // Give the page a moment to move the focus itself (a dialog opening, say).
            tokio::time::sleep(Duration::from_millis(50)).await;
            // (`None` when the focused element was re-rendered while being read: read again.)
            let mut focus = self.focused().await;
            for _ in 0..20 {
                if focus.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                focus = self.focused().await;
            }
            if let Some((label, computed)) = focus {
                if label == name
                    && (role.computed().is_empty() || role.computed().contains(&computed.as_str()))
                {
                    return;
                }
                stops.push(format!("{computed} {label:?}"));
            }
            self.stroke(TAB).await;
        }
        panic!(
            "{}: Tab never reached the {role:?} named {name:?}; the focus went through {}",
            self.name,
            stops.join(", ")
        );
    }

    /// The messages the message log (role `log` named `log_name`) shows now, oldest first.
    pub async fn messages(&self, log_name: &str) -> Result<Vec<Shown>, String> {
        let log = self.find(Role::Log, log_name).await?;
        let list = self
            .client
            .execute(
                "const log = arguments[0];
                 const marked = '[data-txn-id], [data-message-id]';
                 return [...log.querySelectorAll(marked)]
                    .filter(e => {
                        const outer = e.parentElement.closest(marked);
                        return !outer || !log.contains(outer);
                    })
                    .map(e => ({
                        text: e.innerText,
                        body: (e.querySelector('.body') || {}).innerText ?? null,
                        txn_id: e.getAttribute('data-txn-id'),
                        id: e.getAttribute('data-message-id'),
                        state: e.getAttribute('data-state'),
                    }))",
                vec![serde_json::to_value(&log).unwrap()],
            )
            .await
            .map_err(|error| error.to_string())?;
        Ok(serde_json::from_value(list).unwrap_or_default())
    }

    /// The browser's console so far (errors, warnings, logs), one line each.
    pub async fn console_log(&self) -> String {
        let command = Extension {
            method: http::Method::POST,
            path: "se/log".into(),
            body: Some(json!({"type": "browser"})),
        };
        match self.client.issue_cmd(command).await {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| format!("{} {}", e["level"], e["message"]))
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(other) => other.to_string(),
            Err(error) => format!("(no console log: {error})"),
        }
    }

    /// axe-core's serious and critical violations on the page as it is now, one line each.
    pub async fn serious_accessibility_findings(&self, axe: &str) -> Vec<String> {
        let loaded = self
            .script("return typeof window.axe === 'object'", vec![])
            .await;
        if loaded != true {
            self.script(axe, vec![]).await;
        }
        let report = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                    .then(r => done(r.violations), e => done({error: String(e)}));",
                vec![],
            )
            .await
            .unwrap_or_else(|error| panic!("{}: axe.run: {error}", self.name));
        let Value::Array(violations) = report else {
            panic!("{}: axe.run failed: {report}", self.name);
        };
        violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| n["target"].to_string())
                    .collect();
                format!(
                    "{} ({}): {} at {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["impact"].as_str().unwrap_or_default(),
                    v["help"].as_str().unwrap_or_default(),
                    targets.join(", ")
                )
            })
            .collect()
    }

    /// How far the page scrolls sideways: `(scrollWidth, clientWidth)` of the document.
    pub async fn page_widths(&self) -> (i64, i64) {
        let widths = self
            .script(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];",
                vec![],
            )
            .await;
        (
            widths[0].as_i64().unwrap_or_default(),
            widths[1].as_i64().unwrap_or_default(),
        )
    }

    /// Every cookie the browser holds for the page (HttpOnly ones too), as `name=value`.
    pub async fn cookies(&self) -> Vec<(String, String)> {
        self.client
            .get_all_cookies()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect()
    }
}

/// A message as the page shows it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Shown {
    /// Everything the message's element shows (the body, perhaps its sender and time).
    pub text: String,
    /// The text of its `.body` element, where it has one.
    pub body: Option<String>,
    pub txn_id: Option<String>,
    pub id: Option<String>,
    pub state: Option<String>,
}

impl Shown {
    /// Whether the message's text is `body` (its body element's, else a line of its text).
    pub fn says(&self, body: &str) -> bool {
        match &self.body {
            Some(shown) => shown.trim() == body,
            None => self.text.lines().any(|line| line.trim() == body),
        }
    }
}

/// The WebDriver key code of Enter.
pub const ENTER: &str = "\u{E007}";
/// The WebDriver key code of Tab.
pub const TAB: char = '\u{E004}';
/// Shift (held until the end of the keys sent).
pub const SHIFT: &str = "\u{E008}";
