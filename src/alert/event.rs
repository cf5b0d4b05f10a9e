//! What one alert notification says, independent of the wire format.
//!
//! An [`AlertEvent`] is built by the alert engine when an alert fires,
//! repeats or resolves; `payload` renders it as generic JSON, Slack,
//! PagerDuty or Alertmanager. Invariants: `id` is unique per event and stable
//! across delivery retries (it becomes the `webhook-id`); `fingerprint` is
//! stable per (site, rule, metric) for the life of the rule; `sequence`
//! increases by one per event of the same fingerprint, so consumers can
//! order firing and resolved. An alert of a `by` rule is about one value of
//! a dimension (`scope`), and its fingerprint is per value.

use crate::alert::annotation::{deploy_before, Annotation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::config::rules::Severity;

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Firing,
    Resolved,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Firing => "firing",
            EventStatus::Resolved => "resolved",
        }
    }
}

/// The metric an alert is about, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricInfo {
    pub name: String,
    pub stage: String,
    pub description: String,
    pub owner: String,
    pub runbook: String,
}

/// Another BPM of the same site at the time of the event: did it move too?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherBpm {
    pub metric: String,
    pub rule: String,
    /// The rule's state (`ok`, `firing`, …).
    pub state: String,
    /// Observed / expected over the last hour; `None` while learning.
    pub ratio: Option<f64>,
}

/// Share of one status class among the metric's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusShare {
    /// `2xx`, `3xx`, `4xx`, `5xx`.
    pub class: String,
    /// Percent of the metric's requests in the alert window.
    pub now_pct: f64,
    /// Percent in the same window one week earlier.
    pub before_pct: Option<f64>,
}

/// Did the page break, or did traffic fall? Status mix and p95 latency of
/// the metric's requests in the alert window against a week earlier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HealthChange {
    pub status: Vec<StatusShare>,
    pub p95_ms_now: Option<f64>,
    pub p95_ms_before: Option<f64>,
}

/// The part of a metric a `by` rule's alert is about: one value of one
/// dimension (`source` = `google`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub dimension: String,
    pub value: String,
}

/// One notification about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Unique per event, stable across retries: `evt_…`.
    pub id: String,
    /// Stable per (site, rule, metric): 16 hex digits.
    pub fingerprint: String,
    /// Identifies the episode (one firing → resolved span): `inc_…`.
    pub incident: String,
    /// Per fingerprint, +1 per event.
    pub sequence: u64,
    pub status: EventStatus,
    /// A repeat notification of an alert still firing.
    pub repeat: bool,
    pub severity: Severity,
    pub site: String,
    pub rule: String,
    /// The dimension value a `by` rule's alert is about; `None` for an
    /// alert on the metric's total.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The rule's labels; a `by` rule's also name its value
    /// (`source = "google"`).
    pub labels: BTreeMap<String, String>,
    pub metric: MetricInfo,
    /// Evaluation instant (end of the last complete bucket judged), Unix s.
    pub at: i64,
    /// Length of the headline window in seconds.
    pub window: i64,
    pub observed: f64,
    pub expected: f64,
    /// `(1 − observed/expected) × 100`.
    pub drop_pct: f64,
    pub z: f64,
    /// One-sided lower-tail p-value of `z` (normal approximation).
    pub p_value: f64,
    /// When the episode started firing, Unix s.
    pub started_at: i64,
    pub resolved_at: Option<i64>,
    /// `resolved_at − started_at`, or `at − started_at` while firing: all
    /// three are evaluation instants, so it is a multiple of the bucket
    /// length (0 in an episode's first firing) and never counts the group
    /// wait or a silence that delayed the sending.
    pub duration_s: i64,
    /// Lowest observed/expected ratio of the episode.
    pub lowest_ratio: Option<f64>,
    /// Link to the metric in the dashboard.
    pub dashboard_url: String,
    pub other_bpms: Vec<OtherBpm>,
    pub health: Option<HealthChange>,
    /// Where a firing drop happened (see `explain`); `None` when nothing
    /// stands out or for a resolution.
    #[serde(default)]
    pub explanation: Option<crate::alert::explain::Explanation>,
    /// The deploy the drop followed, when it began within an hour after one
    /// (see [`AfterDeploy::find`]); `None` otherwise and for a resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_deploy: Option<AfterDeploy>,
}

/// The deploy annotation a firing drop began after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfterDeploy {
    /// The annotation's id.
    pub id: String,
    /// `deploy 2f9c1e0`: its version, else its text.
    pub label: String,
    /// When it was deployed (Unix s).
    pub at: i64,
    /// Whole minutes from the deploy to the drop's beginning.
    pub minutes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl AfterDeploy {
    /// The deploy a firing `event`'s drop followed: the latest deploy at
    /// most [`crate::alert::annotation::DEPLOY_WINDOW_SECS`] before the drop
    /// began ([`AlertEvent::drop_began`]).
    pub fn find(annotations: &[Annotation], event: &AlertEvent) -> Option<Self> {
        if event.status != EventStatus::Firing {
            return None;
        }
        let began = event.drop_began();
        let deploy = deploy_before(annotations, began)?;
        Some(AfterDeploy {
            id: deploy.id.clone(),
            label: deploy.label(),
            at: deploy.at,
            minutes: (began - deploy.at) / 60,
            link: deploy.link.clone(),
        })
    }

    /// `began 4 min after deploy 2f9c1e0`
    pub fn text(&self) -> String {
        format!("began {} min after {}", self.minutes, self.label)
    }
}

impl AlertEvent {
    /// When the drop began, as far as the detector can tell: the start of
    /// the headline window of the episode's first firing evaluation.
    pub fn drop_began(&self) -> i64 {
        self.started_at - self.window
    }

    /// What the alert is about, as people read it: the metric's name, and
    /// for a `by` rule's alert its value, e.g. `marketing_views (source
    /// google)`.
    pub fn subject(&self) -> String {
        match &self.scope {
            Some(s) => format!("{} ({} {})", self.metric.name, s.dimension, s.value),
            None => self.metric.name.clone(),
        }
    }
}
