//! The web client's session: its refresh token lives in a cookie page scripts cannot read.
//!
//! A request that carries `X-Requested-With` (the web client sends `msa-web`) asks for cookie
//! mode. Logging in then sets the refresh token as the cookie [`COOKIE`] — `HttpOnly`,
//! `SameSite=Strict`, `Path=/v1/auth` (sent to the auth endpoints only), `Secure` unless the
//! request came over plain http to a loopback host — and the JSON answer holds only the access
//! token, which the page keeps in memory. Refresh and log-out without a token in the body read
//! the cookie; a refresh sets the next one, a log-out clears it.
//!
//! CSRF: a cookie is sent by the browser whatever page made the request, so the cookie is only
//! read from a request that (1) carries `X-Requested-With` — a custom header, which no other
//! site can make a browser send without a CORS preflight that the services and the gateway
//! refuse — (2) is not marked cross-site by `Sec-Fetch-Site`, and (3) whose `Origin`, when
//! present, is this host. `SameSite=Strict` already keeps the cookie off cross-site requests in
//! current browsers; the checks hold where it does not.
//!
//! API clients keep the JSON flow: a body `refresh_token` is used as before and no cookie is set.

use axum::http::{header, HeaderMap, HeaderValue};
use msa_http::Problem;

/// The refresh token's cookie.
pub const COOKIE: &str = "msa_refresh";
/// The only path the cookie is sent to.
pub const PATH: &str = "/v1/auth";
/// The header that asks for cookie mode and proves the request came from a page of this site.
pub const CSRF_HEADER: &str = "x-requested-with";

/// Whether the client asked for cookie mode.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|value| !value.as_bytes().is_empty())
}

/// The refresh token in the request's cookie, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// Refuses a cookie-mode request that another site could have made.
pub fn check_same_site(headers: &HeaderMap) -> Result<(), Problem> {
    if !wanted(headers) {
        return Err(Problem::forbidden(
            "a session cookie is only read with the X-Requested-With header (the web client sends it)",
        ));
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return Err(Problem::forbidden(
            "a session cookie is only read from this site's own pages",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        if origin_host.is_none() || origin_host != host(headers) {
            return Err(Problem::forbidden(
                "a session cookie is only read from this site's own pages",
            ));
        }
    }
    Ok(())
}

/// The host the browser addressed: the gateway's `X-Forwarded-Host`, else `Host`.
fn host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or(h).trim())
}

/// Whether the browser reached us over https: `X-Forwarded-Proto` when a proxy says so, else
/// anything but a loopback host (a deployment reached by name is expected to be behind TLS;
/// plain http on 127.0.0.1 or localhost is development, where a Secure cookie would be lost on
/// browsers that do not treat that host as secure).
fn secure(headers: &HeaderMap) -> bool {
    if let Some(proto) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        return proto
            .split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    }
    let Some(host) = host(headers) else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    !(name == "localhost" || name == "::1" || name.starts_with("127."))
}

/// `Set-Cookie` holding `token` for `max_age` seconds.
pub fn set(headers: &HeaderMap, token: &str, max_age: u64) -> HeaderValue {
    cookie(headers, token, max_age)
}

/// `Set-Cookie` that removes the cookie.
pub fn clear(headers: &HeaderMap) -> HeaderValue {
    cookie(headers, "", 0)
}

fn cookie(headers: &HeaderMap, value: &str, max_age: u64) -> HeaderValue {
    let secure = if secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("tokens are URL-safe base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; msa_refresh=abc; b=2")]);
        assert_eq!(token(&h).as_deref(), Some("abc"));
        assert_eq!(token(&headers(&[("cookie", "msa_refresh=")])), None);
    }

    #[test]
    fn secure_unless_plain_http_on_loopback() {
        assert!(!secure(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!secure(&headers(&[("host", "localhost")])));
        assert!(!secure(&headers(&[("host", "[::1]:80")])));
        assert!(secure(&headers(&[("host", "chat.example.com")])));
        assert!(secure(&headers(&[
            ("host", "127.0.0.1"),
            ("x-forwarded-proto", "https")
        ])));
        assert!(!secure(&headers(&[
            ("host", "chat.example.com"),
            ("x-forwarded-proto", "http")
        ])));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let ok = [("x-requested-with", "msa-web"), ("host", "a.test")];
        assert!(check_same_site(&headers(&ok)).is_ok());
        assert!(check_same_site(&headers(&[("host", "a.test")])).is_err());
        let mut h = headers(&ok);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_same_site(&h).is_err());
        let mut h = headers(&ok);
        h.insert("origin", HeaderValue::from_static("https://evil.test"));
        assert!(check_same_site(&h).is_err());
        let mut h = headers(&ok);
        h.insert("origin", HeaderValue::from_static("https://a.test"));
        assert!(check_same_site(&h).is_ok());
    }
}
