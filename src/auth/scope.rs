//! What an authorised caller may do: which sites, read-only or read-write.
//!
//! Grants come from three places. The single `BPM_API_TOKEN` is an
//! all-sites admin, as it always was. `BPM_API_TOKENS` (a JSON secret)
//! names further tokens, each scoped to sites and a role:
//! `{"marketing": {"token": "…", "sites": ["shop"], "role": "read"}}`.
//! `BPM_ACCESS_ROLES` (a JSON var) maps Cloudflare Access identities, by
//! email or email domain, to sites and a role:
//! `[{"emails": ["ana@example.com"], "domains": ["example.com"], "sites": ["*"], "role": "write"}]`.
//!
//! Invariants: a token table is refused whole if any entry is malformed
//! (no half-configured deployment); every token is at least
//! [`MIN_TOKEN_LEN`] characters and unique; a token is found by comparing
//! its SHA-256 digest with every entry's in constant time, without an early
//! exit; a site outside a grant's scope answers as if it did not exist
//! ([`Decision::NotFound`]), so a token for site A learns nothing of site B,
//! not even its name.

use crate::auth::{check_session_tag, session_tag, AuthError, MIN_TOKEN_LEN, SESSION_SECS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use subtle::ConstantTimeEq;

/// What a grant lets its holder do on its sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every `GET`: the dashboard, series, alerts, the digest preview.
    Read,
    /// Also every change: silences, backfill, annotations, receivers.
    Write,
}

/// The sites a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sites {
    All,
    Only(Vec<String>),
}

impl Sites {
    fn from_list(list: Vec<String>) -> Sites {
        if list.iter().any(|s| s == "*") {
            Sites::All
        } else {
            Sites::Only(list)
        }
    }

    pub fn covers(&self, site: &str) -> bool {
        match self {
            Sites::All => true,
            Sites::Only(list) => list.iter().any(|s| s == site),
        }
    }
}

/// Who is asking and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's name in `BPM_API_TOKENS`, `admin` for `BPM_API_TOKEN`,
    /// or the Access identity.
    pub name: String,
    pub sites: Sites,
    pub role: Role,
}

/// What an endpoint does to a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Change,
}

/// The answer to a request for `action` on a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// `404`: the site is not the caller's (as if it did not exist).
    NotFound,
    /// `403`: a read-only grant asked for a change.
    Forbidden,
}

impl Decision {
    pub fn status(self) -> u16 {
        match self {
            Decision::Allowed => 200,
            Decision::NotFound => 404,
            Decision::Forbidden => 403,
        }
    }
}

/// What the API route `route` (after `{prefix}/api/`) does under `method`:
/// every `GET`/`HEAD`, and `POST simulate` (it judges, it stores nothing),
/// reads; everything else changes the site.
pub fn action(method: &str, route: &str) -> Action {
    match (method, route) {
        ("GET" | "HEAD", _) | ("POST", "simulate") => Action::Read,
        _ => Action::Change,
    }
}

impl Grant {
    /// The all-sites admin grant of `BPM_API_TOKEN`.
    pub fn admin() -> Grant {
        Grant {
            name: "admin".into(),
            sites: Sites::All,
            role: Role::Write,
        }
    }

    pub fn decide(&self, site: &str, action: Action) -> Decision {
        if !self.sites.covers(site) {
            Decision::NotFound
        } else if action == Action::Change && self.role < Role::Write {
            Decision::Forbidden
        } else {
            Decision::Allowed
        }
    }

    /// The sites of `all` this grant may see, in their order (the
    /// dashboard's site switcher).
    pub fn visible<'a>(&self, all: &'a [String]) -> Vec<&'a String> {
        all.iter().filter(|s| self.sites.covers(s)).collect()
    }
}

