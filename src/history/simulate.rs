//! Simulating a rule on the alert object's stored history
//! (`POST /_bpm/api/simulate`): one configured rule, with any of its
//! detector and lifecycle fields edited, judged tick by tick over the
//! stored 5-minute series (43 days) by the same code as live
//! ([`rule_backtest::judge`]); the answer lists the state changes with
//! their explaining window, the firing episodes, and the edited rule as
//! TOML to paste into `bpm.toml`.
//!
//! The stored series are 5-minute buckets, so the simulation ticks once a
//! bucket and judges the regular windows; the fast path needs minute
//! counts, which the object keeps for the last hour only. `by` rules are
//! not simulated (their per-value series are not stored).

use crate::alert::alert_book::HistoryEntry;
use crate::alert::tick_series::{bucket_start, BucketCache, MinuteCounts};
use crate::config::rules::{
    window_secs, AlertRule, DELTA_BOUNDS, EVALUATIONS_BOUNDS, MIN_EXPECTED_BOUNDS,
    RESOLVE_RATIO_BOUNDS, RESOLVE_WINDOW_SECS, WEEKS_BOUNDS, Z_BOUNDS,
};
use crate::config::{Config, Metric};
use crate::history::rule_backtest::{self, episodes, Episode, Ticks};
use crate::time::{duration_label, BUCKET_SECS};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::RangeInclusive;

/// What `POST /api/simulate` takes: a configured rule's name and the
/// fields to change (absent: as configured), under their `bpm.toml` names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    pub rule: String,
    pub delta: Option<f64>,
    pub z: Option<f64>,
    #[serde(rename = "for")]
    pub for_evaluations: Option<u32>,
    pub windows: Option<Vec<String>>,
    pub min_expected: Option<f64>,
    pub weeks: Option<u32>,
    pub resolve_ratio: Option<f64>,
    pub resolve_for: Option<u32>,
    /// How many of the last days are judged (default
    /// [`DEFAULT_JUDGED_DAYS`], at most [`MAX_JUDGED_DAYS`]); all stored
    /// history before them serves as the rule's baseline.
    pub days: Option<u32>,
}

/// Days judged unless a request says otherwise: two weeks, judged with up
/// to four weeks of history before them.
pub const DEFAULT_JUDGED_DAYS: u32 = 14;
/// All the stored series.
pub const MAX_JUDGED_DAYS: u32 = 43;

/// Why a simulation request is refused (a `400`, or `404` for a rule that
/// does not exist).
#[derive(Debug, Clone, PartialEq)]
pub enum SimulateError {
    UnknownRule(String),
    /// `by` rules judge per-value series the object does not store.
    ByRule(String),
    OutOfRange {
        field: &'static str,
        min: f64,
        max: f64,
    },
    BadWindow(String),
    NoWindows,
    /// Recovery is judged on the last hour: the windows must include it.
    NoResolveWindow,
}

impl SimulateError {
    /// The HTTP status the API answers.
    pub fn status(&self) -> u16 {
        match self {
            SimulateError::UnknownRule(_) => 404,
            _ => 400,
        }
    }
}

impl fmt::Display for SimulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimulateError::UnknownRule(r) => write!(f, "no [[alert]] named {r:?}"),
            SimulateError::ByRule(r) => write!(
                f,
                "{r:?} is a `by` rule: its per-value series are not stored, so it cannot be simulated"
            ),
            SimulateError::OutOfRange { field, min, max } => {
                write!(f, "`{field}` must be between {min} and {max}")
            }
            SimulateError::BadWindow(w) => write!(
                f,
                "window {w:?} must be a duration of whole 5-minute buckets, at most 7d"
            ),
            SimulateError::NoWindows => write!(f, "`windows` must name at least one window"),
            SimulateError::NoResolveWindow => write!(
                f,
                "`windows` must include \"1h\": recovery is judged on the last hour"
            ),
        }
    }
}

impl std::error::Error for SimulateError {}

