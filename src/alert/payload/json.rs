//! The `json` format, bpm-edge's own: one object per event, whose message id
//! is the event id, carrying every field of the event: numbers rounded (a
//! non-finite one is `null`), times in RFC 3339 (an unrepresentable one is
//! the epoch), a firing event's explanation, and the `type`
//! (`bpm.alert.firing` or `bpm.alert.resolved`) and `version` (1) that
//! identify the shape.

use super::{explanation, rounded_health, rounded_others, EPOCH};
use crate::alert::event::{AfterDeploy, AlertEvent, EventStatus, HealthChange, OtherBpm, Severity};
use crate::alert::explain::Explanation;
use crate::decimal::round_to_unsigned_zero;
use crate::time::{duration_label, format_time_or};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub(super) struct JsonEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    id: &'a str,
    sequence: u64,
    fingerprint: &'a str,
    incident: &'a str,
    status: EventStatus,
    repeat: bool,
    severity: Severity,
    site: &'a str,
    rule: &'a str,
    scope: Option<&'a crate::alert::event::Scope>,
    labels: &'a BTreeMap<String, String>,
    metric: &'a crate::alert::event::MetricInfo,
    window: String,
    window_seconds: i64,
    observed: f64,
    expected: f64,
    drop_pct: f64,
    z: f64,
    p_value: f64,
    at: String,
    started_at: String,
    resolved_at: Option<String>,
    duration_seconds: i64,
    lowest_ratio: Option<f64>,
    dashboard_url: &'a str,
    other_bpms: Vec<OtherBpm>,
    health: Option<HealthChange>,
    explanation: Option<&'a Explanation>,
    /// The deploy a firing drop began after (within an hour), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    after_deploy: Option<&'a AfterDeploy>,
}

impl<'a> JsonEvent<'a> {
    pub(super) fn new(e: &'a AlertEvent) -> Self {
        JsonEvent {
            kind: match e.status {
                EventStatus::Firing => "bpm.alert.firing",
                EventStatus::Resolved => "bpm.alert.resolved",
            },
            version: 1,
            id: &e.id,
            sequence: e.sequence,
            fingerprint: &e.fingerprint,
            incident: &e.incident,
            status: e.status,
            repeat: e.repeat,
            severity: e.severity,
            site: &e.site,
            rule: &e.rule,
            scope: e.scope.as_ref(),
            labels: &e.labels,
            metric: &e.metric,
            window: duration_label(e.window),
            window_seconds: e.window,
            observed: round_to_unsigned_zero(e.observed, 3),
            expected: round_to_unsigned_zero(e.expected, 3),
            drop_pct: round_to_unsigned_zero(e.drop_pct, 1),
            z: round_to_unsigned_zero(e.z, 2),
            p_value: e.p_value,
            at: format_time_or(e.at, EPOCH),
            started_at: format_time_or(e.started_at, EPOCH),
            resolved_at: e.resolved_at.map(|t| format_time_or(t, EPOCH)),
            duration_seconds: e.duration_s,
            lowest_ratio: e.lowest_ratio.map(|r| round_to_unsigned_zero(r, 4)),
            dashboard_url: &e.dashboard_url,
            other_bpms: rounded_others(&e.other_bpms),
            health: e.health.as_ref().map(rounded_health),
            explanation: explanation(e),
            after_deploy: e.after_deploy.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::alert::event::{AlertEvent, EventStatus};
    use crate::alert::payload::tests::{bodies, event, keys, one};
    use crate::alert::payload::WebhookFormat;

    #[test]
    fn json_has_every_field_and_the_event_id() {
        let events = [
            event("evt_1", EventStatus::Firing),
            event("evt_2", EventStatus::Resolved),
        ];
        let all = bodies(WebhookFormat::Json, &events);
        assert_eq!(all.len(), 2);
        let (id, v) = &all[0];
        assert_eq!(id, "evt_1");
        assert_eq!(
            keys(v),
            [
                "at",
                "dashboard_url",
                "drop_pct",
                "duration_seconds",
                "expected",
                "explanation",
                "fingerprint",
                "health",
                "id",
                "incident",
                "labels",
                "lowest_ratio",
                "metric",
                "observed",
                "other_bpms",
                "p_value",
                "repeat",
                "resolved_at",
                "rule",
                "scope",
                "sequence",
                "severity",
                "site",
                "started_at",
                "status",
                "type",
                "version",
                "window",
                "window_seconds",
                "z"
            ]
        );
        assert_eq!(v["type"], "bpm.alert.firing");
        assert_eq!(v["version"], 1);
        assert_eq!(v["id"], "evt_1");
        assert_eq!(
            v["explanation"]["text"],
            "source google \u{2212}92% (\u{2212}1,840), all other sources normal"
        );
        assert_eq!(v["explanation"]["findings"][0]["kind"], "lost");
        assert_eq!(v["explanation"]["findings"][0]["value"], "google");
        assert_eq!(v["explanation"]["findings"][0]["change"], -1840.0);
        // A resolution explains nothing.
        assert!(all[1].1["explanation"].is_null());
        assert_eq!(v["sequence"], 1);
        assert_eq!(v["fingerprint"], "0123456789abcdef");
        assert_eq!(v["incident"], "inc_1");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["repeat"], false);
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["site"], "demo");
        assert_eq!(v["rule"], "logins-drop");
        assert_eq!(v["labels"]["team"], "growth");
        assert_eq!(
            keys(&v["metric"]),
            ["description", "name", "owner", "runbook", "stage"]
        );
        assert_eq!(v["metric"]["name"], "logins");
        assert_eq!(v["window"], "1h");
        assert_eq!(v["window_seconds"], 3600);
        assert_eq!(v["observed"], 36.0);
        assert_eq!(v["expected"], 100.0);
        assert_eq!(v["drop_pct"], 64.0);
        assert_eq!(v["z"], -6.12);
        assert_eq!(v["p_value"], 4.6e-10);
        assert_eq!(v["at"], "2026-11-24T10:15:00Z");
        assert_eq!(v["started_at"], "2026-11-24T09:10:00Z");
        assert!(v["resolved_at"].is_null());
        assert_eq!(v["duration_seconds"], 3900);
        assert_eq!(v["lowest_ratio"], 0.3612);
        assert_eq!(v["dashboard_url"], events[0].dashboard_url.as_str());
        assert_eq!(v["other_bpms"][0]["ratio"], 0.9812);
        assert!(v["other_bpms"][1]["ratio"].is_null());
        assert_eq!(v["health"]["status"][0]["now_pct"], 88.12);
        assert_eq!(v["health"]["p95_ms_now"], 840.3);

        let (id, v) = &all[1];
        assert_eq!(id, "evt_2");
        assert_eq!(v["type"], "bpm.alert.resolved");
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["resolved_at"], "2026-11-24T10:15:00Z");
    }

    #[test]
    fn json_without_health_and_with_bad_numbers_is_still_json() {
        let e = AlertEvent {
            health: None,
            observed: f64::NAN,
            z: f64::NEG_INFINITY,
            at: i64::MAX,
            ..event("evt_1", EventStatus::Firing)
        };
        let (_, v) = one(WebhookFormat::Json, &[e]);
        assert!(v["health"].is_null());
        assert!(v["observed"].is_null());
        assert!(v["z"].is_null());
        assert_eq!(v["at"], "1970-01-01T00:00:00Z");
    }
}