/// Why `BPM_API_TOKENS` or `BPM_ACCESS_ROLES` was refused (the message
/// names the entry, never a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError {
    NotJson(String),
    ShortToken(String),
    DuplicateToken(String),
    NoSites(String),
    UnknownSite {
        entry: String,
        site: String,
    },
    /// An Access rule with neither emails nor domains.
    NoIdentities(usize),
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::NotJson(e) => write!(f, "not the expected JSON: {e}"),
            ScopeError::ShortToken(n) => write!(
                f,
                "token {n:?} is shorter than {MIN_TOKEN_LEN} characters, which is guessable"
            ),
            ScopeError::DuplicateToken(n) => {
                write!(f, "token {n:?} is the same as another entry's")
            }
            ScopeError::NoSites(n) => write!(f, "{n:?} names no site (use [\"*\"] for all)"),
            ScopeError::UnknownSite { entry, site } => {
                write!(
                    f,
                    "{entry:?} names site {site:?}, which the config does not have"
                )
            }
            ScopeError::NoIdentities(i) => {
                write!(f, "rule {i} names no emails and no domains")
            }
        }
    }
}

impl std::error::Error for ScopeError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: String,
    sites: Vec<String>,
    role: Role,
}

/// The scoped tokens of `BPM_API_TOKENS`.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    entries: Vec<([u8; 32], Grant)>,
}

/// Every listed site is one of `known` (or `*`).
fn check_sites(entry: &str, sites: &[String], known: &[String]) -> Result<(), ScopeError> {
    if sites.is_empty() {
        return Err(ScopeError::NoSites(entry.to_string()));
    }
    match sites.iter().find(|s| *s != "*" && !known.contains(s)) {
        Some(site) => Err(ScopeError::UnknownSite {
            entry: entry.to_string(),
            site: site.clone(),
        }),
        None => Ok(()),
    }
}

impl TokenTable {
    /// Reads `BPM_API_TOKENS` against the config's site names.
    pub fn parse(json: &str, known: &[String]) -> Result<TokenTable, ScopeError> {
        let raw: BTreeMap<String, RawToken> =
            serde_json::from_str(json).map_err(|e| ScopeError::NotJson(e.to_string()))?;
        let mut entries: Vec<([u8; 32], Grant)> = Vec::with_capacity(raw.len());
        for (name, t) in raw {
            if t.token.chars().count() < MIN_TOKEN_LEN {
                return Err(ScopeError::ShortToken(name));
            }
            check_sites(&name, &t.sites, known)?;
            let digest: [u8; 32] = Sha256::digest(t.token.as_bytes()).into();
            if entries.iter().any(|(d, _)| *d == digest) {
                return Err(ScopeError::DuplicateToken(name));
            }
            entries.push((
                digest,
                Grant {
                    name,
                    sites: Sites::from_list(t.sites),
                    role: t.role,
                },
            ));
        }
        Ok(TokenTable { entries })
    }

    /// The grant of the offered token, if it is one of the table's.
    pub fn find(&self, offered: &str) -> Option<&Grant> {
        self.entry(offered).map(|(_, grant)| grant)
    }

    /// The offered token's entry: its digest and grant.
    fn entry(&self, offered: &str) -> Option<&([u8; 32], Grant)> {
        let digest = Sha256::digest(offered.as_bytes());
        let mut found = None;
        // Every entry is compared, whichever matches.
        for entry in &self.entries {
            if bool::from(entry.0.ct_eq(digest.as_slice())) {
                found = Some(entry);
            }
        }
        found
    }

    /// A dashboard session for the scoped token `offered` (a login at
    /// `now`, valid for [`SESSION_SECS`]): `s1.{name}.{expires}.{mac}`, the
    /// name base64url, the MAC keyed by the token's digest. `None` when
    /// the token is not the table's. Revoking the token (removing or
    /// changing its entry) ends its sessions.
    pub fn issue_session(&self, offered: &str, now: i64) -> Option<(String, i64, &Grant)> {
        let (digest, grant) = self.entry(offered.trim())?;
        let expires = now + SESSION_SECS;
        let name = URL_SAFE_NO_PAD.encode(grant.name.as_bytes());
        let tag = session_tag(digest, &scoped_claim(&grant.name, expires))?;
        Some((format!("s1.{name}.{expires}.{tag}"), expires, grant))
    }

