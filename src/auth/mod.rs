//! API authentication: the `Authorization: Bearer <token>` header checked
//! against the Worker secret `BPM_API_TOKEN` in constant time, and the
//! dashboard's session cookie that a login with that token earns.
//!
//! Invariants: with no token configured, nothing is authorised (an operator
//! who forgot the secret gets 401s, not an open API); a configured token
//! shorter than [`MIN_TOKEN_LEN`] is refused as such, and the public demo
//! token ([`DEMO_TOKEN`]) only works on a loopback host. Tokens are compared
//! as SHA-256 digests in constant time, so neither their content nor their
//! length leaks through timing. A session value is
//! `v1.{expires}.{mac}` with `mac = HMAC-SHA256(token, "bpm-session.v1.{expires}")`:
//! it holds no data, cannot be forged without the token, ends at `expires`,
//! and every session ends when the token is rotated. A state-changing request
//! authorised by the cookie alone must carry [`CSRF_HEADER`], which a
//! cross-site form cannot send. `access` verifies Cloudflare Access
//! assertions; `scope` says which sites and role a caller has (scoped
//! tokens, Access roles) and what each endpoint needs.

pub mod access;
pub mod scope;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request was not authorised; the message is safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The deployment has no `BPM_API_TOKEN` secret.
    NotConfigured,
    /// `BPM_API_TOKEN` is set but shorter than [`MIN_TOKEN_LEN`].
    TooShort,
    /// `BPM_API_TOKEN` is the public demo token, on a host that is not
    /// loopback.
    DemoToken,
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the configured one.
    Wrong,
    /// A session cookie that is malformed, forged, or for a rotated token.
    BadSession,
    /// A session cookie past its expiry.
    SessionExpired,
    /// A cookie-authorised POST/DELETE without the anti-forgery header.
    MissingCsrfHeader,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            AuthError::NotConfigured => {
                "the API token is not configured: set the Worker secret BPM_API_TOKEN"
            }
            AuthError::TooShort => {
                "the API token BPM_API_TOKEN is shorter than 16 characters, which is guessable: set a long random secret"
            }
            AuthError::DemoToken => {
                "BPM_API_TOKEN is the public demo token from .dev.vars.example, accepted only on 127.0.0.1 or localhost: set your own secret"
            }
            AuthError::Missing => "missing `Authorization: Bearer <token>` header",
            AuthError::Wrong => "invalid API token",
            AuthError::BadSession => "invalid session: log in again",
            AuthError::SessionExpired => "the session has expired: log in again",
            AuthError::MissingCsrfHeader => {
                "a cookie-authorised change needs the `X-BPM-CSRF: 1` header"
            }
        }
    }
}

/// Shortest token accepted as configured: a short secret is guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// The demo's token, published in `.dev.vars.example`.
pub const DEMO_TOKEN: &str = "dev-token-change-me-0123456789";

/// Whether `host` (a `Host` header or URL host, with or without a port)
/// names this machine: `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host.as_str(), |(name, _)| name)
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The configured token as usable for a request to `host`: why not, if it
/// is missing, too short, or the public demo token away from loopback.
pub fn screen_token<'a>(configured: Option<&'a str>, host: &str) -> Result<&'a str, AuthError> {
    let token = configured_token(configured)?;
    if same_secret(token, DEMO_TOKEN) && !is_loopback(host) {
        return Err(AuthError::DemoToken);
    }
    Ok(token)
}

