//! The web client: hand-written HTML, CSS and ES modules under `assets/`, no build step. The
//! files are embedded in the binary (rust-embed; a debug build reads them from disk, so an edit
//! shows on reload) and served by [`router`] at `/` in both deployments.
//!
//! What the router adds to the files:
//! - **Versioned asset URLs.** Scripts, styles and icons live under `/assets/<version>/…`, where
//!   the version is a digest of every embedded file; `index.html`, the service worker and the
//!   manifest name them through the `__VERSION__` placeholder. A versioned asset is cached for a
//!   year (`immutable`); the page, the service worker and the manifest are `no-cache` (with an
//!   ETag, so a reload revalidates in one small round trip). Modules import each other by
//!   relative paths, so they stay inside one version.
//! - **Compression.** Text files go out gzip-compressed when the browser accepts it (compressed
//!   once per file in a release build).
//! - **Security headers** on every answer: a strict Content-Security-Policy (scripts, styles,
//!   images and connections only from this origin, its WebSocket included; no inline script, no
//!   eval; no framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.
//! - **The payment window it may open** ([`WebClient`]): with Toss configured the page is given
//!   Toss's client key (a `<meta>` in `index.html`) and its CSP admits Toss's hosts, for Toss's
//!   SDK and payment window; otherwise (the sandbox) it admits no other host at all.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Files named by a fixed URL (not versioned): they name the versioned ones.
const INDEX: &str = "index.html";
const SERVICE_WORKER: &str = "sw.js";
const MANIFEST: &str = "manifest.webmanifest";
const VERSION_PLACEHOLDER: &str = "__VERSION__";
const ASSET_LIST_PLACEHOLDER: &str = "__ASSETS__";
const TOSS_CLIENT_KEY_PLACEHOLDER: &str = "__TOSS_CLIENT_KEY__";

/// Toss's hosts, admitted by the CSP only when Toss is configured: its SDK
/// (`js.tosspayments.com`), the SDK's calls and the payment window (`*.tosspayments.com`), and
/// the Toss app's pages the window may go through (`*.toss.im`).
pub const TOSS_SCRIPT_HOST: &str = "https://js.tosspayments.com";
const TOSS_HOSTS: &str = "https://*.tosspayments.com https://*.toss.im";

/// How the page is served: which payment window it can open (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct WebClient {
    toss_client_key: Option<String>,
}

impl WebClient {
    /// A page that pays only without a window (the sandbox): no other host in its CSP.
    pub fn new() -> WebClient {
        WebClient::default()
    }

    /// A page that opens Toss's payment window with `client_key` (Toss's public client key,
    /// `test_ck_…` or `live_ck_…`; never the secret key).
    pub fn with_toss(client_key: &str) -> Result<WebClient, String> {
        let key = client_key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err("the Toss client key is empty or too long".into());
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("the Toss client key holds characters a key never has".into());
        }
        if key.contains("_sk_") {
            return Err(
                "that is a secret key (…_sk_…): the page gets the client key (…_ck_…)".into(),
            );
        }
        Ok(WebClient {
            toss_client_key: Some(key.to_owned()),
        })
    }

    pub fn toss(&self) -> bool {
        self.toss_client_key.is_some()
    }

    /// The page's ETag: the version, and which configuration filled it in.
    fn etag(&self, version: &str) -> String {
        match &self.toss_client_key {
            None => format!("\"{version}\""),
            Some(key) => {
                let digest = Sha256::digest(key.as_bytes());
                let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{version}-toss-{short}\"")
            }
        }
    }
}

/// The web client's routes: `/`, `/index.html`, `/sw.js`, `/manifest.webmanifest`,
/// `/assets/<version>/<file>`. Merge it into an app before its fallback.
pub fn router(client: WebClient) -> Router {
    let client = Arc::new(client);
    type Client = State<Arc<WebClient>>;
    Router::new()
        .route(
            "/",
            get(|State(c): Client, headers: HeaderMap| async move { page(&c, &headers, INDEX) }),
        )
        .route(
            "/index.html",
            get(|State(c): Client, headers: HeaderMap| async move { page(&c, &headers, INDEX) }),
        )
        .route(
            "/sw.js",
            get(|State(c): Client, headers: HeaderMap| async move {
                page(&c, &headers, SERVICE_WORKER)
            }),
        )
        .route(
            "/manifest.webmanifest",
            get(|State(c): Client, headers: HeaderMap| async move { page(&c, &headers, MANIFEST) }),
        )
        .route("/assets/{version}/{*file}", get(asset))
        .with_state(client)
}

/// The digest of every embedded file: changes whenever any file does.
pub fn version() -> String {
    fn compute() -> String {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut digest = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                digest.update(name.as_bytes());
                digest.update(file.metadata.sha256_hash());
            }
        }
        digest.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
    if cfg!(debug_assertions) {
        // Files are read from disk in a debug build: an edit makes a new version.
        return compute();
    }
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(compute).clone()
}

