//! Who a visitor is, without cookies: a keyed hash of (site, IP address,
//! user agent) under a salt that rotates every day, the rules for which
//! salts exist, and an isolate's cache of them.
//!
//! Privacy invariants: the raw IP and user agent only ever exist in the
//! memory of the isolate handling the request, long enough to compute
//! [`visitor_hash`]; only the 64-bit hash goes into a sketch. The salt is
//! random, lives in the salt Durable Object, and is deleted two days after
//! its day, after which nobody can link a hash to an IP (not even by trying
//! every IPv4 address). Because the salt changes each day, a visitor who
//! comes back on another day is a new visitor: uniques are exact-day
//! uniques, and a multi-day range counts a returning visitor once per day.
//!
//! Days are the site's local days (`site.timezone`): the salt rotates at
//! local midnight. A request is always hashed with the salt of its own
//! day, even if it is flushed after midnight. Sketches are per UTC hour, so
//! in a zone whose offset is not whole hours (India, +5:30) the hour that
//! contains local midnight mixes two days, and a visitor active on both
//! sides of midnight counts twice in it.

use crate::config::sitetime::SiteTime;
use crate::time::DAY;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Bytes of a salt.
pub const SALT_LEN: usize = 32;
/// Salts kept before today (yesterday's, for requests flushed after
/// midnight).
pub const DAYS_KEPT_BEFORE: i64 = 1;
/// Salts handed out after today, for an isolate whose clock is slightly
/// ahead of the salt object's at midnight.
pub const DAYS_AHEAD: i64 = 1;

/// A day's secret salt.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt([u8; SALT_LEN]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Salt(..)")
    }
}

impl Salt {
    pub fn new(bytes: [u8; SALT_LEN]) -> Self {
        Salt(bytes)
    }

    /// A salt from stored bytes; `None` unless exactly [`SALT_LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Salt)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 2 * SALT_LEN || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; SALT_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Salt(out))
    }
}

/// The site's local day number (days since 1970-01-01 local) of the
/// instant `t` (Unix seconds): which salt hashes a request answered at `t`.
pub fn salt_day(time: &SiteTime, t: i64) -> i64 {
    time.local(t).div_euclid(DAY)
}

/// HMAC-SHA256 under the day's salt of the length-prefixed site name, IP
/// address and user agent, truncated to 64 bits. Length prefixes keep
/// ("a", "bc") and ("ab", "c") apart. The IP and user agent are trimmed.
pub fn visitor_hash(salt: &Salt, site: &str, ip: &str, user_agent: &str) -> u64 {
    let mut mac = match Hmac::<Sha256>::new_from_slice(salt.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this branch cannot be taken.
        Err(_) => return 0,
    };
    for part in [site, ip.trim(), user_agent.trim()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let digest = mac.finalize().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What the salt object answers for `GET /salt?day=N`: the format between
/// the control worker's `DailySalt` and the visitor worker's isolates.
#[derive(Debug, Serialize, Deserialize)]
pub struct SaltAnswer {
    pub day: i64,
    /// Hex; the salt is a secret between the object and the isolates.
    pub salt: String,
}

/// Why an isolate did not get a day's salt from the salt object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaltAnswerError {
    /// No answer at all (the call threw or timed out), and why.
    NoAnswer(String),
    /// The object answered a status other than `200`, with this body.
    Status { status: u16, body: String },
    /// The body is not a [`SaltAnswer`].
    Unreadable(String),
    /// The answer is for another day than the one asked for.
    WrongDay { asked: i64, got: i64 },
    /// The salt is not [`SALT_LEN`] bytes of hex.
    Malformed,
}

impl std::fmt::Display for SaltAnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaltAnswerError::NoAnswer(why) => write!(f, "no answer from the salt object: {why}"),
            SaltAnswerError::Status { status, body } => {
                write!(f, "salt object answered {status}: {body}")
            }
            SaltAnswerError::Unreadable(e) => write!(f, "unreadable salt answer: {e}"),
            SaltAnswerError::WrongDay { asked, got } => {
                write!(f, "asked for day {asked}, got {got}")
            }
            SaltAnswerError::Malformed => write!(f, "the salt object sent a malformed salt"),
        }
    }
}

impl std::error::Error for SaltAnswerError {}

