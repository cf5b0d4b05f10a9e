//! Which digest is due: the period it covers and the id it goes out under.
//!
//! A digest is sent at its local send time (`[digest] at`, on `weekday` for
//! a weekly one) about the whole local days before that day: the day
//! before, or the 7 days since the same weekday a week earlier. Days are
//! local, so a period spanning a daylight-saving change is 23 or 25 hours
//! longer or shorter than 24 × its days. A period is due from its send time
//! for [`SEND_WITHIN_SECS`]; a deployment whose cron was down longer skips
//! it rather than mailing an old scorecard. It goes out once: the alert
//! store records its [`DigestPeriod::id`] with its messages, so the cron
//! firing twice, or a restarted object, finds it recorded.

use crate::config::digest::{DigestEvery, DigestSettings};
use crate::config::sitetime::SiteTime;
use crate::time::DAY;
use serde::Serialize;

/// How long after its send time a period may still go out.
pub const SEND_WITHIN_SECS: i64 = DAY;

/// The stretch a digest covers, `[from, to)` (Unix seconds), and when it
/// is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DigestPeriod {
    pub from: i64,
    pub to: i64,
    pub send_at: i64,
}

impl DigestPeriod {
    /// The delivery id: one per site and period, whoever computes it.
    pub fn id(&self, site: &str) -> String {
        format!("digest:{site}:{}", self.from)
    }

    /// The period before this one, as long in local days.
    pub fn previous(&self, zone: &SiteTime) -> DigestPeriod {
        let days = ((zone.local(self.to) - zone.local(self.from)) / DAY).max(1);
        DigestPeriod {
            from: zone.days_before(self.from, days),
            to: self.from,
            send_at: zone.days_before(self.send_at, days),
        }
    }
}

/// Local midnight (as local seconds) of the day holding local time `l`.
fn local_midnight(l: i64) -> i64 {
    l.div_euclid(DAY) * DAY
}

/// The latest period whose send time is at or before `now`.
pub fn latest(settings: &DigestSettings, zone: &SiteTime, now: i64) -> DigestPeriod {
    let local_now = zone.local(now);
    let at = i64::from(settings.at_minute) * 60;
    let today = local_midnight(local_now);
    // The send day: today if its send time has passed, else the one before.
    let (step, mut day) = match settings.every {
        DigestEvery::Day => (1, today),
        DigestEvery::Week => {
            // 1970-01-01 was a Thursday (weekday 3, Monday = 0).
            let weekday = ((today / DAY) + 3).rem_euclid(7);
            let back = (weekday - i64::from(settings.weekday)).rem_euclid(7);
            (7, today - back * DAY)
        }
    };
    if zone.instant(day + at) > now {
        day -= step * DAY;
    }
    DigestPeriod {
        from: zone.instant(day - step * DAY),
        to: zone.instant(day),
        send_at: zone.instant(day + at),
    }
}

/// The period to send at `now`, if one is due (whether it was sent is the
/// alert store's record of its id).
pub fn due(settings: &DigestSettings, zone: &SiteTime, now: i64) -> Option<DigestPeriod> {
    let p = latest(settings, zone, now);
    (now - p.send_at < SEND_WITHIN_SECS).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sitetime::lookup;
    use crate::time::{format_time, parse_rfc3339};

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn weekly() -> DigestSettings {
        DigestSettings::default()
    }

    #[test]
    fn a_weekly_digest_covers_the_local_week_before_its_monday_morning() {
        let berlin = lookup("Europe/Berlin").unwrap();
        // Monday 2026-11-23 09:00 Berlin is 08:00 UTC.
        let p = latest(&weekly(), &berlin, t("2026-11-23T08:00:00Z"));
        assert_eq!(format_time(p.send_at), "2026-11-23T08:00:00Z");
        assert_eq!(format_time(p.from), "2026-11-15T23:00:00Z");
        assert_eq!(format_time(p.to), "2026-11-22T23:00:00Z");
        // A minute earlier, the week before's is the latest.
        let before = latest(&weekly(), &berlin, t("2026-11-23T07:59:00Z"));
        assert_eq!(format_time(before.send_at), "2026-11-16T08:00:00Z");
        // Any time in the week after: the same period.
        assert_eq!(latest(&weekly(), &berlin, t("2026-11-29T22:00:00Z")), p);
        assert_eq!(p.previous(&berlin).to, p.from);
        assert_eq!(p.previous(&berlin).from, t("2026-11-08T23:00:00Z"));
    }

    #[test]
    fn across_a_daylight_saving_change_a_week_is_seven_local_days() {
        let berlin = lookup("Europe/Berlin").unwrap();
        // Clocks went forward on Sunday 2026-03-29: the week to Monday
        // 03-30 is 167 hours, sent at 09:00 summer time (07:00 UTC).
        let p = latest(&weekly(), &berlin, t("2026-03-30T12:00:00Z"));
        assert_eq!(format_time(p.send_at), "2026-03-30T07:00:00Z");
        assert_eq!(p.to - p.from, 167 * 3600);
        assert_eq!(berlin.local(p.from) % DAY, 0);
        // The week before it is 168 hours, ending where this one starts.
        let q = p.previous(&berlin);
        assert_eq!((q.to, q.to - q.from), (p.from, 168 * 3600));
        // In autumn (2026-10-25) the week is 169 hours.
        let a = latest(&weekly(), &berlin, t("2026-10-26T09:00:00Z"));
        assert_eq!(a.to - a.from, 169 * 3600);
    }

    #[test]
    fn a_daily_digest_on_another_weekday_and_time() {
        let utc = SiteTime::utc();
        let daily = DigestSettings {
            every: DigestEvery::Day,
            at_minute: 7 * 60 + 30,
            ..DigestSettings::default()
        };
        let p = latest(&daily, &utc, t("2026-12-01T07:30:00Z"));
        assert_eq!(
            (p.from, p.to),
            (t("2026-11-30T00:00:00Z"), t("2026-12-01T00:00:00Z"))
        );
        let early = latest(&daily, &utc, t("2026-12-01T07:29:59Z"));
        assert_eq!(early.to, t("2026-11-30T00:00:00Z"));
        let friday = DigestSettings {
            weekday: 4,
            ..DigestSettings::default()
        };
        // Tuesday 2026-12-01: the latest Friday 09:00 is 2026-11-27.
        let f = latest(&friday, &utc, t("2026-12-01T12:00:00Z"));
        assert_eq!(f.send_at, t("2026-11-27T09:00:00Z"));
        assert_eq!(f.from, t("2026-11-20T00:00:00Z"));
    }

    #[test]
    fn due_under_one_id_per_site_and_period_and_only_within_a_day_of_its_send_time() {
        let utc = SiteTime::utc();
        let monday = t("2026-11-30T09:00:00Z");
        let p = due(&weekly(), &utc, monday + 60).expect("due");
        assert_eq!(
            p.id("shop"),
            format!("digest:shop:{}", t("2026-11-23T00:00:00Z"))
        );
        // The cron fires again, or another tick runs: the same period under
        // the same id, which the alert store has recorded.
        assert_eq!(due(&weekly(), &utc, monday + 120), Some(p));
        // Another site's id is its own.
        assert_ne!(p.id("blog"), p.id("shop"));
        // A day late: skipped, not sent stale.
        assert_eq!(due(&weekly(), &utc, monday + DAY), None);
        assert!(due(&weekly(), &utc, monday + DAY - 1).is_some());
    }
}