/// The versioned files the shell needs, as URLs (what the service worker caches).
fn asset_urls(version: &str) -> Vec<String> {
    let mut urls: Vec<String> = Assets::iter()
        .filter(|name| ![INDEX, SERVICE_WORKER, MANIFEST].contains(&name.as_ref()))
        .map(|name| format!("/assets/{version}/{name}"))
        .collect();
    urls.sort();
    urls
}

/// A page-level file: its placeholders filled, `no-cache` with an ETag of the version.
fn page(client: &WebClient, headers: &HeaderMap, name: &str) -> Response {
    let Some(file) = Assets::get(name) else {
        return not_found(client, headers);
    };
    let version = version();
    let etag = client.etag(&version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag))
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response
            .headers_mut()
            .insert(header::ETAG, header_value(&etag));
        secure(&mut response, client, headers);
        return response;
    }
    let text = String::from_utf8_lossy(&file.data)
        .replace(VERSION_PLACEHOLDER, &version)
        .replace(
            ASSET_LIST_PLACEHOLDER,
            &format!(
                "[{}]",
                asset_urls(&version)
                    .iter()
                    .map(|url| format!("\"{url}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )
        // Checked by `WebClient::with_toss` to hold nothing HTML would read as markup.
        .replace(
            TOSS_CLIENT_KEY_PLACEHOLDER,
            client.toss_client_key.as_deref().unwrap_or_default(),
        );
    let mut response = body(client, headers, name, text.into_bytes(), None);
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, header_value(&etag));
    if name == SERVICE_WORKER {
        // The worker controls the whole origin, though its file is at the root anyway.
        h.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    response
}

async fn asset(
    State(client): State<Arc<WebClient>>,
    Path((requested, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if [INDEX, SERVICE_WORKER, MANIFEST].contains(&file.as_str()) {
        return not_found(&client, &headers);
    }
    let Some(embedded) = Assets::get(&file) else {
        return not_found(&client, &headers);
    };
    let current = requested == version();
    let cache_key = current.then_some(file.as_str());
    let mut response = body(
        &client,
        &headers,
        &file,
        embedded.data.into_owned(),
        cache_key,
    );
    // An old version's URL gets today's file, but must not be kept as if it were the old one.
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The file's bytes with its content type, gzip-compressed when the browser takes it and it is
/// text; `cache_key` names a file whose compressed form may be kept (release builds).
fn body(
    client: &WebClient,
    headers: &HeaderMap,
    name: &str,
    bytes: Vec<u8>,
    cache_key: Option<&str>,
) -> Response {
    let content_type = content_type(name);
    let gzip = content_type.starts_with("text/")
        || content_type.starts_with("application/")
        || content_type.starts_with("image/svg");
    let accepts_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    let (bytes, encoded) = if gzip && accepts_gzip {
        (compressed(bytes, cache_key), true)
    } else {
        (bytes, false)
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if encoded {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    secure(&mut response, client, headers);
    response
}

fn compressed(bytes: Vec<u8>, cache_key: Option<&str>) -> Vec<u8> {
    use std::io::Write;
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let cacheable = cache_key.filter(|_| !cfg!(debug_assertions));
    if let Some(key) = cacheable {
        let cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("not poisoned");
        if let Some(hit) = cache.get(key) {
            return hit.clone();
        }
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gz = encoder
        .write_all(&bytes)
        .and_then(|()| encoder.finish())
        .expect("compressing in memory cannot fail");
    if let Some(key) = cacheable {
        CACHE
            .get_or_init(Default::default)
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), gz.clone());
    }
    gz
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "webmanifest" => "application/manifest+json",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found(client: &WebClient, headers: &HeaderMap) -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found").into_response();
    secure(&mut response, client, headers);
    response
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("made of visible ASCII")
}

/// The Content-Security-Policy of the client's pages. The WebSocket is named with the page's
/// own host (a browser may not count `ws:` as `'self'`), when the Host header is a plain host.
/// With `toss`, Toss's SDK may load from its host, call and frame Toss's hosts, and a form may
/// go to them (the payment window); nothing else from another host, and still no inline script.
pub fn content_security_policy(host: Option<&str>, toss: bool) -> String {
    let sockets = host
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    let (scripts, hosts, frames) = if toss {
        (
            format!(" {TOSS_SCRIPT_HOST}"),
            format!(" {TOSS_HOSTS}"),
            format!(" frame-src {TOSS_HOSTS};"),
        )
    } else {
        Default::default()
    };
    format!(
        "default-src 'none'; script-src 'self'{scripts}; style-src 'self'; \
         img-src 'self' data:{hosts}; font-src 'self'; connect-src 'self'{sockets}{hosts};{frames} \
         manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'self'{hosts}; \
         frame-ancestors 'none'"
    )
}

fn secure(response: &mut Response, client: &WebClient, request: &HeaderMap) {
    let host = request.get(header::HOST).and_then(|v| v.to_str().ok());
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header_value(&content_security_policy(host, client.toss())),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Response {
        get_from(WebClient::new(), uri, headers).await
    }

    async fn get_from(client: WebClient, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(uri).header("host", "127.0.0.1:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        router(client)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_names_the_current_versioned_assets_and_is_revalidated() {
        let response = get("/", &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("ws://127.0.0.1:8080"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let html = text(response).await;
        let version = version();
        assert!(
            html.contains(&format!("/assets/{version}/app.js")),
            "{html}"
        );
        assert!(!html.contains(VERSION_PLACEHOLDER));
        assert!(!html.contains("<script>"), "no inline script");

        let again = get("/", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), 304);
    }

    #[tokio::test]
    async fn versioned_assets_are_cached_for_good_and_old_versions_are_not() {
        let current = get(&format!("/assets/{}/app.js", version()), &[]).await;
        assert_eq!(current.status(), 200);
        assert_eq!(
            current.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            current.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let old = get("/assets/000000000000/app.js", &[]).await;
        assert_eq!(old.status(), 200);
        assert_eq!(old.headers()["cache-control"], "no-cache");
        assert_eq!(get("/assets/x/nothing.js", &[]).await.status(), 404);
        assert_eq!(get("/assets/x/index.html", &[]).await.status(), 404);
    }

    #[tokio::test]
    async fn text_goes_out_gzipped_when_accepted() {
        let path = format!("/assets/{}/app.js", version());
        let plain = text(get(&path, &[]).await).await;
        let response = get(&path, &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
        let refused = get(&path, &[("accept-encoding", "gzip;q=0")]).await;
        assert!(refused.headers().get("content-encoding").is_none());
    }

    #[tokio::test]
    async fn the_service_worker_lists_the_shell_and_is_never_cached_long() {
        let response = get("/sw.js", &[]).await;
        assert_eq!(response.headers()["cache-control"], "no-cache");
        let script = text(response).await;
        assert!(script.contains(&format!("\"/assets/{}/app.js\"", version())));
        assert!(!script.contains(ASSET_LIST_PLACEHOLDER));
        let manifest = get("/manifest.webmanifest", &[]).await;
        assert_eq!(
            manifest.headers()["content-type"],
            "application/manifest+json"
        );
    }

    /// The issue's budget: the first load (page, scripts, styles, icons) at most 150 KB
    /// compressed.
    #[test]
    fn the_first_load_stays_within_150_kb_compressed() {
        let total: usize = Assets::iter()
            .filter(|name| !name.ends_with(".png") || name.contains("192"))
            .map(|name| compressed(Assets::get(&name).unwrap().data.into_owned(), None).len())
            .sum();
        assert!(total <= 150 * 1024, "{total} bytes");
    }

    #[test]
    fn a_strange_host_is_left_out_of_the_policy() {
        let csp = content_security_policy(Some("evil.com; script-src *"), false);
        assert!(!csp.contains("evil"), "{csp}");
    }

    /// The directives of a policy, by name.
    fn directives(csp: &str) -> HashMap<String, Vec<String>> {
        csp.split(';')
            .filter_map(|d| {
                let mut words = d.split_whitespace();
                let name = words.next()?.to_owned();
                Some((name, words.map(str::to_owned).collect()))
            })
            .collect()
    }

    #[tokio::test]
    async fn only_a_page_configured_for_toss_admits_tosss_hosts() {
        let sandbox = get("/", &[]).await;
        let csp = sandbox.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("toss"), "{csp}");
        assert!(!csp.contains("https:"), "no other host at all: {csp}");
        let html = text(sandbox).await;
        assert!(
            html.contains(r#"<meta name="msa-toss-client-key" content="">"#),
            "{html}"
        );

        let toss = WebClient::with_toss("test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq").unwrap();
        let page = get_from(toss.clone(), "/", &[]).await;
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let d = directives(&csp);
        assert_eq!(d["script-src"], ["'self'", TOSS_SCRIPT_HOST], "{csp}");
        for name in ["connect-src", "frame-src", "form-action"] {
            assert!(
                d[name].contains(&"https://*.tosspayments.com".to_owned()),
                "{name}: {csp}"
            );
        }
        assert_eq!(d["default-src"], ["'none'"]);
        assert_eq!(d["frame-ancestors"], ["'none'"]);
        assert_eq!(d["style-src"], ["'self'"], "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            d["connect-src"].contains(&"ws://127.0.0.1:8080".to_owned()),
            "{csp}"
        );
        let etag = page.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(
            etag,
            format!("\"{}\"", version()),
            "another page, another tag"
        );
        let html = text(page).await;
        assert!(
            html.contains(
                r#"<meta name="msa-toss-client-key" content="test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq">"#
            ),
            "{html}"
        );
        // Every answer carries the page's policy, assets too.
        let asset = get_from(toss, &format!("/assets/{}/app.js", version()), &[]).await;
        assert!(asset.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(TOSS_SCRIPT_HOST));
    }

    #[test]
    fn a_toss_client_key_is_checked() {
        assert!(WebClient::with_toss("live_ck_abc-DEF_123").is_ok());
        for bad in [
            "",
            "   ",
            "a\"><script>",
            "test_ck_x y",
            "test_sk_secret",
            &"k".repeat(201),
        ] {
            assert!(WebClient::with_toss(bad).is_err(), "{bad:?}");
        }
    }
}