impl SaltAnswer {
    /// Decodes an answer with serde (natively; the visitor worker decodes
    /// with the runtime's `JSON.parse`, which its first request need not
    /// compile).
    pub fn from_json(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}

/// The salt of `day` from the salt object's answer: its HTTP `status` and
/// `body`, where status `0` means there was no answer and `body` says why.
/// `decode` reads a `200`'s body as a [`SaltAnswer`].
pub fn read_salt_answer(
    day: i64,
    status: u16,
    body: &str,
    decode: impl FnOnce(&str) -> Result<SaltAnswer, String>,
) -> Result<Salt, SaltAnswerError> {
    match status {
        0 => return Err(SaltAnswerError::NoAnswer(body.to_string())),
        200 => {}
        _ => {
            return Err(SaltAnswerError::Status {
                status,
                body: body.to_string(),
            })
        }
    }
    let answer = decode(body).map_err(SaltAnswerError::Unreadable)?;
    if answer.day != day {
        return Err(SaltAnswerError::WrongDay {
            asked: day,
            got: answer.day,
        });
    }
    Salt::from_hex(&answer.salt).ok_or(SaltAnswerError::Malformed)
}

/// Why the salt object refuses to hand out a day's salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaltError {
    /// The day is older than yesterday (its salt is deleted) or too far
    /// ahead; requests of that day are counted without a visitor.
    OutsideWindow { day: i64, today: i64 },
}

impl std::fmt::Display for SaltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaltError::OutsideWindow { day, today } => write!(
                f,
                "no salt for day {day}: only days {}..={} exist (today is {today})",
                today - DAYS_KEPT_BEFORE,
                today + DAYS_AHEAD
            ),
        }
    }
}

impl std::error::Error for SaltError {}

/// Whether the salt of `day` may be read (or created) when it is `today`.
pub fn check_salt_day(day: i64, today: i64) -> Result<(), SaltError> {
    if day < today - DAYS_KEPT_BEFORE || day > today + DAYS_AHEAD {
        return Err(SaltError::OutsideWindow { day, today });
    }
    Ok(())
}

/// Salts of days before this one are deleted when it is `today`.
pub fn salt_delete_before(today: i64) -> i64 {
    today - DAYS_KEPT_BEFORE
}

/// What a request should do to get its day's salt from the isolate cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaltStep {
    Ready(Salt),
    /// Nobody is fetching it: this request fetches, then calls
    /// [`SaltCache::fetched`] or [`SaltCache::failed`].
    Fetch,
    /// Another request is fetching it: look again shortly.
    Wait,
    /// A recent fetch failed: count this request without a visitor.
    GiveUp,
}

/// An isolate's salts, so the salt object is asked at most once per day
/// per isolate (plus retries after failures, at most one per
/// [`RETRY_AFTER_MS`]).
#[derive(Debug, Default)]
pub struct SaltCache {
    /// At most [`CACHED_DAYS`] days, in no particular order.
    days: Vec<(i64, CacheEntry)>,
}

#[derive(Debug, Clone)]
enum CacheEntry {
    Ready(Salt),
    /// A request started fetching at this time (ms).
    Fetching {
        since_ms: f64,
    },
    /// Failed; no new fetch before this time (ms).
    Failed {
        retry_at_ms: f64,
    },
}

/// How long after a failed fetch the next one may happen.
pub const RETRY_AFTER_MS: f64 = 60_000.0;
/// A fetch that has not finished after this long is presumed lost (its
/// request was cancelled) and another request fetches again.
pub const FETCH_TIMEOUT_MS: f64 = 10_000.0;
/// Days kept in a cache: around one midnight, at most three.
const CACHED_DAYS: usize = 3;

impl SaltCache {
    /// The salt of `day` if this isolate already has it (no waiting).
    pub fn ready(&self, day: i64) -> Option<Salt> {
        match self.entry(day) {
            Some(CacheEntry::Ready(salt)) => Some(salt.clone()),
            _ => None,
        }
    }