    /// The grant and expiry of a scoped session value at `now`.
    pub fn check_session(&self, value: &str, now: i64) -> Result<(&Grant, i64), AuthError> {
        let mut parts = value.trim().splitn(4, '.');
        let (Some("s1"), Some(name), Some(expires), Some(mac)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::BadSession);
        };
        let name = URL_SAFE_NO_PAD
            .decode(name)
            .ok()
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or(AuthError::BadSession)?;
        let expires: i64 = expires.parse().map_err(|_| AuthError::BadSession)?;
        let (digest, grant) = self
            .entries
            .iter()
            .find(|(_, g)| g.name == name)
            .ok_or(AuthError::BadSession)?;
        check_session_tag(digest, &scoped_claim(&name, expires), mac, expires, now)?;
        Ok((grant, expires))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a scoped session's MAC covers (keyed by the token's digest): the
/// token's name and the expiry.
fn scoped_claim(name: &str, expires: i64) -> String {
    format!("bpm-session.s1.{name}.{expires}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessRule {
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
    sites: Vec<String>,
    role: Role,
}

/// `BPM_ACCESS_ROLES`: which Access identities get which sites and role.
#[derive(Debug, Clone, Default)]
pub struct AccessRoles {
    /// (emails, domains, grant), lower-case.
    rules: Vec<(Vec<String>, Vec<String>, Grant)>,
}

impl AccessRoles {
    pub fn parse(json: &str, known: &[String]) -> Result<AccessRoles, ScopeError> {
        let raw: Vec<RawAccessRule> =
            serde_json::from_str(json).map_err(|e| ScopeError::NotJson(e.to_string()))?;
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let entry = format!("rule {}", i + 1);
            if r.emails.is_empty() && r.domains.is_empty() {
                return Err(ScopeError::NoIdentities(i + 1));
            }
            check_sites(&entry, &r.sites, known)?;
            let lower = |v: Vec<String>| {
                v.into_iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect()
            };
            rules.push((
                lower(r.emails),
                lower(r.domains),
                Grant {
                    name: entry,
                    sites: Sites::from_list(r.sites),
                    role: r.role,
                },
            ));
        }
        Ok(AccessRoles { rules })
    }

    /// The grant of an Access identity (an email): the union of the rules
    /// that name it, by address or by domain; `None` if none does.
    pub fn grant(&self, identity: &str) -> Option<Grant> {
        let who = identity.trim().to_ascii_lowercase();
        let domain = who.rsplit_once('@').map(|(_, d)| d.to_string());
        let mut role = None;
        let mut sites: Option<Sites> = None;
        for (emails, domains, g) in &self.rules {
            let named =
                emails.contains(&who) || domain.as_ref().is_some_and(|d| domains.contains(d));
            if !named {
                continue;
            }
            role = role.max(Some(g.role));
            sites = Some(match (sites, &g.sites) {
                (Some(Sites::All), _) | (_, Sites::All) => Sites::All,
                (Some(Sites::Only(mut a)), Sites::Only(b)) => {
                    a.extend(
                        b.iter()
                            .filter(|s| !a.contains(s))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    Sites::Only(a)
                }
                (None, s) => s.clone(),
            });
        }
        Some(Grant {
            name: identity.to_string(),
            sites: sites?,
            role: role?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        vec!["shop".into(), "blog".into()]
    }

    const TOKENS: &str = r#"{
        "marketing": {"token": "mkt-0123456789abcdef", "sites": ["shop"], "role": "read"},
        "ci": {"token": "ci-0123456789abcdefgh", "sites": ["*"], "role": "write"}
    }"#;

    #[test]
    fn a_token_finds_its_grant_and_nothing_else() {
        let t = TokenTable::parse(TOKENS, &known()).unwrap();
        assert_eq!(t.len(), 2);
        let mkt = t.find("mkt-0123456789abcdef").unwrap();
        assert_eq!((mkt.name.as_str(), mkt.role), ("marketing", Role::Read));
        assert_eq!(t.find("ci-0123456789abcdefgh").unwrap().sites, Sites::All);
        assert!(t.find("mkt-0123456789abcdeX").is_none());
        assert!(t.find("").is_none());
    }

    #[test]
    fn a_scoped_token_logs_in_to_a_session_of_its_own_grant() {
        let t = TokenTable::parse(TOKENS, &known()).unwrap();
        let (value, expires, grant) = t.issue_session("mkt-0123456789abcdef", 1000).unwrap();
        assert_eq!(grant.name, "marketing");
        assert_eq!(expires, 1000 + SESSION_SECS);
        let (back, until) = t.check_session(&value, 1001).unwrap();
        assert_eq!((back.name.as_str(), until), ("marketing", expires));
        assert_eq!(
            t.check_session(&value, expires),
            Err(AuthError::SessionExpired)
        );
        assert!(t.issue_session("not-a-token-0123456789", 1000).is_none());
        // Another name, a changed expiry or MAC is no session.
        let parts: Vec<&str> = value.split('.').collect();
        let ci = URL_SAFE_NO_PAD.encode("ci");
        for forged in [
            format!("s1.{ci}.{}.{}", parts[2], parts[3]),
            format!("s1.{}.{}.{}", parts[1], expires + 3600, parts[3]),
            format!("s1.{}.{}.", parts[1], parts[2]),
            value.replacen("s1.", "v1.", 1),
        ] {
            assert_eq!(
                t.check_session(&forged, 1001),
                Err(AuthError::BadSession),
                "{forged}"
            );
        }
        // A changed token ends the sessions made with the old one.
        let rotated = TokenTable::parse(
            &TOKENS.replace("mkt-0123456789abcdef", "mkt-rotated-0123456789"),
            &known(),
        )
        .unwrap();
        assert_eq!(
            rotated.check_session(&value, 1001),
            Err(AuthError::BadSession)
        );
    }

    #[test]
    fn scope_decides_every_endpoint_kind() {
        let t = TokenTable::parse(TOKENS, &known()).unwrap();
        let mkt = t.find("mkt-0123456789abcdef").unwrap();
        assert_eq!(mkt.decide("shop", Action::Read), Decision::Allowed);
        // A read-only token cannot mute, backfill or annotate.
        assert_eq!(mkt.decide("shop", Action::Change), Decision::Forbidden);
        // Another site is not there at all, for reads and changes alike.
        assert_eq!(mkt.decide("blog", Action::Read), Decision::NotFound);
        assert_eq!(mkt.decide("blog", Action::Change).status(), 404);
        let all = known();
        assert_eq!(mkt.visible(&all), vec![&all[0]]);
        let admin = Grant::admin();
        assert_eq!(admin.decide("blog", Action::Change), Decision::Allowed);
        assert_eq!(admin.visible(&all).len(), 2);
    }

    #[test]
    fn every_endpoint_is_a_read_or_a_change() {
        let reads = [
            ("GET", "metrics"),
            ("GET", "series"),
            ("GET", "uniques"),
            ("GET", "stats"),
            ("GET", "referrals"),
            ("GET", "alerts"),
            ("GET", "overview"),
            ("GET", "alerts/history"),
            ("GET", "silences"),
            ("GET", "annotations"),
            ("GET", "digest"),
            ("HEAD", "overview"),
            ("POST", "simulate"),
        ];
        let changes = [
            ("POST", "silences"),
            ("DELETE", "silences/sil_1"),
            ("POST", "receivers/ops/enable"),
            ("POST", "backfill"),
            ("POST", "annotations"),
            ("DELETE", "annotations/deploy-1"),
        ];
        let t = TokenTable::parse(TOKENS, &known()).unwrap();
        let read_only = t.find("mkt-0123456789abcdef").unwrap();
        for (m, r) in reads {
            assert_eq!(action(m, r), Action::Read, "{m} {r}");
            assert_eq!(
                read_only.decide("shop", action(m, r)),
                Decision::Allowed,
                "{m} {r}"
            );
            assert_eq!(
                read_only.decide("blog", action(m, r)),
                Decision::NotFound,
                "{m} {r}"
            );
        }
        for (m, r) in changes {
            assert_eq!(action(m, r), Action::Change, "{m} {r}");
            assert_eq!(
                read_only.decide("shop", action(m, r)),
                Decision::Forbidden,
                "{m} {r}"
            );
            assert_eq!(
                read_only.decide("blog", action(m, r)),
                Decision::NotFound,
                "{m} {r}"
            );
        }
    }

    #[test]
    fn a_malformed_table_is_refused_whole_without_echoing_tokens() {
        let short = r#"{"x": {"token": "short", "sites": ["shop"], "role": "read"}}"#;
        let e = TokenTable::parse(short, &known()).unwrap_err();
        assert_eq!(e, ScopeError::ShortToken("x".into()));
        assert!(!e.to_string().contains("short\""));
        let dup = r#"{"a": {"token": "same-0123456789abc", "sites": ["shop"], "role": "read"},
                      "b": {"token": "same-0123456789abc", "sites": ["blog"], "role": "read"}}"#;
        assert_eq!(
            TokenTable::parse(dup, &known()).unwrap_err(),
            ScopeError::DuplicateToken("b".into())
        );
        let unknown =
            r#"{"a": {"token": "a-0123456789abcdefg", "sites": ["shopp"], "role": "read"}}"#;
        assert!(matches!(
            TokenTable::parse(unknown, &known()),
            Err(ScopeError::UnknownSite { .. })
        ));
        let none = r#"{"a": {"token": "a-0123456789abcdefg", "sites": [], "role": "read"}}"#;
        assert!(matches!(
            TokenTable::parse(none, &known()),
            Err(ScopeError::NoSites(_))
        ));
        let role = r#"{"a": {"token": "a-0123456789abcdefg", "sites": ["shop"], "role": "owner"}}"#;
        assert!(matches!(
            TokenTable::parse(role, &known()),
            Err(ScopeError::NotJson(_))
        ));
        assert!(TokenTable::parse("[]", &known()).is_err());
    }

    #[test]
    fn access_identities_map_by_email_or_domain_and_grants_add_up() {
        let roles = AccessRoles::parse(
            r#"[
                {"domains": ["example.com"], "sites": ["blog"], "role": "read"},
                {"emails": ["Ana@Example.com"], "sites": ["shop"], "role": "write"},
                {"emails": ["ops@partner.test"], "sites": ["*"], "role": "read"}
            ]"#,
            &known(),
        )
        .unwrap();
        let ana = roles.grant("ana@example.com").unwrap();
        assert_eq!(ana.role, Role::Write);
        assert_eq!(ana.sites, Sites::Only(vec!["blog".into(), "shop".into()]));
        let bob = roles.grant("bob@example.com").unwrap();
        assert_eq!(
            (bob.role, bob.decide("shop", Action::Read)),
            (Role::Read, Decision::NotFound)
        );
        assert_eq!(roles.grant("ops@partner.test").unwrap().sites, Sites::All);
        assert_eq!(roles.grant("eve@elsewhere.test"), None);
        assert_eq!(
            AccessRoles::parse(r#"[{"sites": ["*"], "role": "read"}]"#, &known()).unwrap_err(),
            ScopeError::NoIdentities(1)
        );
    }
}
