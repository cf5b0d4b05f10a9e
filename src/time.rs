//! Time as bpm-edge counts, writes and shows it: the minute, hour, day, week
//! and the detector's 5-minute bucket in seconds; the stored bucket sizes
//! ([`Resolution`]: a minute bucket starts at a multiple of 60 s since the
//! Unix epoch, an hour at a multiple of 3,600 s, a day at UTC midnight);
//! Unix seconds inside, one RFC 3339
//! form outside (UTC, `Z`, whole seconds) for every API answer, webhook,
//! CSV and stored time, one parser for the RFC 3339 times callers send, and
//! one label for durations (`15m`, `1h`, `45s`) for windows, config errors
//! and the backtest, and the [`WallClock`] that finds "the same time N days
//! earlier" for baselines and reports ([`Utc`] here; the site's zone is
//! `config::sitetime::SiteTime`).
//!
//! Invariant: [`format_time`] and [`parse_rfc3339`] round-trip every
//! instant chrono can represent; [`duration_label`] uses the largest whole
//! unit, so a label parses back (`rules::parse_duration`) to the same
//! seconds.

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;
pub const WEEK: i64 = 7 * DAY;
/// The detector's bucket: alert windows are whole numbers of these.
pub const BUCKET_SECS: i64 = 300;

/// A bucket size, ordered from the finest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => MINUTE,
            Resolution::Hour => HOUR,
            Resolution::Day => DAY,
        }
    }

    /// The `res` column value in storage.
    pub fn code(self) -> i64 {
        match self {
            Resolution::Minute => 0,
            Resolution::Hour => 1,
            Resolution::Day => 2,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Resolution::Minute),
            "hour" => Some(Resolution::Hour),
            "day" => Some(Resolution::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// Start of the bucket containing `t` (Unix seconds), also for t < 0.
    pub fn floor(self, t: i64) -> i64 {
        t.div_euclid(self.seconds()) * self.seconds()
    }
}

/// Maps an instant to the instant with the same local wall-clock time some
/// days earlier, so "the same time last week" survives DST changes.
pub trait WallClock {
    fn days_before(&self, t: i64, days: i64) -> i64;

    /// A span `[from, to)` holding `t` over which the UTC offset does not
    /// change (at least `[t, t + 1)`: nothing known).
    fn steady_span(&self, t: i64) -> (i64, i64) {
        (t, t.saturating_add(1))
    }
}

/// UTC (and any naive time series): days are always 86,400 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utc;

impl WallClock for Utc {
    fn days_before(&self, t: i64, days: i64) -> i64 {
        t - days * DAY
    }

    fn steady_span(&self, _t: i64) -> (i64, i64) {
        (i64::MIN, i64::MAX)
    }
}

/// A [`WallClock`] that remembers the last steady span it was told of:
/// while `t` and the answer (with a day to spare) lie in it, the answer is
/// `t − days` without asking the zone. One lives for one evaluation, which
/// asks the same few weeks thousands of times.
pub struct SpanCachedClock<'a> {
    zone: &'a dyn WallClock,
    span: std::cell::Cell<(i64, i64)>,
}

impl<'a> SpanCachedClock<'a> {
    pub fn new(zone: &'a dyn WallClock) -> Self {
        SpanCachedClock {
            zone,
            span: std::cell::Cell::new((0, 0)),
        }
    }
}

impl WallClock for SpanCachedClock<'_> {
    fn days_before(&self, t: i64, days: i64) -> i64 {
        let naive = t.saturating_sub(days.saturating_mul(DAY));
        // Invariant: the offset is the same over `[naive − 1 day, t]`, so
        // the instant with `t`'s local time `days` earlier is `naive`.
        let steady =
            |(from, to): (i64, i64)| days >= 0 && naive.saturating_sub(DAY) >= from && t < to;
        if steady(self.span.get()) {
            return naive;
        }
        let span = self.zone.steady_span(t);
        self.span.set(span);
        if steady(span) {
            return naive;
        }
        self.zone.days_before(t, days)
    }

    fn steady_span(&self, t: i64) -> (i64, i64) {
        self.zone.steady_span(t)
    }
}

/// RFC 3339 in UTC with a `Z`, seconds precision; empty for an instant
/// outside chrono's range.
pub fn format_time(t: i64) -> String {
    format_time_or(t, "")
}

/// [`format_time`], with `fallback` for an instant outside chrono's range
/// (webhook bodies, whose receivers require a time, give the epoch).
pub fn format_time_or(t: i64, fallback: &str) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(
        || fallback.to_string(),
        |d| d.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Unix seconds of an RFC 3339 time (any offset), or `None`.
pub fn parse_rfc3339(raw: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|d| d.timestamp())
}

/// A duration in its largest whole unit: "15m", "1h", "24h", "90m", "45s";
/// zero or negative → "0s".
pub fn duration_label(secs: i64) -> String {
    if secs <= 0 {
        "0s".to_string()
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_maths_is_utc_aligned_and_handles_negative_times() {
        let t = 1_764_000_123; // 2025-11-24T16:02:03Z
        assert_eq!(Resolution::Minute.floor(t), 1_764_000_120);
        assert_eq!(Resolution::Hour.floor(t), 1_764_000_000);
        assert_eq!(Resolution::Day.floor(t), 1_763_942_400);
        assert_eq!(Resolution::Minute.floor(-1), -60);
        assert_eq!(Resolution::Hour.floor(0), 0);
        assert_eq!(Resolution::parse("hour"), Some(Resolution::Hour));
        assert_eq!(Resolution::parse("week"), None);
    }

    #[test]
    fn duration_labels() {
        for (secs, label) in [
            (900, "15m"),
            (1800, "30m"),
            (3600, "1h"),
            (7200, "2h"),
            (86_400, "24h"),
            (5400, "90m"),
            (90, "90s"),
            (45, "45s"),
            (0, "0s"),
            (-3600, "0s"),
        ] {
            assert_eq!(duration_label(secs), label, "{secs}");
        }
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_796_000_000), "2026-11-30T00:53:20Z");
        assert_eq!(
            parse_rfc3339("2026-11-30T01:53:20+01:00"),
            Some(1_796_000_000)
        );
        assert_eq!(parse_rfc3339(" 2026-11-30T00:53:20Z "), Some(1_796_000_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(format_time(i64::MAX), "");
        assert_eq!(format_time_or(i64::MAX, "then"), "then");
        assert_eq!(format_time_or(0, "then"), "1970-01-01T00:00:00Z");
    }
}