/// Constant-time equality that hides the lengths too: compares digests.
fn same_secret(offered: &str, expected: &str) -> bool {
    let a = Sha256::digest(offered.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// The token of an `Authorization: Bearer <token>` header value (the
/// scheme in any case).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header.map(str::trim)?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Checks an `Authorization` header value against the configured token.
pub fn check_bearer(header: Option<&str>, configured: Option<&str>) -> Result<(), AuthError> {
    let expected = configured_token(configured)?;
    let token = bearer(header).ok_or(AuthError::Missing)?;
    if same_secret(token, expected) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "bpm_session";
/// How long a dashboard login lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// The header a cookie-authorised state-changing request must carry.
pub const CSRF_HEADER: &str = "x-bpm-csrf";

fn configured_token(configured: Option<&str>) -> Result<&str, AuthError> {
    match configured.map(str::trim) {
        None | Some("") => Err(AuthError::NotConfigured),
        Some(t) if t.chars().count() < MIN_TOKEN_LEN => Err(AuthError::TooShort),
        Some(t) => Ok(t),
    }
}

/// The MAC of a session's `claim` under `key`, ready to finalize or
/// verify. HMAC takes keys of any length, so `None` does not happen;
/// callers fail closed on it.
fn session_mac(key: &[u8], claim: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(claim.as_bytes());
    Some(mac)
}

/// A session value's last part: the MAC of `claim` under `key`, base64url.
pub(crate) fn session_tag(key: &[u8], claim: &str) -> Option<String> {
    let mac = session_mac(key, claim)?;
    Some(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Checks a session value's `tag` against the MAC of `claim` under `key`
/// (constant-time; a tag of the wrong length, even empty, fails), then its
/// expiry at `now`.
pub(crate) fn check_session_tag(
    key: &[u8],
    claim: &str,
    tag: &str,
    expires: i64,
    now: i64,
) -> Result<(), AuthError> {
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| AuthError::BadSession)?;
    session_mac(key, claim)
        .ok_or(AuthError::BadSession)?
        .verify_slice(&tag)
        .map_err(|_| AuthError::BadSession)?;
    if now >= expires {
        return Err(AuthError::SessionExpired);
    }
    Ok(())
}

/// What an admin session's MAC covers.
fn admin_claim(expires: i64) -> String {
    format!("bpm-session.v1.{expires}")
}

/// Checks a token offered at login (constant time).
pub fn check_token(offered: &str, configured: Option<&str>) -> Result<(), AuthError> {
    let expected = configured_token(configured)?;
    if same_secret(offered.trim(), expected) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

/// A new session value for a login at `now`, valid for [`SESSION_SECS`].
pub fn issue_session(configured: Option<&str>, now: i64) -> Result<(String, i64), AuthError> {
    let token = configured_token(configured)?;
    let expires = now + SESSION_SECS;
    let tag = session_tag(token.as_bytes(), &admin_claim(expires)).ok_or(AuthError::BadSession)?;
    Ok((format!("v1.{expires}.{tag}"), expires))
}

/// Checks a session value; returns its expiry.
pub fn check_session(value: &str, configured: Option<&str>, now: i64) -> Result<i64, AuthError> {
    let token = configured_token(configured)?;
    let mut parts = value.trim().splitn(3, '.');
    let (Some("v1"), Some(expires), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::BadSession);
    };
    let expires: i64 = expires.parse().map_err(|_| AuthError::BadSession)?;
    check_session_tag(token.as_bytes(), &admin_claim(expires), mac, expires, now)?;
    Ok(expires)
}

/// The `Set-Cookie` value for a session (`max_age` 0 ends it), scoped to
/// bpm-edge's own `prefix` so the browser never sends it with the site's
/// other paths.
pub fn session_cookie(value: &str, max_age: i64, prefix: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path={prefix}; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A `Cookie` header without bpm-edge's session cookie, for forwarding to
/// the origin: `None` when nothing else is left.
pub fn without_session_cookie(header: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty() && pair.split('=').next().map(str::trim) != Some(SESSION_COOKIE)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// What a request offered to be authorised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub csrf: Option<&'a str>,
    /// POST, PUT, PATCH or DELETE.
    pub changes_state: bool,
}

/// How a request was authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorised {
    Bearer,
    Session { expires: i64 },
}

/// Authorises an API request by bearer token or, failing a header, by the
/// session cookie (with the anti-forgery header on changes).
pub fn authorise(
    creds: Credentials<'_>,
    configured: Option<&str>,
    now: i64,
) -> Result<Authorised, AuthError> {
    configured_token(configured)?;
    if creds.authorization.is_some() {
        return check_bearer(creds.authorization, configured).map(|()| Authorised::Bearer);
    }
    let Some(session) = creds.cookie.and_then(|c| cookie_value(c, SESSION_COOKIE)) else {
        return Err(AuthError::Missing);
    };
    let expires = check_session(session, configured, now)?;
    check_csrf(creds)?;
    Ok(Authorised::Session { expires })
}

/// A credential the browser sends by itself (the session cookie, a
/// Cloudflare Access assertion) authorises a change only together with the
/// anti-forgery header, which a cross-site form cannot send.
pub fn check_csrf(creds: Credentials<'_>) -> Result<(), AuthError> {
    if creds.changes_state && creds.csrf.map(str::trim) != Some("1") {
        return Err(AuthError::MissingCsrfHeader);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn regression_the_session_cookie_ignored_the_configured_prefix() {
        let c = session_cookie("v1.1.x", 60, "/ops/metrics", true);
        assert!(c.contains("; Path=/ops/metrics;"), "{c}");
        assert!(c.ends_with("; Secure"));
        assert!(!session_cookie("", 0, "/_bpm", false).contains("Secure"));
    }

    #[test]
    fn regression_the_session_cookie_was_forwarded_to_the_origin() {
        assert_eq!(
            without_session_cookie("a=1; bpm_session=v1.2.abc; b=2").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without_session_cookie("bpm_session=v1.2.abc"), None);
        assert_eq!(
            without_session_cookie(" bpm_session = x ;theme=dark").as_deref(),
            Some("theme=dark")
        );
        // A cookie whose name merely starts the same is the site's own.
        assert_eq!(
            without_session_cookie("bpm_session2=k").as_deref(),
            Some("bpm_session2=k")
        );
    }

    #[test]
    fn regression_a_short_token_was_reported_as_not_configured() {
        assert_eq!(
            check_token("short", Some("too-short")),
            Err(AuthError::TooShort)
        );
        assert!(AuthError::TooShort.message().contains("shorter than 16"));
        assert_eq!(check_token("x", Some("  ")), Err(AuthError::NotConfigured));
        assert_eq!(check_token("x", None), Err(AuthError::NotConfigured));
    }

    #[test]
    fn regression_the_public_demo_token_worked_on_any_host() {
        for host in [
            "127.0.0.1:8787",
            "localhost",
            "LOCALHOST:80",
            "[::1]:8787",
            "127.3.4.5",
        ] {
            assert_eq!(
                screen_token(Some(DEMO_TOKEN), host),
                Ok(DEMO_TOKEN),
                "{host}"
            );
        }
        for host in [
            "www.example.com",
            "example.com:443",
            "10.0.0.1",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert_eq!(
                screen_token(Some(DEMO_TOKEN), host),
                Err(AuthError::DemoToken),
                "{host}"
            );
        }
        assert_eq!(screen_token(Some(TOKEN), "www.example.com"), Ok(TOKEN));
        assert!(AuthError::DemoToken.message().contains(".dev.vars.example"));
    }

    #[test]
    fn tokens_of_any_length_compare_as_digests() {
        // Equal digests only for equal strings; a prefix or an extension of
        // the token is just wrong (no early exit on length).
        assert!(same_secret(TOKEN, TOKEN));
        assert!(!same_secret("0123456789abcdef", TOKEN));
        assert!(!same_secret("0123456789abcdef-token-and-more", TOKEN));
        assert!(!same_secret("", TOKEN));
    }

    #[test]
    fn accepts_only_the_configured_bearer_token() {
        assert_eq!(
            check_bearer(Some("Bearer 0123456789abcdef-token"), Some(TOKEN)),
            Ok(())
        );
        assert_eq!(
            check_bearer(Some("bearer  0123456789abcdef-token "), Some(TOKEN)),
            Ok(())
        );
        assert_eq!(
            check_bearer(Some("Bearer 0123456789abcdef-tokeN"), Some(TOKEN)),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check_bearer(Some("Bearer  x"), Some(TOKEN)),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Basic abc"), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check_bearer(Some(TOKEN), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(check_bearer(None, Some(TOKEN)), Err(AuthError::Missing));
    }

    #[test]
    fn no_or_short_configured_token_authorises_nothing() {
        assert_eq!(
            check_bearer(Some("Bearer x"), None),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            check_bearer(Some("Bearer short"), Some("short")),
            Err(AuthError::TooShort)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), Some("")),
            Err(AuthError::NotConfigured)
        );
        assert!(!AuthError::Wrong.message().is_empty());
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_token() {
        let (value, expires) = issue_session(Some(TOKEN), 1_000).unwrap();
        assert_eq!(expires, 1_000 + SESSION_SECS);
        assert_eq!(check_session(&value, Some(TOKEN), 1_001), Ok(expires));
        assert_eq!(
            check_session(&value, Some(TOKEN), expires),
            Err(AuthError::SessionExpired)
        );
        assert_eq!(
            check_session(&value, Some("another-token-0123456789"), 1_001),
            Err(AuthError::BadSession)
        );
    }

    #[test]
    fn a_session_cannot_be_extended_or_forged() {
        let (value, expires) = issue_session(Some(TOKEN), 1_000).unwrap();
        let mac = value.rsplit('.').next().unwrap();
        let extended = format!("v1.{}.{mac}", expires + 86_400);
        assert_eq!(
            check_session(&extended, Some(TOKEN), 1_001),
            Err(AuthError::BadSession)
        );
        for bad in [
            "",
            "v1",
            "v1.x.y",
            "v2.1.abc",
            "v1.99999999999.!!",
            "v1.5",
            "v1.99999999999.",
        ] {
            assert_eq!(
                check_session(bad, Some(TOKEN), 1),
                Err(AuthError::BadSession),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cookie_values_are_found_among_others() {
        let header = "theme=dark; bpm_session=v1.5.abc ;other=1";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("v1.5.abc"));
        assert_eq!(cookie_value("bpm_session_x=1", SESSION_COOKIE), None);
        assert_eq!(cookie_value("", SESSION_COOKIE), None);
    }

    #[test]
    fn cookie_authorised_changes_need_the_csrf_header() {
        let (value, expires) = issue_session(Some(TOKEN), 1_000).unwrap();
        let cookie = format!("{SESSION_COOKIE}={value}");
        let read = Credentials {
            cookie: Some(&cookie),
            ..Default::default()
        };
        assert_eq!(
            authorise(read, Some(TOKEN), 1_001),
            Ok(Authorised::Session { expires })
        );
        let change = Credentials {
            changes_state: true,
            ..read
        };
        assert_eq!(
            authorise(change, Some(TOKEN), 1_001),
            Err(AuthError::MissingCsrfHeader)
        );
        let with_header = Credentials {
            csrf: Some("1"),
            ..change
        };
        assert!(authorise(with_header, Some(TOKEN), 1_001).is_ok());
        // A bearer header is judged on its own, even next to a valid cookie.
        let wrong_bearer = Credentials {
            authorization: Some("Bearer nope"),
            ..read
        };
        assert_eq!(
            authorise(wrong_bearer, Some(TOKEN), 1_001),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            authorise(Credentials::default(), Some(TOKEN), 1_001),
            Err(AuthError::Missing)
        );
        assert_eq!(authorise(read, None, 1_001), Err(AuthError::NotConfigured));
    }
}
