//! The site's local time: its IANA time zone as a table of UTC-offset
//! changes, so "the same time last week" is the same wall-clock time even
//! across a daylight-saving change.
//!
//! The table is computed natively (at build time for the worker, at start
//! for the command-line tool) from the tz database in `chrono-tz`, and
//! travels in the compiled config; the worker only binary-searches it, which
//! keeps the tz database out of the wasm binary. Invariant: `changes` is
//! sorted by instant and its first entry covers every earlier instant.

use serde::{Deserialize, Serialize};

/// A time zone as the offsets in force from given UTC instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTime {
    /// IANA name, e.g. `Europe/Berlin`.
    pub zone: String,
    /// `(utc_instant, offset_seconds)`: the offset from that instant on.
    pub changes: Vec<(i64, i32)>,
}

impl Default for SiteTime {
    fn default() -> Self {
        SiteTime::utc()
    }
}

impl SiteTime {
    pub fn utc() -> Self {
        SiteTime {
            zone: "UTC".into(),
            changes: vec![(i64::MIN, 0)],
        }
    }

    /// The UTC offset in force at `t` (seconds east of UTC).
    pub fn offset_at(&self, t: i64) -> i64 {
        let i = self.changes.partition_point(|(at, _)| *at <= t);
        let idx = i.saturating_sub(1);
        self.changes.get(idx).map_or(0, |(_, o)| i64::from(*o))
    }

    /// Local wall-clock seconds (as if UTC) of the instant `t`.
    pub fn local(&self, t: i64) -> i64 {
        t + self.offset_at(t)
    }

    /// The instant whose local wall-clock time is `local`. In a gap (clocks
    /// jumped forward) the instant just after the jump's equivalent; when a
    /// time occurs twice (clocks went back), the earlier one.
    pub fn instant(&self, local: i64) -> i64 {
        // Try the offsets in force around `local`; prefer the earliest fit.
        let guess_a = local - self.offset_at(local - 86_400);
        let guess_b = local - self.offset_at(local + 86_400);
        let fits = |u: i64| self.local(u) == local;
        match (fits(guess_a), fits(guess_b)) {
            (true, true) => guess_a.min(guess_b),
            (true, false) => guess_a,
            (false, true) => guess_b,
            (false, false) => local - self.offset_at(local),
        }
    }

    /// The instant with the same local wall-clock time `days` days before `t`.
    pub fn days_before(&self, t: i64, days: i64) -> i64 {
        self.instant(self.local(t) - days * 86_400)
    }

    /// The span `[from, to)` between the offset changes around `t`.
    pub fn steady_span(&self, t: i64) -> (i64, i64) {
        let i = self.changes.partition_point(|(at, _)| *at <= t);
        let from = self
            .changes
            .get(i.saturating_sub(1))
            .map_or(i64::MIN, |(at, _)| *at);
        let to = self.changes.get(i).map_or(i64::MAX, |(at, _)| *at);
        (from, to)
    }
}

/// Local days: 23 to 25 hours long across a daylight-saving change.
impl crate::time::WallClock for SiteTime {
    fn days_before(&self, t: i64, days: i64) -> i64 {
        SiteTime::days_before(self, t, days)
    }

    fn steady_span(&self, t: i64) -> (i64, i64) {
        SiteTime::steady_span(self, t)
    }
}

/// Builds the offset table of an IANA zone for 1970–2100.
#[cfg(not(target_arch = "wasm32"))]
pub fn lookup(zone: &str) -> Option<SiteTime> {
    use chrono::{Offset, TimeZone};
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let offset = |t: i64| -> i32 {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| {
                tz.offset_from_utc_datetime(&d.naive_utc())
                    .fix()
                    .local_minus_utc()
            })
            .unwrap_or(0)
    };
    const START: i64 = 0;
    const END: i64 = 4_102_444_800; // 2100-01-01
    const STEP: i64 = 6 * 3600;
    let mut changes = vec![(i64::MIN, offset(START))];
    let mut t = START;
    while t < END {
        let next = t + STEP;
        let (a, b) = (offset(t), offset(next));
        if a != b {
            // Bisect to the second the offset changes.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == a {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            changes.push((hi, b));
        }
        t = next;
    }
    Some(SiteTime {
        zone: zone.to_string(),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-03-29 01:00 UTC: Europe/Berlin goes from +1h to +2h.
    const BERLIN_SPRING: i64 = 1_774_746_000;

    #[test]
    fn utc_is_identity() {
        let u = SiteTime::utc();
        assert_eq!(u.days_before(1_000_000, 7), 1_000_000 - 7 * 86_400);
    }

    #[test]
    fn berlin_offsets_around_the_spring_change() {
        let b = lookup("Europe/Berlin").unwrap();
        assert_eq!(b.offset_at(BERLIN_SPRING - 1), 3600);
        assert_eq!(b.offset_at(BERLIN_SPRING), 7200);
    }

    #[test]
    fn same_local_time_last_week_across_dst() {
        let b = lookup("Europe/Berlin").unwrap();
        // Monday 2026-03-30 09:00 local (07:00 UTC, summer time) ↔
        // Monday 2026-03-23 09:00 local (08:00 UTC, winter time): 7 days
        // minus one hour apart.
        let after = 1_774_854_000;
        let before = b.days_before(after, 7);
        assert_eq!(after - before, 7 * 86_400 - 3600);
        assert_eq!(b.local(after) - b.local(before), 7 * 86_400);
        // And back in autumn (2026-10-25): 7 days plus one hour.
        let autumn_after = 1_793_433_600; // Sat 2026-10-31 09:00 local (08:00 UTC)
        let autumn_before = b.days_before(autumn_after, 7);
        assert_eq!(autumn_after - autumn_before, 7 * 86_400 + 3600);
    }

    #[test]
    fn times_in_the_gap_and_the_overlap() {
        let b = lookup("Europe/Berlin").unwrap();
        // 02:30 local on the spring day does not exist: some instant near it.
        let gap_local = b.local(BERLIN_SPRING) - 1800;
        let u = b.instant(gap_local);
        assert!((u - BERLIN_SPRING).abs() <= 3600);
        // 02:30 local on 2026-10-25 happens twice; the earlier is chosen.
        let autumn = 1_792_890_000; // 01:00 UTC, back from +2h to +1h
        let twice = b.local(autumn) - 1800; // 02:30 local, also an hour later
        let u = b.instant(twice);
        assert_eq!(b.local(u), twice);
        assert!(u < autumn);
    }

    #[test]
    fn the_span_cache_answers_as_the_zone_around_offset_changes() {
        let b = lookup("Europe/Berlin").unwrap();
        use crate::time::WallClock;
        let cached = crate::time::SpanCachedClock::new(&b);
        for &(change, _) in b.changes.iter().skip(100).take(6) {
            // From two days before the change to 30 days after it, so the
            // change falls between `t` and the answer for every `d`.
            for step in -96..1440 {
                let t = change + step * 1800;
                for d in [1, 7, 28] {
                    assert_eq!(cached.days_before(t, d), b.days_before(t, d), "t={t} d={d}");
                }
            }
        }
    }

    #[test]
    fn unknown_zone() {
        assert!(lookup("Mars/Olympus").is_none());
        assert!(lookup("America/New_York").unwrap().changes.len() > 200);
    }
}
