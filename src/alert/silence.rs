//! Silences: a mute on one rule (or `*`: every rule) until a time, as
//! `POST /api/silences` asks for it ([`SilenceRequest`]) and the alert
//! object keeps it.
//!
//! Invariants of a silence made by [`SilenceRequest::into_silence`]: it
//! names a configured rule or `*`, ends after its `created_at` and at most
//! [`MAX_SILENCE_SECS`] later, and has a reason and an author. It covers its
//! rule while `now < until` ([`Silence::covers`]); once ended it mutes
//! nothing, stays listed for [`SILENCE_RETENTION_SECS`] and is then pruned.
//! What a silence holds back of a rule's notifications is
//! [`crate::alert::mute`]'s decision.

use crate::config::rules::parse_duration;
use crate::config::Config;
use crate::time::{parse_rfc3339, DAY};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest silence accepted.
pub const MAX_SILENCE_SECS: i64 = 90 * DAY;
/// An ended silence stays listed (`active: false`) this long after its
/// `until`, then is pruned; its record stays in the history
/// ([`silence_history`](crate::alert::alert_book::silence_history)).
pub const SILENCE_RETENTION_SECS: i64 = 7 * DAY;

/// The id of a new silence: `sil_` and the 16 hex digits of `entropy`
/// (random per silence).
pub fn silence_id(entropy: u64) -> String {
    format!("sil_{entropy:016x}")
}

/// Whether `id` could name a silence: 1 to 64 ASCII letters, digits or
/// `_`. Anything else names none (and never reaches the store).
pub fn plausible_silence_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A mute on one rule (or `*`: all) until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// A rule name, or `*`.
    pub rule: String,
    /// Unix seconds; the silence ends at this instant.
    pub until: i64,
    pub reason: String,
    pub author: String,
    pub created_at: i64,
}

impl Silence {
    pub fn covers(&self, rule: &str, now: i64) -> bool {
        now < self.until && (self.rule == "*" || self.rule == rule)
    }

    /// Ended more than [`SILENCE_RETENTION_SECS`] before `now`: it mutes
    /// nothing any more and leaves the silence list. An active silence is
    /// never expired.
    pub fn expired(&self, now: i64) -> bool {
        self.until < now.saturating_sub(SILENCE_RETENTION_SECS)
    }
}

/// The body of `POST /api/silences`.
#[derive(Debug, Clone, Deserialize)]
pub struct SilenceRequest {
    pub rule: Option<String>,
    /// RFC 3339 end of the silence…
    pub until: Option<String>,
    /// …or its length from now ("2h").
    pub duration: Option<String>,
    pub reason: Option<String>,
    pub author: Option<String>,
}

/// Why a silence request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceError {
    Missing(&'static str),
    UnknownRule(String),
    BadUntil(String),
    NotInFuture,
    TooLong,
    TooLongText(&'static str),
}

impl fmt::Display for SilenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilenceError::Missing(field) => write!(f, "`{field}` is required"),
            SilenceError::UnknownRule(r) => {
                write!(f, "{r:?} is not an alert rule (or \"*\" for all)")
            }
            SilenceError::BadUntil(v) => write!(
                f,
                "{v:?} is neither an RFC 3339 time (`until`) nor a duration like \"2h\" (`duration`)"
            ),
            SilenceError::NotInFuture => write!(f, "the silence must end in the future"),
            SilenceError::TooLong => write!(f, "a silence lasts at most 90 days"),
            SilenceError::TooLongText(field) => write!(f, "`{field}` is too long"),
        }
    }
}

impl std::error::Error for SilenceError {}

