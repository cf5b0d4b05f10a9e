//! The `alertmanager` format, Alertmanager's webhook v4: one message per
//! group (grouped by site) that lists the receiver's whole group
//! ([`super::render_group`]) with Alertmanager's own fingerprints
//! ([`am_fingerprint`]), so a receiver built for Alertmanager groups, dedups
//! and resolves as it would. An empty label or annotation value is never
//! sent (Alertmanager reads it as absent), and a firing alert ends at
//! Alertmanager's zero time.

use super::{explanation, num_string, summary, Destination, EPOCH};
use crate::alert::event::{AlertEvent, EventStatus};
use crate::time::{duration_label, format_time_or};
use serde::Serialize;
use std::collections::BTreeMap;

/// Alertmanager's "zero time": the `endsAt` of an alert still firing.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AmMessage<'a> {
    version: &'static str,
    group_key: String,
    truncated_alerts: u32,
    status: &'static str,
    receiver: &'a str,
    group_labels: BTreeMap<&'static str, &'a str>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    alerts: Vec<AmAlert<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert<'a> {
    status: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    /// Alertmanager's own: [`am_fingerprint`] of `labels`.
    fingerprint: String,
}

/// Alertmanager's fingerprint of a label set, as `model.LabelSet.Fingerprint()`
/// in prometheus/common (`labelSetToFingerprint` in `model/signature.go`)
/// computes it and Alertmanager's webhook writes it
/// (`Fingerprint.String()`: `%016x`): FNV-1a 64 over the label names in byte
/// order, each name and then its value followed by the separator byte 0xff
/// (which no UTF-8 text contains). A `BTreeMap<String, _>` iterates in byte
/// order, which is Go's `sort.Strings` order. The empty set gives the FNV
/// offset basis, `cbf29ce484222325`.
pub fn am_fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const SEPARATOR: u8 = 0xff;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[SEPARATOR]);
        add(value.as_bytes());
        add(&[SEPARATOR]);
    }
    format!("{h:016x}")
}

/// Inserts `v` under `k` unless it is empty: Alertmanager treats an empty
/// label value as an absent label, so none is ever sent.
fn put(map: &mut BTreeMap<String, String>, k: &str, v: String) {
    if v.is_empty() {
        map.remove(k);
    } else {
        map.insert(k.to_string(), v);
    }
}

/// The entries present with equal values in every map.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A label value quoted as Alertmanager writes group keys.
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

impl<'a> AmAlert<'a> {
    /// Rule labels first; the identifying labels (alertname, site, metric,
    /// severity, stage) override any rule label of the same name.
    fn new(e: &'a AlertEvent) -> Self {
        let mut labels = BTreeMap::new();
        for (k, v) in &e.labels {
            put(&mut labels, k, v.clone());
        }
        put(&mut labels, "alertname", e.rule.clone());
        put(&mut labels, "site", e.site.clone());
        put(&mut labels, "metric", e.metric.name.clone());
        put(&mut labels, "severity", e.severity.as_str().to_string());
        put(&mut labels, "stage", e.metric.stage.clone());

        let mut annotations = BTreeMap::new();
        put(&mut annotations, "summary", summary(e));
        put(
            &mut annotations,
            "description",
            e.metric.description.clone(),
        );
        put(&mut annotations, "runbook_url", e.metric.runbook.clone());
        put(&mut annotations, "dashboard_url", e.dashboard_url.clone());
        put(&mut annotations, "observed", num_string(e.observed, 3));
        put(&mut annotations, "expected", num_string(e.expected, 3));
        put(&mut annotations, "drop_pct", num_string(e.drop_pct, 1));
        put(&mut annotations, "window", duration_label(e.window));
        put(
            &mut annotations,
            "explanation",
            explanation(e).map(|x| x.text.clone()).unwrap_or_default(),
        );
        put(
            &mut annotations,
            "after_deploy",
            e.after_deploy
                .as_ref()
                .filter(|_| e.status == EventStatus::Firing)
                .map(|d| d.text())
                .unwrap_or_default(),
        );
        // bpm-edge's own key (the json event's `fingerprint`, PagerDuty's
        // `dedup_key`), which Alertmanager's label hash is not.
        put(&mut annotations, "bpm_fingerprint", e.fingerprint.clone());

        let fingerprint = am_fingerprint(&labels);
        AmAlert {
            status: e.status.as_str(),
            labels,
            annotations,
            starts_at: format_time_or(e.started_at, EPOCH),
            ends_at: match (e.status, e.resolved_at) {
                (EventStatus::Resolved, Some(t)) => format_time_or(t, EPOCH),
                (EventStatus::Resolved, None) => format_time_or(e.at, EPOCH),
                (EventStatus::Firing, _) => ZERO_TIME.to_string(),
            },
            generator_url: &e.dashboard_url,
            fingerprint,
        }
    }
}

