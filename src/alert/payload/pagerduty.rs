//! The `pagerduty` format, Events API v2: one event per alert event, whose
//! message id is the event id. A firing event triggers and a resolved one
//! resolves, both with the event's fingerprint as `dedup_key`, so PagerDuty
//! keeps one incident per bpm-edge alert. The limits PagerDuty documents hold:
//! the summary has at most 1024 characters and the source is never empty.
//! The routing key (a secret) comes from the [`Destination`].

use super::{
    explanation, rounded_health, rounded_others, summary, truncate_chars, Destination, EPOCH,
};
use crate::alert::event::{AfterDeploy, AlertEvent, HealthChange, OtherBpm};
use crate::alert::explain::Explanation;
use crate::decimal::round_to_unsigned_zero;
use crate::time::{duration_label, format_time_or};
use serde::Serialize;

const PD_SUMMARY_MAX: usize = 1024;

#[derive(Serialize)]
pub(super) struct PdTrigger<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
    payload: PdPayload<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<PdLink<'a>>,
    client: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_url: &'a str,
}

#[derive(Serialize)]
struct PdPayload<'a> {
    summary: String,
    source: &'a str,
    severity: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    component: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    class: &'static str,
    custom_details: PdDetails<'a>,
}

#[derive(Serialize)]
struct PdDetails<'a> {
    observed: f64,
    expected: f64,
    drop_pct: f64,
    window: String,
    z: f64,
    p_value: f64,
    incident: &'a str,
    sequence: u64,
    owner: &'a str,
    other_bpms: Vec<OtherBpm>,
    health: Option<HealthChange>,
    explanation: Option<&'a Explanation>,
    /// The deploy the drop began after (within an hour), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    after_deploy: Option<&'a AfterDeploy>,
}

#[derive(Serialize)]
struct PdLink<'a> {
    href: &'a str,
    text: &'static str,
}

/// A resolve needs nothing but the key and the dedup key.
#[derive(Serialize)]
pub(super) struct PdResolve<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
}

impl<'a> PdTrigger<'a> {
    pub(super) fn new(dest: &Destination<'a>, e: &'a AlertEvent) -> Self {
        let links = [
            (e.dashboard_url.as_str(), "bpm-edge dashboard"),
            (e.metric.runbook.as_str(), "Runbook"),
        ]
        .into_iter()
        .filter(|(href, _)| !href.is_empty())
        .map(|(href, text)| PdLink { href, text })
        .collect();
        PdTrigger {
            routing_key: dest.routing_key.unwrap_or(""),
            event_action: "trigger",
            dedup_key: &e.fingerprint,
            payload: PdPayload {
                summary: truncate_chars(
                    &match explanation(e) {
                        Some(x) => format!("{} on {}: {}", summary(e), e.site, x.text),
                        None => format!("{} on {}", summary(e), e.site),
                    },
                    PD_SUMMARY_MAX,
                ),
                // PagerDuty requires a non-empty source.
                source: if e.site.is_empty() {
                    "bpm-edge"
                } else {
                    &e.site
                },
                severity: e.severity.as_str(),
                timestamp: format_time_or(e.at, EPOCH),
                component: &e.metric.name,
                group: &e.metric.stage,
                class: "bpm_drop",
                custom_details: PdDetails {
                    observed: round_to_unsigned_zero(e.observed, 3),
                    expected: round_to_unsigned_zero(e.expected, 3),
                    drop_pct: round_to_unsigned_zero(e.drop_pct, 1),
                    window: duration_label(e.window),
                    z: round_to_unsigned_zero(e.z, 2),
                    p_value: e.p_value,
                    incident: &e.incident,
                    sequence: e.sequence,
                    owner: &e.metric.owner,
                    other_bpms: rounded_others(&e.other_bpms),
                    health: e.health.as_ref().map(rounded_health),
                    explanation: explanation(e),
                    after_deploy: e.after_deploy.as_ref(),
                },
            },
            links,
            client: "bpm-edge",
            client_url: dest.external_url,
        }
    }
}