    /// The step for `day` at `now_ms`; marks the day as being fetched when
    /// the answer is [`SaltStep::Fetch`].
    pub fn step(&mut self, day: i64, now_ms: f64) -> SaltStep {
        match self.entry(day) {
            Some(CacheEntry::Ready(salt)) => SaltStep::Ready(salt.clone()),
            Some(CacheEntry::Fetching { since_ms }) if now_ms < since_ms + FETCH_TIMEOUT_MS => {
                SaltStep::Wait
            }
            Some(CacheEntry::Failed { retry_at_ms }) if now_ms < *retry_at_ms => SaltStep::GiveUp,
            _ => {
                self.set(day, CacheEntry::Fetching { since_ms: now_ms });
                SaltStep::Fetch
            }
        }
    }

    pub fn fetched(&mut self, day: i64, salt: Salt) {
        self.set(day, CacheEntry::Ready(salt));
    }

    pub fn failed(&mut self, day: i64, now_ms: f64) {
        self.set(
            day,
            CacheEntry::Failed {
                retry_at_ms: now_ms + RETRY_AFTER_MS,
            },
        );
    }

    fn entry(&self, day: i64) -> Option<&CacheEntry> {
        self.days.iter().find(|(d, _)| *d == day).map(|(_, e)| e)
    }