impl<'a> AmMessage<'a> {
    /// Groups by site: all events of one render share it. Lists `events`,
    /// then the members of `group` that are not among them.
    pub(super) fn new(
        dest: &Destination<'a>,
        events: &'a [AlertEvent],
        group: &'a [AlertEvent],
    ) -> Self {
        let site = events.first().map_or("", |e| e.site.as_str());
        let rest = group
            .iter()
            .filter(|g| !events.iter().any(|e| e.fingerprint == g.fingerprint));
        let all: Vec<&AlertEvent> = events.iter().chain(rest).collect();
        let alerts: Vec<AmAlert> = all.iter().map(|e| AmAlert::new(e)).collect();
        let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|a| &a.labels).collect();
        let annotations: Vec<&BTreeMap<String, String>> =
            alerts.iter().map(|a| &a.annotations).collect();
        let firing = all.iter().any(|e| e.status == EventStatus::Firing);
        AmMessage {
            version: "4",
            group_key: format!("{{}}:{{site={}}}", quote(site)),
            truncated_alerts: 0,
            status: if firing { "firing" } else { "resolved" },
            receiver: dest.receiver,
            group_labels: BTreeMap::from([("site", site)]),
            common_labels: common(&labels),
            common_annotations: common(&annotations),
            external_url: dest.external_url,
            alerts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::payload::tests::{event, keys, one, EXTERNAL};
    use crate::alert::payload::WebhookFormat;
    use serde_json::Value;

    #[test]
    fn alertmanager_firing_shape() {
        let e = event("evt_1", EventStatus::Firing);
        let (id, v) = one(WebhookFormat::Alertmanager, std::slice::from_ref(&e));
        assert!(id.starts_with("grp_"));
        assert_eq!(
            keys(&v),
            [
                "alerts",
                "commonAnnotations",
                "commonLabels",
                "externalURL",
                "groupKey",
                "groupLabels",
                "receiver",
                "status",
                "truncatedAlerts",
                "version"
            ]
        );
        assert_eq!(v["version"], "4");
        assert_eq!(v["groupKey"], "{}:{site=\"demo\"}");
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "oncall");
        assert_eq!(v["groupLabels"], serde_json::json!({"site": "demo"}));
        assert_eq!(v["externalURL"], EXTERNAL);
        let a = &v["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(
            a["labels"],
            serde_json::json!({
                "alertname": "logins-drop", "site": "demo", "metric": "logins",
                "severity": "critical", "stage": "login", "team": "growth", "tier": "1"
            })
        );
        for k in [
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
            "observed",
            "expected",
            "drop_pct",
            "window",
        ] {
            assert!(a["annotations"][k].is_string(), "annotations.{k}");
        }
        assert_eq!(a["annotations"]["observed"], "36");
        assert_eq!(a["annotations"]["window"], "1h");
        assert_eq!(a["startsAt"], "2026-11-24T09:10:00Z");
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(a["generatorURL"], e.dashboard_url.as_str());
        // Alertmanager's label-set hash (see
        // regression_alertmanager_fingerprint_was_not_alertmanagers); bpm-edge's
        // own key is an annotation.
        assert_eq!(a["fingerprint"], "c79cfa1b70225f00");
        assert_eq!(a["annotations"]["bpm_fingerprint"], "0123456789abcdef");
        // One alert: everything is common.
        assert_eq!(v["commonLabels"], a["labels"]);
        assert_eq!(v["commonAnnotations"], a["annotations"]);
    }

