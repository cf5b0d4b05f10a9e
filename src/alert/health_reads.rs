//! What the alert object reads to describe a firing event's health (the
//! status mix and p95 latency that `alert_book::health_change` compares):
//! the counted metric behind the event's metric (a ratio's numerator), its
//! `status` and `lat` dimensions, in the event's window and in the same
//! window [`REFERENCE_DAYS`] earlier.
//!
//! Invariant: both windows have the event's length and end at the same
//! wall-clock time of the site, so a daily or weekly pattern compares like
//! with like, across a daylight-saving change too.

use crate::config::{Config, MetricKind};

/// How many days before the event's window the reference window ends.
pub const REFERENCE_DAYS: i64 = 7;

/// The shard reads behind an event's health: minute rows of `metric`'s
/// `dims` in the `window` seconds before each of `ends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReads {
    pub metric: String,
    pub dims: Vec<String>,
    pub window: i64,
    /// The end of the event's window, then of the reference window.
    pub ends: [i64; 2],
}

impl HealthReads {
    /// The reads for an event on `metric` whose `window` ends at `at`.
    pub fn new(config: &Config, metric: &str, window: i64, at: i64) -> Self {
        let counted = match config.metric(metric).map(|m| &m.kind) {
            Some(MetricKind::Ratio(r)) => r.numerator.clone(),
            _ => metric.to_string(),
        };
        HealthReads {
            metric: counted,
            dims: vec!["status".to_string(), "lat".to_string()],
            window,
            ends: [at, config.time.days_before(at, REFERENCE_DAYS)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{DAY, HOUR};

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    #[test]
    fn a_ratio_reads_its_numerator_and_a_count_itself() {
        let cfg = config();
        let at = 1_767_571_200; // 2026-01-05T00:00:00Z
        let ratio = HealthReads::new(&cfg, "login_success", 3600, at);
        assert_eq!(ratio.metric, "dashboard_views");
        assert_eq!(ratio.dims, ["status", "lat"]);
        assert_eq!(ratio.window, 3600);
        let counted = HealthReads::new(&cfg, "logins", 900, at);
        assert_eq!(counted.metric, "logins");
        // Berlin keeps one offset through this week.
        assert_eq!(counted.ends, [at, at - 7 * DAY]);
        // An unknown metric is read as named (it has no rows).
        assert_eq!(HealthReads::new(&cfg, "gone", 900, at).metric, "gone");
    }

    #[test]
    fn the_reference_window_ends_at_the_same_local_time_across_dst() {
        let cfg = config();
        // 2026-03-31T10:00:00Z is 12:00 in Berlin (summer time since the
        // 29th); a week earlier 12:00 was 11:00 UTC.
        let at = 1_774_951_200;
        let reads = HealthReads::new(&cfg, "logins", 3600, at);
        assert_eq!(reads.ends, [at, at - 7 * DAY + HOUR]);
    }
}