    /// Sets `day`'s entry, keeping the latest [`CACHED_DAYS`] days only.
    fn set(&mut self, day: i64, entry: CacheEntry) {
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some(slot) => slot.1 = entry,
            None => self.days.push((day, entry)),
        }
        while self.days.len() > CACHED_DAYS {
            let oldest = self
                .days
                .iter()
                .enumerate()
                .min_by_key(|(_, (d, _))| *d)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    self.days.swap_remove(i);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salt(b: u8) -> Salt {
        Salt::new([b; SALT_LEN])
    }

    #[test]
    fn visitor_hash_is_stable_and_keyed() {
        let h = visitor_hash(&salt(1), "shop", "203.0.113.7", "Mozilla/5.0");
        // Stable across builds and platforms (a fixed vector).
        assert_eq!(
            h,
            visitor_hash(&salt(1), "shop", " 203.0.113.7 ", "Mozilla/5.0\t")
        );
        // Cross-checked with Python: hmac.new(b"\x01" * 32, msg, sha256).
        assert_eq!(h, 0x07e7_34a2_24c8_9cc1, "{h:#x}");
        assert_ne!(
            h,
            visitor_hash(&salt(2), "shop", "203.0.113.7", "Mozilla/5.0")
        );
        assert_ne!(
            h,
            visitor_hash(&salt(1), "blog", "203.0.113.7", "Mozilla/5.0")
        );
        assert_ne!(
            h,
            visitor_hash(&salt(1), "shop", "203.0.113.8", "Mozilla/5.0")
        );
        assert_ne!(h, visitor_hash(&salt(1), "shop", "203.0.113.7", "curl/8"));
        // Field boundaries are unambiguous.
        assert_ne!(
            visitor_hash(&salt(1), "s", "1.2.3.4", "ab"),
            visitor_hash(&salt(1), "s", "1.2.3.4a", "b")
        );
    }

    #[test]
    fn salt_days_rotate_at_local_midnight() {
        let utc = SiteTime::utc();
        let d = 20_000 * DAY;
        assert_eq!(salt_day(&utc, d - 1), 19_999);
        assert_eq!(salt_day(&utc, d), 20_000);
        assert_eq!(salt_day(&utc, d + DAY - 1), 20_000);
        assert_eq!(salt_day(&utc, -1), -1);
        // UTC+2: local midnight is 22:00 UTC the day before.
        let plus2 = SiteTime {
            zone: "Test/Plus2".into(),
            changes: vec![(i64::MIN, 7_200)],
        };
        assert_eq!(salt_day(&plus2, d - 7_200 - 1), 19_999);
        assert_eq!(salt_day(&plus2, d - 7_200), 20_000);
        // A request just before midnight keeps its day whenever it is hashed.
        assert_eq!(salt_day(&plus2, d + DAY - 7_201), 20_000);
    }

    #[test]
    fn only_yesterday_today_and_tomorrow_have_salts() {
        assert!(check_salt_day(100, 100).is_ok());
        assert!(check_salt_day(99, 100).is_ok());
        assert!(check_salt_day(101, 100).is_ok());
        assert_eq!(
            check_salt_day(98, 100),
            Err(SaltError::OutsideWindow {
                day: 98,
                today: 100
            })
        );
        assert!(check_salt_day(102, 100).is_err());
        assert_eq!(salt_delete_before(100), 99);
    }

    #[test]
    fn salt_encodings_round_trip_and_never_print() {
        let s = Salt::new(core::array::from_fn(|i| i as u8));
        assert_eq!(Salt::from_hex(&s.to_hex()), Some(s.clone()));
        assert_eq!(Salt::from_slice(s.as_bytes()), Some(s.clone()));
        assert_eq!(Salt::from_slice(&[1, 2]), None);
        assert_eq!(Salt::from_hex("zz"), None);
        assert_eq!(Salt::from_hex(&"é".repeat(32)), None);
        assert_eq!(format!("{s:?}"), "Salt(..)");
    }

    #[test]
    fn cache_fetches_once_per_day_and_backs_off_after_failures() {
        let mut c = SaltCache::default();
        assert_eq!(c.step(10, 0.0), SaltStep::Fetch);
        assert_eq!(c.step(10, 1.0), SaltStep::Wait);
        // A fetch that never finished (its request was cancelled) is redone.
        assert_eq!(c.step(10, FETCH_TIMEOUT_MS), SaltStep::Fetch);
        assert_eq!(c.step(10, FETCH_TIMEOUT_MS + 1.0), SaltStep::Wait);
        c.fetched(10, salt(7));
        assert_eq!(c.step(10, 2.0), SaltStep::Ready(salt(7)));
        // The next day is fetched separately; the old one stays usable.
        assert_eq!(c.step(11, 3.0), SaltStep::Fetch);
        c.failed(11, 3.0);
        assert_eq!(c.step(11, 4.0), SaltStep::GiveUp);
        assert_eq!(c.step(10, 4.0), SaltStep::Ready(salt(7)));
        assert_eq!(c.step(11, 3.0 + RETRY_AFTER_MS), SaltStep::Fetch);
        c.fetched(11, salt(8));
        // At most three days are kept: the oldest go first.
        c.fetched(12, salt(9));
        c.fetched(13, salt(10));
        assert_eq!(c.days.len(), 3);
        assert_eq!(c.step(13, 5.0), SaltStep::Ready(salt(10)));
        assert_eq!(c.step(10, 5.0), SaltStep::Fetch);
    }

    #[test]
    fn a_salt_answer_is_read_for_the_day_asked_only() {
        let hex = salt(7).to_hex();
        let body = format!(r#"{{"day":20000,"salt":"{hex}"}}"#);
        assert_eq!(
            read_salt_answer(20000, 200, &body, SaltAnswer::from_json),
            Ok(salt(7))
        );
        assert_eq!(
            read_salt_answer(20001, 200, &body, SaltAnswer::from_json),
            Err(SaltAnswerError::WrongDay {
                asked: 20001,
                got: 20000
            })
        );
    }

    #[test]
    fn a_salt_answer_that_is_not_a_salt_is_refused_with_its_reason() {
        assert_eq!(
            read_salt_answer(1, 0, "no answer within 5000 ms", SaltAnswer::from_json),
            Err(SaltAnswerError::NoAnswer("no answer within 5000 ms".into()))
        );
        assert_eq!(
            read_salt_answer(1, 409, "no salt for day 1", SaltAnswer::from_json),
            Err(SaltAnswerError::Status {
                status: 409,
                body: "no salt for day 1".into()
            })
        );
        assert!(matches!(
            read_salt_answer(1, 200, "<html>", SaltAnswer::from_json),
            Err(SaltAnswerError::Unreadable(_))
        ));
        assert_eq!(
            read_salt_answer(1, 200, r#"{"day":1,"salt":"abcd"}"#, SaltAnswer::from_json),
            Err(SaltAnswerError::Malformed)
        );
        let shown = read_salt_answer(1, 409, "gone", SaltAnswer::from_json)
            .unwrap_err()
            .to_string();
        assert_eq!(shown, "salt object answered 409: gone");
    }

    #[test]
    fn the_salt_objects_answer_round_trips_through_its_wire_format() {
        let answer = SaltAnswer {
            day: 5,
            salt: salt(3).to_hex(),
        };
        let body = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            read_salt_answer(5, 200, &body, SaltAnswer::from_json),
            Ok(salt(3))
        );
    }
}