    #[test]
    fn regression_alertmanager_fingerprint_was_not_alertmanagers() {
        // The `fingerprint` of an Alertmanager alert was bpm-edge's own
        // SHA-256 key; Alertmanager's is FNV-1a 64 of the label set. The
        // vectors are prometheus/common's own (model/signature_test.go:
        // TestMetricToFingerprint and the fingerprint benchmarks).
        let set = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let hex = |n: u64| format!("{n:016x}");
        assert_eq!(am_fingerprint(&set(&[])), hex(14_695_981_039_346_656_037));
        assert_eq!(
            am_fingerprint(&set(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            hex(5_799_056_148_416_392_346)
        );
        let (one, two, three) = (
            ("first-label", "first-label-value"),
            ("second-label", "second-label-value"),
            ("third-label", "third-label-value"),
        );
        assert_eq!(am_fingerprint(&set(&[one])), hex(5_146_282_821_936_882_169));
        assert_eq!(
            am_fingerprint(&set(&[two, one])),
            hex(3_195_800_080_984_914_717)
        );
        assert_eq!(
            am_fingerprint(&set(&[three, one, two])),
            hex(13_843_036_195_897_128_121)
        );
        // The alert's labels, hashed by the same algorithm in Python:
        // alertname=logins-drop metric=logins severity=critical site=demo
        // stage=login team=growth tier=1.
        let (_, v) = one_message(&[event("evt_1", EventStatus::Firing)]);
        assert_eq!(v["alerts"][0]["fingerprint"], "c79cfa1b70225f00");
        // It follows the labels: another team is another alert.
        let mut other = event("evt_1", EventStatus::Firing);
        other.labels.insert("team".into(), "payments".into());
        let (_, w) = one_message(&[other]);
        assert_ne!(w["alerts"][0]["fingerprint"], v["alerts"][0]["fingerprint"]);
        let labels: BTreeMap<String, String> =
            serde_json::from_value(w["alerts"][0]["labels"].clone()).unwrap();
        assert_eq!(
            w["alerts"][0]["fingerprint"],
            am_fingerprint(&labels).as_str()
        );
    }

    fn one_message(events: &[AlertEvent]) -> (String, Value) {
        one(WebhookFormat::Alertmanager, events)
    }

    #[test]
    fn alertmanager_resolved_ends_at_resolve_time() {
        let (_, v) = one(
            WebhookFormat::Alertmanager,
            &[event("evt_2", EventStatus::Resolved)],
        );
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["status"], "resolved");
        assert_eq!(v["alerts"][0]["endsAt"], "2026-11-24T10:15:00Z");
    }

    #[test]
    fn alertmanager_common_labels_are_the_intersection() {
        let a = event("evt_1", EventStatus::Firing);
        let mut b = event("evt_3", EventStatus::Resolved);
        b.labels.insert("team".to_string(), "payments".to_string());
        b.labels.insert("extra".to_string(), "x".to_string());
        let (_, v) = one(WebhookFormat::Alertmanager, &[a, b]);
        assert_eq!(
            v["status"], "firing",
            "any firing alert makes the group firing"
        );
        assert_eq!(v["alerts"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["commonLabels"],
            serde_json::json!({
                "alertname": "logins-drop", "site": "demo", "metric": "logins",
                "severity": "critical", "stage": "login", "tier": "1"
            })
        );
        let ann = v["commonAnnotations"].as_object().unwrap();
        assert!(ann.contains_key("runbook_url") && ann.contains_key("window"));
        assert!(!ann.contains_key("summary") && !ann.contains_key("observed"));
    }
}