impl<'a> PdResolve<'a> {
    pub(super) fn new(dest: &Destination<'a>, e: &'a AlertEvent) -> Self {
        PdResolve {
            routing_key: dest.routing_key.unwrap_or(""),
            event_action: "resolve",
            dedup_key: &e.fingerprint,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::alert::event::{EventStatus, Severity};
    use crate::alert::payload::tests::{dest, event, keys, one, EXTERNAL};
    use crate::alert::payload::{render, Destination, WebhookFormat};
    use serde_json::Value;

    #[test]
    fn pagerduty_trigger_shape() {
        let e = event("evt_1", EventStatus::Firing);
        let (id, v) = one(WebhookFormat::Pagerduty, std::slice::from_ref(&e));
        assert_eq!(id, "evt_1");
        assert_eq!(
            keys(&v),
            [
                "client",
                "client_url",
                "dedup_key",
                "event_action",
                "links",
                "payload",
                "routing_key"
            ]
        );
        assert_eq!(v["routing_key"], "R0UTINGKEY");
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], e.fingerprint.as_str());
        assert_eq!(v["client"], "bpm-edge");
        assert_eq!(v["client_url"], EXTERNAL);
        let p = &v["payload"];
        let summary = p["summary"].as_str().unwrap();
        assert!(!summary.is_empty() && summary.chars().count() <= 1024);
        assert!(summary.contains("logins dropped 64%"));
        assert_eq!(p["source"], "demo");
        assert!(["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap()));
        assert_eq!(p["severity"], "critical");
        assert_eq!(p["timestamp"], "2026-11-24T10:15:00Z");
        assert_eq!(p["component"], "logins");
        assert_eq!(p["group"], "login");
        assert_eq!(p["class"], "bpm_drop");
        let d = &p["custom_details"];
        for k in [
            "observed",
            "expected",
            "drop_pct",
            "window",
            "z",
            "p_value",
            "incident",
            "sequence",
            "owner",
            "other_bpms",
            "health",
        ] {
            assert!(d.get(k).is_some(), "custom_details.{k}");
        }
        assert_eq!(d["window"], "1h");
        assert_eq!(d["owner"], "growth@example.com");
        assert_eq!(v["links"][0]["href"], e.dashboard_url.as_str());
        assert_eq!(v["links"][0]["text"], "bpm-edge dashboard");
        assert_eq!(v["links"][1]["href"], e.metric.runbook.as_str());
        assert_eq!(v["links"][1]["text"], "Runbook");
    }

    #[test]
    fn pagerduty_trims_summary_and_empty_links() {
        let mut e = event("evt_1", EventStatus::Firing);
        e.metric.name = "m".repeat(3000);
        e.metric.runbook.clear();
        e.severity = Severity::Warning;
        let (_, v) = one(WebhookFormat::Pagerduty, &[e.clone()]);
        assert_eq!(
            v["payload"]["summary"].as_str().unwrap().chars().count(),
            1024
        );
        assert_eq!(v["payload"]["severity"], "warning");
        assert_eq!(v["links"].as_array().unwrap().len(), 1);

        e.dashboard_url.clear();
        let (_, v) = one(WebhookFormat::Pagerduty, &[e]);
        assert!(v.get("links").is_none());
    }

    #[test]
    fn pagerduty_resolve_has_only_three_keys() {
        let e = event("evt_2", EventStatus::Resolved);
        let (id, v) = one(WebhookFormat::Pagerduty, std::slice::from_ref(&e));
        assert_eq!(id, "evt_2");
        assert_eq!(keys(&v), ["dedup_key", "event_action", "routing_key"]);
        assert_eq!(v["event_action"], "resolve");
        assert_eq!(v["dedup_key"], e.fingerprint.as_str());
        assert_eq!(v["routing_key"], "R0UTINGKEY");

        let no_key = Destination {
            routing_key: None,
            ..dest(WebhookFormat::Pagerduty)
        };
        let m = render(&no_key, &[e]);
        let v: Value = serde_json::from_str(&m[0].body).unwrap();
        assert_eq!(v["routing_key"], "");
    }
}