/// `v` if it is absent or within `bounds`, which `field` must respect.
fn in_range<T: Into<f64> + Copy>(
    v: Option<T>,
    field: &'static str,
    bounds: RangeInclusive<T>,
) -> Result<Option<T>, SimulateError> {
    let (min, max) = ((*bounds.start()).into(), (*bounds.end()).into());
    match v {
        Some(x) if !(min..=max).contains(&x.into()) => {
            Err(SimulateError::OutOfRange { field, min, max })
        }
        _ => Ok(v),
    }
}

impl SimulateRequest {
    /// How many days to judge.
    pub fn judged_days(&self) -> u32 {
        self.days
            .unwrap_or(DEFAULT_JUDGED_DAYS)
            .clamp(1, MAX_JUDGED_DAYS)
    }

    /// The configured rule with the requested changes, checked with the
    /// bounds `bpm.toml` sets ([`crate::config::rules`]), so that its TOML
    /// passes `check-config`.
    pub fn edited_rule(&self, config: &Config) -> Result<AlertRule, SimulateError> {
        let mut rule = config
            .alerts
            .iter()
            .find(|r| r.name == self.rule)
            .cloned()
            .ok_or_else(|| SimulateError::UnknownRule(self.rule.clone()))?;
        if rule.by.is_some() {
            return Err(SimulateError::ByRule(rule.name));
        }
        if let Some(d) = in_range(self.delta, "delta", DELTA_BOUNDS)? {
            rule.delta = d;
        }
        if let Some(z) = in_range(self.z, "z", Z_BOUNDS)? {
            rule.z_alpha = z;
        }
        if let Some(m) = in_range(self.min_expected, "min_expected", MIN_EXPECTED_BOUNDS)? {
            rule.min_expected = m;
        }
        if let Some(w) = in_range(self.weeks, "weeks", WEEKS_BOUNDS)? {
            rule.weeks = w;
        }
        if let Some(n) = in_range(self.for_evaluations, "for", EVALUATIONS_BOUNDS)? {
            rule.for_evaluations = n;
        }
        if let Some(r) = in_range(self.resolve_ratio, "resolve_ratio", RESOLVE_RATIO_BOUNDS)? {
            rule.resolve_ratio = r;
        }
        if let Some(n) = in_range(self.resolve_for, "resolve_for", EVALUATIONS_BOUNDS)? {
            rule.resolve_evaluations = n;
        }
        in_range(self.days, "days", 1..=MAX_JUDGED_DAYS)?;
        if let Some(list) = &self.windows {
            let mut windows = Vec::with_capacity(list.len());
            for w in list {
                windows.push(window_secs(w).ok_or_else(|| SimulateError::BadWindow(w.clone()))?);
            }
            windows.sort_unstable();
            windows.dedup();
            if windows.is_empty() {
                return Err(SimulateError::NoWindows);
            }
            if !windows.contains(&RESOLVE_WINDOW_SECS) {
                return Err(SimulateError::NoResolveWindow);
            }
            rule.windows = windows;
        }
        Ok(rule)
    }
}

/// What `POST /api/simulate` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub rule: String,
    pub metric: String,
    /// The stretch judged, `[from, to)` (Unix seconds); the stored series
    /// before `from` are its baseline.
    pub from: i64,
    pub to: i64,
    /// Every state change, with the window that explains it.
    pub transitions: Vec<HistoryEntry>,
    pub episodes: Vec<Episode>,
    /// The edited rule as a `[[alert]]` block for `bpm.toml`.
    pub toml: String,
}

/// Judges `rule` over the last `days` of the stored 5-minute `series` up
/// to `now`, alone (no other rule inhibits it, no silence mutes it).
pub fn simulate(
    config: &Config,
    rule: AlertRule,
    series: &BucketCache,
    days: u32,
    now: i64,
) -> Simulation {
    let metrics = config
        .metric(&rule.metric)
        .map_or_else(|| vec![rule.metric.clone()], Metric::counted_inputs);
    let to = bucket_start(now);
    let first = series
        .keys()
        .filter(|(m, _)| metrics.contains(m))
        .map(|(_, t)| *t)
        .min()
        .unwrap_or(to)
        .max(to - i64::from(days) * crate::time::DAY);
    let toml = rule_toml(&rule);
    let (name, metric) = (rule.name.clone(), rule.metric.clone());
    let mut config = config.clone();
    config.alerts = vec![rule];
    let ticks = Ticks {
        from: first,
        to,
        every: BUCKET_SECS,
    };
    let history = rule_backtest::judge(
        &config,
        &metrics,
        series,
        &MinuteCounts::new(),
        None,
        ticks,
        &[],
    );
    let episodes = episodes(&history);
    let transitions = history.into_iter().filter(|h| h.to.is_some()).collect();
    Simulation {
        rule: name,
        metric,
        from: first,
        to,
        transitions,
        episodes,
        toml,
    }
}