impl SilenceRequest {
    /// Validates the request into a silence with the given id.
    pub fn into_silence(
        self,
        config: &Config,
        id: String,
        now: i64,
    ) -> Result<Silence, SilenceError> {
        let rule = self.rule.ok_or(SilenceError::Missing("rule"))?;
        if rule != "*" && config.alert(&rule).is_none() {
            return Err(SilenceError::UnknownRule(rule.chars().take(64).collect()));
        }
        let until = match (self.until, self.duration) {
            (Some(u), _) => parse_rfc3339(&u)
                .ok_or_else(|| SilenceError::BadUntil(u.chars().take(64).collect()))?,
            (None, Some(d)) => parse_duration(&d)
                .filter(|s| *s > 0)
                .map(|s| now.saturating_add(s))
                .ok_or_else(|| SilenceError::BadUntil(d.chars().take(64).collect()))?,
            (None, None) => return Err(SilenceError::Missing("until")),
        };
        if until <= now {
            return Err(SilenceError::NotInFuture);
        }
        if until - now > MAX_SILENCE_SECS {
            return Err(SilenceError::TooLong);
        }
        let text = |v: Option<String>, field: &'static str, max: usize| {
            let v = v.map(|s| s.trim().to_string()).unwrap_or_default();
            if v.is_empty() {
                Err(SilenceError::Missing(field))
            } else if v.chars().count() > max {
                Err(SilenceError::TooLongText(field))
            } else {
                Ok(v)
            }
        };
        Ok(Silence {
            id,
            rule,
            until,
            reason: text(self.reason, "reason", 500)?,
            author: text(self.author, "author", 100)?,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn silence_ids_are_sil_and_sixteen_hex_digits_and_plausible() {
        assert_eq!(silence_id(0), "sil_0000000000000000");
        assert_eq!(silence_id(0xdead_beef), "sil_00000000deadbeef");
        assert_eq!(silence_id(u64::MAX), "sil_ffffffffffffffff");
        assert!(plausible_silence_id(&silence_id(42)));
        for bad in [
            "",
            "sil-1",
            "sil_1/..",
            "sil 1",
            "s\u{e9}l",
            &"a".repeat(65),
        ] {
            assert!(!plausible_silence_id(bad), "{bad:?}");
        }
        assert!(plausible_silence_id(&"a".repeat(64)));
    }

    use super::*;
    use crate::alert::test_fixtures::{config, silence};

    #[test]
    fn silence_requests_are_validated() {
        let cfg = config();
        let req = |rule: &str, until: Option<&str>, duration: Option<&str>| SilenceRequest {
            rule: Some(rule.into()),
            until: until.map(String::from),
            duration: duration.map(String::from),
            reason: Some("maintenance".into()),
            author: Some("ops@example".into()),
        };
        let now = 1_800_000_000;
        let ok = req("*", None, Some("2h"))
            .into_silence(&cfg, "sil_a".into(), now)
            .unwrap();
        assert_eq!(ok.until, now + 7200);
        assert!(ok.covers("logins_drop", now) && !ok.covers("logins_drop", now + 7200));
        assert_eq!(
            req("nope", None, Some("2h")).into_silence(&cfg, "x".into(), now),
            Err(SilenceError::UnknownRule("nope".into()))
        );
        assert_eq!(
            req("logins_drop", Some("2020-01-01T00:00:00Z"), None).into_silence(
                &cfg,
                "x".into(),
                now
            ),
            Err(SilenceError::NotInFuture)
        );
        assert_eq!(
            req("logins_drop", None, Some("100d")).into_silence(&cfg, "x".into(), now),
            Err(SilenceError::TooLong)
        );
        let mut no_author = req("*", None, Some("1h"));
        no_author.author = Some("  ".into());
        assert_eq!(
            no_author.into_silence(&cfg, "x".into(), now),
            Err(SilenceError::Missing("author"))
        );
    }

    #[test]
    fn an_ended_silence_expires_after_its_retention() {
        let s = silence("*", 100);
        assert!(!s.expired(100 + SILENCE_RETENTION_SECS));
        assert!(s.expired(101 + SILENCE_RETENTION_SECS));
        assert!(!s.expired(i64::MIN));
    }
}
