//! How a metric's requests changed while it dropped: the share of each
//! status class and the p95 latency, now against before, from the `status`
//! and `lat` rows the alert object reads when an alert fires.
//!
//! Invariants: shares are percents with one decimal of the rows' total
//! (0 for "now" when it has no rows, `None` for "before" when it has none);
//! every class seen in either period is listed once, in order; a latency
//! row whose bucket is not a number is left out.

use crate::alert::event::{HealthChange, StatusShare};
use crate::count::latency;
use crate::count::tally::Row;
use std::collections::BTreeMap;

/// Status mix and p95 latency of a metric's requests, now against before,
/// from `status` and `lat` rows.
pub fn health_change(now: &[Row], before: &[Row]) -> HealthChange {
    fn mix(rows: &[Row]) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in rows.iter().filter(|r| r.dim() == "status") {
            *m.entry(r.value().to_string()).or_insert(0) += r.n();
        }
        m
    }
    fn p95(rows: &[Row]) -> Option<f64> {
        let mut hist: BTreeMap<u8, u64> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.dim() == "lat") {
            if let Ok(b) = r.value().parse::<u8>() {
                *hist.entry(b).or_insert(0) += r.n();
            }
        }
        let pairs: Vec<(u8, u64)> = hist.into_iter().collect();
        latency::quantile(&pairs, 0.95)
    }
    let (m_now, m_before) = (mix(now), mix(before));
    let total_now: u64 = m_now.values().sum();
    let total_before: u64 = m_before.values().sum();
    let pct = |n: u64, total: u64| (n as f64 * 1000.0 / total as f64).round() / 10.0;
    let mut classes: Vec<&String> = m_now.keys().chain(m_before.keys()).collect();
    classes.sort();
    classes.dedup();
    HealthChange {
        status: classes
            .into_iter()
            .map(|c| StatusShare {
                class: c.clone(),
                now_pct: if total_now > 0 {
                    pct(m_now.get(c).copied().unwrap_or(0), total_now)
                } else {
                    0.0
                },
                before_pct: (total_before > 0)
                    .then(|| pct(m_before.get(c).copied().unwrap_or(0), total_before)),
            })
            .collect(),
        p95_ms_now: p95(now),
        p95_ms_before: p95(before),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_change_compares_status_mix_and_p95() {
        let row = |dim: &str, v: &str, n: u64| Row(0, "logins".into(), dim.into(), v.into(), n);
        let now = vec![
            row("status", "2xx", 10),
            row("status", "5xx", 90),
            row("lat", "40", 100),
        ];
        let before = vec![row("status", "2xx", 100), row("lat", "20", 100)];
        let h = health_change(&now, &before);
        assert_eq!(h.status.len(), 2);
        let five = h.status.iter().find(|s| s.class == "5xx").unwrap();
        assert_eq!((five.now_pct, five.before_pct), (90.0, Some(0.0)));
        assert!(h.p95_ms_now.unwrap() > h.p95_ms_before.unwrap() * 10.0);
    }
}