/// A TOML basic string.
pub(crate) fn toml_string(s: &str) -> String {
    // JSON string escapes are valid TOML basic-string escapes.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The rule's `[[alert]]` block: its identity and every detector and
/// lifecycle field, so that what was simulated is what is pasted.
pub fn rule_toml(rule: &AlertRule) -> String {
    let list = |items: Vec<String>| format!("[{}]", items.join(", "));
    let mut out = String::from("[[alert]]\n");
    out.push_str(&format!("name = {}\n", toml_string(&rule.name)));
    out.push_str(&format!("metric = {}\n", toml_string(&rule.metric)));
    out.push_str(&format!(
        "severity = {}\n",
        toml_string(rule.severity.as_str())
    ));
    out.push_str(&format!(
        "receivers = {}\n",
        list(rule.receivers.iter().map(|r| toml_string(r)).collect())
    ));
    out.push_str(&format!(
        "windows = {}\n",
        list(
            rule.windows
                .iter()
                .map(|w| toml_string(&duration_label(*w)))
                .collect()
        )
    ));
    out.push_str(&format!("delta = {}\n", rule.delta));
    out.push_str(&format!("z = {}\n", rule.z_alpha));
    out.push_str(&format!("min_expected = {}\n", rule.min_expected));
    out.push_str(&format!("weeks = {}\n", rule.weeks));
    out.push_str(&format!("for = {}\n", rule.for_evaluations));
    out.push_str(&format!("resolve_ratio = {}\n", rule.resolve_ratio));
    out.push_str(&format!("resolve_for = {}\n", rule.resolve_evaluations));
    if rule.hold_off > 0 {
        out.push_str(&format!(
            "hold_off = {}\n",
            toml_string(&duration_label(rule.hold_off))
        ));
    }
    if rule.repeat_interval > 0 {
        out.push_str(&format!(
            "repeat_interval = {}\n",
            toml_string(&duration_label(rule.repeat_interval))
        ));
    }
    if !rule.inhibits.is_empty() {
        out.push_str(&format!(
            "inhibits = {}\n",
            list(rule.inhibits.iter().map(|r| toml_string(r)).collect())
        ));
    }
    if !rule.labels.is_empty() {
        let pairs: Vec<String> = rule
            .labels
            .iter()
            .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
            .collect();
        out.push_str(&format!("labels = {{ {} }}\n", pairs.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;
    use crate::time::DAY;

    const SHIPPED: &str = include_str!("../../bpm.toml");

    fn config() -> Config {
        parse_toml(SHIPPED, "bpm.toml").unwrap()
    }

    fn request(rule: &str) -> SimulateRequest {
        SimulateRequest {
            rule: rule.into(),
            ..SimulateRequest::default()
        }
    }

    /// `bpm.toml` with `rule`'s block replaced by `block`.
    fn with_block(rule: &str, block: &str) -> String {
        let start = SHIPPED
            .find(&format!("[[alert]]\nname = \"{rule}\""))
            .unwrap();
        let end = SHIPPED[start + 9..]
            .find("\n[[")
            .map_or(SHIPPED.len(), |i| start + 9 + i + 1);
        format!("{}{}\n{}", &SHIPPED[..start], &SHIPPED[end..], block)
    }

    #[test]
    fn an_edited_rule_takes_the_new_fields_within_the_configured_ranges() {
        let cfg = config();
        let req = SimulateRequest {
            delta: Some(0.5),
            z: Some(3.0),
            for_evaluations: Some(3),
            windows: Some(vec!["1h".into(), "15m".into(), "1h".into()]),
            ..request("logins_drop")
        };
        let rule = req.edited_rule(&cfg).unwrap();
        assert_eq!(
            (rule.delta, rule.z_alpha, rule.for_evaluations),
            (0.5, 3.0, 3)
        );
        assert_eq!(rule.windows, vec![900, 3600]);
    }

    #[test]
    fn requests_outside_what_bpm_toml_allows_are_refused_with_the_reason() {
        let cfg = config();
        let refused = |req: SimulateRequest| req.edited_rule(&cfg).unwrap_err();
        assert_eq!(
            refused(request("nope")),
            SimulateError::UnknownRule("nope".into())
        );
        assert_eq!(refused(request("nope")).status(), 404);
        assert!(matches!(
            refused(request("referral_source_dark")),
            SimulateError::ByRule(_)
        ));
        let e = refused(SimulateRequest {
            delta: Some(1.5),
            ..request("logins_drop")
        });
        assert_eq!(e.to_string(), "`delta` must be between 0.01 and 1");
        assert_eq!(e.status(), 400);
        assert_eq!(
            refused(SimulateRequest {
                windows: Some(vec!["7m".into()]),
                ..request("logins_drop")
            }),
            SimulateError::BadWindow("7m".into())
        );
        assert_eq!(
            refused(SimulateRequest {
                windows: Some(vec![]),
                ..request("logins_drop")
            }),
            SimulateError::NoWindows
        );
        // What check-config refuses is refused here, so the TOML checks.
        assert_eq!(
            refused(SimulateRequest {
                windows: Some(vec!["15m".into(), "4h".into()]),
                ..request("logins_drop")
            }),
            SimulateError::NoResolveWindow
        );
        assert_eq!(
            refused(SimulateRequest {
                windows: Some(vec!["0".into(), "1h".into()]),
                ..request("logins_drop")
            }),
            SimulateError::BadWindow("0".into())
        );
        assert!(matches!(
            refused(SimulateRequest {
                days: Some(44),
                ..request("logins_drop")
            }),
            SimulateError::OutOfRange { field: "days", .. }
        ));
        let unknown: Result<SimulateRequest, _> =
            serde_json::from_str(r#"{"rule":"logins_drop","deltaa":0.5}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn the_pasted_toml_checks_and_reads_back_as_the_simulated_rule() {
        let cfg = config();
        for name in ["site_down", "logins_drop", "login_success_drop"] {
            let req = SimulateRequest {
                delta: Some(0.45),
                windows: Some(vec!["30m".into(), "1h".into(), "4h".into()]),
                ..request(name)
            };
            let rule = req.edited_rule(&cfg).unwrap();
            let text = with_block(name, &rule_toml(&rule));
            let back = parse_toml(&text, "bpm.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
            let read = back.alerts.iter().find(|r| r.name == name).unwrap();
            assert_eq!(read, &rule, "{name}");
        }
    }

    #[test]
    fn a_metric_that_stopped_in_stored_history_gives_one_episode() {
        let cfg = config();
        // Ten days of a steady 60 logins per 5 minutes, then nothing for
        // the last two hours.
        let now = 1_767_571_200 + 10 * DAY;
        let stop = now - 2 * 3600;
        let mut series = BucketCache::new();
        let mut t = now - 10 * DAY;
        while t < stop {
            series.insert(("logins".to_string(), t), 60);
            t += BUCKET_SECS;
        }
        let rule = request("logins_drop").edited_rule(&cfg).unwrap();
        let sim = simulate(&cfg, rule, &series, 14, now);
        assert_eq!(sim.episodes.len(), 1, "{:?}", sim.episodes);
        let e = &sim.episodes[0];
        assert!((stop..stop + 3600).contains(&e.fired), "{e:?}");
        assert_eq!(e.resolved, None);
        assert_eq!(e.lowest_ratio, Some(0.0));
        assert!(sim
            .transitions
            .iter()
            .any(|h| h.to == Some(crate::alert::lifecycle::State::Firing)));
        assert!(sim.toml.starts_with("[[alert]]\nname = \"logins_drop\"\n"));
    }
}
