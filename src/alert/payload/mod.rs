//! Webhook bodies: the wire formats of alert notifications. This module owns
//! how the [`AlertEvent`]s of one evaluation of one site are rendered for one
//! receiver, one file per format: generic JSON (`json`), Slack Block Kit
//! (`slack`), PagerDuty Events API v2 (`pagerduty`) or Alertmanager webhook
//! v4 (`alertmanager`); and, here, the one-line summaries, duration labels,
//! number formats and message ids those formats share.
//!
//! Pure: no I/O, no clock, so the same destination and events always give
//! the same messages byte for byte, and a retry or re-render carries the same
//! `webhook-id`. Invariants: the per-event formats (json, pagerduty) give one
//! message per event whose id is the event id; the grouped formats (slack,
//! alertmanager) give exactly one message whose id depends only on the set of
//! event ids; no events give no messages. The limits the receiving services
//! document are enforced by each format's file, counted in characters.

mod alertmanager;
mod json;
mod pagerduty;
pub(crate) mod slack;

use crate::alert::event::{AlertEvent, EventStatus, HealthChange, OtherBpm};
use crate::alert::explain::Explanation;
use crate::decimal::round_to_unsigned_zero;
use crate::time::duration_label;
use alertmanager::AmMessage;
use json::JsonEvent;
use pagerduty::{PdResolve, PdTrigger};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use slack::SlackMessage;
use std::fmt;

pub use crate::config::rules::WebhookFormat;
pub use alertmanager::am_fingerprint;

/// One HTTP body to deliver, with its Standard Webhooks `webhook-id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: String,
}

/// Everything a receiver's messages depend on besides the events.
#[derive(Clone, Copy)]
pub struct Destination<'a> {
    /// Receiver name from the config.
    pub receiver: &'a str,
    pub format: WebhookFormat,
    /// PagerDuty routing key (from a secret); `None` for the other formats.
    pub routing_key: Option<&'a str>,
    /// Base URL of the dashboard, e.g. `https://www.example.com/_bpm/`.
    pub external_url: &'a str,
}

/// The routing key is a secret: it never appears in debug output.
impl fmt::Debug for Destination<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("receiver", &self.receiver)
            .field("format", &self.format)
            .field("routing_key", &self.routing_key.map(|_| "<redacted>"))
            .field("external_url", &self.external_url)
            .finish()
    }
}

/// Renders the events of one evaluation of one site for one receiver.
///
/// json and pagerduty: one message per event, id = event id. slack and
/// alertmanager: one grouped message for all events, id = `grp_` + 16 hex
/// digits of a SHA-256 over the sorted, distinct event ids, so it is stable
/// across retries, re-renders and event order. Empty events → empty vec.
pub fn render(dest: &Destination, events: &[AlertEvent]) -> Vec<Message> {
    render_group(dest, events, &[])
}

/// [`render`], given the rest of the receiver's group: alerts still firing
/// that this tick sends no event for ([`crate::alert::alert_book::AlertBook::firing_group`]).
///
/// Alertmanager lists them after `events` (a member with the fingerprint of
/// one of `events` is left out), so every message of a group carries the
/// group's current alerts (those firing, plus those resolved in this
/// notification) and the status Alertmanager would give it: `firing` while
/// any listed alert fires. The other formats carry `events` only. The
/// message id depends on `events` alone, and no events still give no
/// messages: the group by itself is no news.
pub fn render_group(
    dest: &Destination,
    events: &[AlertEvent],
    group: &[AlertEvent],
) -> Vec<Message> {
    if events.is_empty() {
        return Vec::new();
    }
    match dest.format {
        WebhookFormat::Json => events
            .iter()
            .filter_map(|e| message(&e.id, &JsonEvent::new(e)))
            .collect(),
        WebhookFormat::Pagerduty => events
            .iter()
            .filter_map(|e| match e.status {
                EventStatus::Firing => message(&e.id, &PdTrigger::new(dest, e)),
                EventStatus::Resolved => message(&e.id, &PdResolve::new(dest, e)),
            })
            .collect(),
        WebhookFormat::Slack => message(&group_id(events), &SlackMessage::new(events))
            .into_iter()
            .collect(),
        WebhookFormat::Alertmanager => {
            message(&group_id(events), &AmMessage::new(dest, events, group))
                .into_iter()
                .collect()
        }
    }
}

/// One line about one event, used by several formats and by the API, e.g.
/// "logins dropped 64% below its baseline (36 vs 100 expected in the last
/// 1h)" or "logins recovered after 1h 05m (lowest 36% of baseline)".
pub fn summary(e: &AlertEvent) -> String {
    let name = e.subject();
    match e.status {
        EventStatus::Firing => {
            let verb = if e.repeat { "is still" } else { "dropped" };
            let mut s = format!(
                "{name} {verb} {}% below its baseline ({} vs {} expected in the last {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            );
            if let Some(d) = &e.after_deploy {
                s.push_str("; ");
                s.push_str(&d.text());
            }
            s
        }
        EventStatus::Resolved => {
            let mut s = format!("{name} recovered after {}", elapsed_label(e.duration_s));
            if let Some(r) = e.lowest_ratio.filter(|r| r.is_finite()) {
                s.push_str(&format!(" (lowest {}% of baseline)", whole(r * 100.0)));
            }
            s
        }
    }
}

/// The explanation of a firing event, when it names anything.
fn explanation(e: &AlertEvent) -> Option<&Explanation> {
    e.explanation
        .as_ref()
        .filter(|x| e.status == EventStatus::Firing && !x.is_empty() && !x.text.is_empty())
}

/// An elapsed time for people: the largest unit, plus the next one when it
/// is not zero ("45s", "5m 30s", "2h", "1h 05m", "3d", "3d 2h"); smaller
/// units are truncated. Non-positive → "0s".
pub fn elapsed_label(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec:02}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m:02}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

// ---------------------------------------------------------------------------
// Shared helpers

/// What an unrepresentable timestamp renders as
/// ([`crate::time::format_time_or`]'s fallback).
const EPOCH: &str = "1970-01-01T00:00:00Z";
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Serializes a body. The shapes here have string keys only and serde_json
/// writes non-finite floats as `null`, so this does not fail; if it ever
/// did, the message would be dropped rather than the worker panic.
fn message<T: Serialize>(id: &str, body: &T) -> Option<Message> {
    serde_json::to_string(body).ok().map(|body| Message {
        id: id.to_string(),
        body,
    })
}

/// `grp_` + the first 8 bytes, in hex, of SHA-256 over the sorted distinct
/// event ids, each terminated by `\n` (ids hold no newline, so distinct
/// sets never hash the same input).
fn group_id(events: &[AlertEvent]) -> String {
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(20);
    s.push_str("grp_");
    for b in digest.iter().take(8) {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// A count for prose: at most one decimal, no trailing ".0"; "n/a" if not
/// finite.
pub(crate) fn short_num(x: f64) -> String {
    if x.is_finite() {
        round_to_unsigned_zero(x, 1).to_string()
    } else {
        "n/a".to_string()
    }
}

/// A percentage for prose: whole number; "n/a" if not finite.
fn whole(x: f64) -> String {
    if x.is_finite() {
        round_to_unsigned_zero(x, 0).to_string()
    } else {
        "n/a".to_string()
    }
}

/// A number as an annotation string: rounded, "NaN"/"inf" never, "" instead.
fn num_string(x: f64, digits: i32) -> String {
    if x.is_finite() {
        round_to_unsigned_zero(x, digits).to_string()
    } else {
        String::new()
    }
}

/// At most `max` characters; a cut string ends with "…" within the limit.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn rounded_others(others: &[OtherBpm]) -> Vec<OtherBpm> {
    others
        .iter()
        .map(|o| OtherBpm {
            ratio: o.ratio.map(|r| round_to_unsigned_zero(r, 4)),
            ..o.clone()
        })
        .collect()
}

fn rounded_health(h: &HealthChange) -> HealthChange {
    HealthChange {
        status: h
            .status
            .iter()
            .map(|s| crate::alert::event::StatusShare {
                class: s.class.clone(),
                now_pct: round_to_unsigned_zero(s.now_pct, 2),
                before_pct: s.before_pct.map(|p| round_to_unsigned_zero(p, 2)),
            })
            .collect(),
        p95_ms_now: h.p95_ms_now.map(|v| round_to_unsigned_zero(v, 1)),
        p95_ms_before: h.p95_ms_before.map(|v| round_to_unsigned_zero(v, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::event::{MetricInfo, Severity, StatusShare};
    use crate::alert::explain::Finding;
    use serde_json::Value;
    use std::collections::BTreeMap;

    // The fixtures (`pub(super)`) serve every format's tests.

    /// 2026-11-24T10:15:00Z
    const AT: i64 = 1_795_515_300;
    pub(super) const EXTERNAL: &str = "https://www.example.com/_bpm/";

    pub(super) fn event(id: &str, status: EventStatus) -> AlertEvent {
        let resolved = status == EventStatus::Resolved;
        AlertEvent {
            id: id.to_string(),
            fingerprint: "0123456789abcdef".to_string(),
            incident: "inc_1".to_string(),
            sequence: if resolved { 2 } else { 1 },
            status,
            repeat: false,
            scope: None,
            severity: Severity::Critical,
            site: "demo".to_string(),
            rule: "logins-drop".to_string(),
            labels: BTreeMap::from([
                ("team".to_string(), "growth".to_string()),
                ("tier".to_string(), "1".to_string()),
            ]),
            metric: MetricInfo {
                name: "logins".to_string(),
                stage: "login".to_string(),
                description: "Successful logins".to_string(),
                owner: "growth@example.com".to_string(),
                runbook: "https://wiki.example.com/runbooks/logins".to_string(),
            },
            at: AT,
            window: 3600,
            observed: if resolved { 98.0 } else { 36.0 },
            expected: 100.0,
            drop_pct: if resolved { 2.0 } else { 64.0 },
            z: -6.123_456,
            p_value: 4.6e-10,
            started_at: AT - 3900,
            resolved_at: resolved.then_some(AT),
            duration_s: 3900,
            lowest_ratio: Some(0.361_234_5),
            dashboard_url: "https://www.example.com/_bpm/#/metric/logins".to_string(),
            other_bpms: vec![
                OtherBpm {
                    metric: "signups".to_string(),
                    rule: "signups-drop".to_string(),
                    state: "ok".to_string(),
                    ratio: Some(0.981_234),
                },
                OtherBpm {
                    metric: "checkout".to_string(),
                    rule: "checkout-drop".to_string(),
                    state: "learning".to_string(),
                    ratio: None,
                },
            ],
            health: Some(HealthChange {
                status: vec![
                    StatusShare {
                        class: "2xx".to_string(),
                        now_pct: 88.123,
                        before_pct: Some(99.0),
                    },
                    StatusShare {
                        class: "5xx".to_string(),
                        now_pct: 11.877,
                        before_pct: Some(1.0),
                    },
                ],
                p95_ms_now: Some(840.25),
                p95_ms_before: Some(210.0),
            }),
            explanation: Some(Explanation {
                text: "source google \u{2212}92% (\u{2212}1,840), all other sources normal"
                    .to_string(),
                findings: vec![Finding::Lost {
                    dimension: "source".to_string(),
                    value: "google".to_string(),
                    observed: 160.0,
                    expected: 2_000.0,
                    change: -1_840.0,
                    change_pct: -92.0,
                }],
            }),
            after_deploy: None,
        }
    }

    pub(super) fn dest(format: WebhookFormat) -> Destination<'static> {
        Destination {
            receiver: "oncall",
            format,
            routing_key: (format == WebhookFormat::Pagerduty).then_some("R0UTINGKEY"),
            external_url: EXTERNAL,
        }
    }

    pub(super) fn bodies(format: WebhookFormat, events: &[AlertEvent]) -> Vec<(String, Value)> {
        render(&dest(format), events)
            .into_iter()
            .map(|m| {
                let v = serde_json::from_str::<Value>(&m.body).unwrap();
                (m.id, v)
            })
            .collect()
    }

    pub(super) fn one(format: WebhookFormat, events: &[AlertEvent]) -> (String, Value) {
        let mut all = bodies(format, events);
        assert_eq!(all.len(), 1, "{format:?} gives one message");
        all.remove(0)
    }

    pub(super) fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn a_drop_that_began_after_a_deploy_names_it_in_every_format() {
        use crate::alert::annotation::{Annotation, AnnotationKind};
        use crate::alert::event::AfterDeploy;
        let mut firing = event("evt_1", EventStatus::Firing);
        // The drop began when its 15-minute window did: 4 minutes after.
        let deploy = Annotation {
            id: "deploy-2f9c1e0".into(),
            kind: AnnotationKind::Deploy,
            at: firing.started_at - firing.window - 4 * 60,
            text: "Release 42".into(),
            link: Some("https://ci.example/runs/7".into()),
            version: Some("2f9c1e0".into()),
        };
        let note = Annotation {
            id: "n".into(),
            kind: AnnotationKind::Note,
            at: firing.started_at - firing.window - 60,
            ..deploy.clone()
        };
        firing.after_deploy = AfterDeploy::find(&[deploy.clone(), note], &firing);
        let text = "began 4 min after deploy 2f9c1e0";
        assert_eq!(
            firing
                .after_deploy
                .as_ref()
                .map(AfterDeploy::text)
                .as_deref(),
            Some(text)
        );
        let (_, slack) = one(WebhookFormat::Slack, std::slice::from_ref(&firing));
        assert!(
            slack
                .to_string()
                .contains(&format!("After a deploy: {text}")),
            "{slack}"
        );
        let (_, json) = one(WebhookFormat::Json, std::slice::from_ref(&firing));
        assert_eq!(json["after_deploy"]["label"], "deploy 2f9c1e0");
        assert_eq!(json["after_deploy"]["minutes"], 4);
        let (_, pd) = one(WebhookFormat::Pagerduty, std::slice::from_ref(&firing));
        assert!(
            pd["payload"]["summary"].as_str().unwrap().contains(text),
            "{pd}"
        );
        assert_eq!(
            pd["payload"]["custom_details"]["after_deploy"]["id"],
            "deploy-2f9c1e0"
        );
        let (_, am) = one(WebhookFormat::Alertmanager, std::slice::from_ref(&firing));
        assert_eq!(am["alerts"][0]["annotations"]["after_deploy"], text);
        assert!(am["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .ends_with(text));
        // A resolution, or a deploy more than an hour before, names nothing.
        let resolved = event("evt_2", EventStatus::Resolved);
        assert_eq!(
            AfterDeploy::find(std::slice::from_ref(&deploy), &resolved),
            None
        );
        let long_before = Annotation {
            at: firing.started_at - firing.window - 61 * 60,
            ..deploy
        };
        assert_eq!(AfterDeploy::find(&[long_before], &firing), None);
        let (_, plain) = one(WebhookFormat::Json, &[event("evt_3", EventStatus::Firing)]);
        assert!(plain.get("after_deploy").is_none());
    }

    #[test]
    fn elapsed_label_cases() {
        assert_eq!(elapsed_label(45), "45s");
        assert_eq!(elapsed_label(0), "0s");
        assert_eq!(elapsed_label(-5), "0s");
        assert_eq!(elapsed_label(300), "5m");
        assert_eq!(elapsed_label(330), "5m 30s");
        assert_eq!(elapsed_label(3900), "1h 05m");
        assert_eq!(elapsed_label(7200), "2h");
        assert_eq!(elapsed_label(7259), "2h");
        assert_eq!(elapsed_label(3 * 86_400 + 2 * 3600 + 59), "3d 2h");
        assert_eq!(elapsed_label(3 * 86_400 + 600), "3d");
        // No overflow at the extreme.
        assert_eq!(
            elapsed_label(i64::MAX),
            format!("{}d {}h", i64::MAX / 86_400, i64::MAX % 86_400 / 3600)
        );
    }

    #[test]
    fn format_names_round_trip() {
        for f in WebhookFormat::ALL {
            assert_eq!(WebhookFormat::parse(f.as_str()), Some(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
        assert_eq!(WebhookFormat::parse("Slack"), None);
        assert_eq!(WebhookFormat::parse("webhook"), None);
    }

    #[test]
    fn summaries_read_as_one_line() {
        let firing = event("evt_1", EventStatus::Firing);
        assert_eq!(
            summary(&firing),
            "logins dropped 64% below its baseline (36 vs 100 expected in the last 1h)"
        );
        let repeat = AlertEvent {
            repeat: true,
            ..firing.clone()
        };
        assert!(summary(&repeat).starts_with("logins is still 64% below"));
        let resolved = event("evt_2", EventStatus::Resolved);
        assert_eq!(
            summary(&resolved),
            "logins recovered after 1h 05m (lowest 36% of baseline)"
        );
        let no_lowest = AlertEvent {
            lowest_ratio: None,
            ..resolved
        };
        assert_eq!(summary(&no_lowest), "logins recovered after 1h 05m");
        let odd = AlertEvent {
            observed: f64::NAN,
            expected: 12.345,
            ..firing
        };
        assert!(summary(&odd).contains("(n/a vs 12.3 expected"));
        assert!(!summary(&odd).contains('\n'));
    }

    #[test]
    fn every_format_says_where_a_firing_drop_happened() {
        let firing = [event("evt_1", EventStatus::Firing)];
        let text = "source google \u{2212}92% (\u{2212}1,840), all other sources normal";
        for f in WebhookFormat::ALL {
            let rendered: Vec<String> = render(&dest(f), &firing)
                .into_iter()
                .map(|m| m.body)
                .collect();
            assert!(
                rendered.iter().any(|b| {
                    let v: Value = serde_json::from_str(b).unwrap_or(Value::Null);
                    // The text as JSON encodes it, in any string of the body.
                    contains_string(&v, text)
                }),
                "{f:?}: {rendered:?}"
            );
        }
        let resolved = [event("evt_2", EventStatus::Resolved)];
        for f in WebhookFormat::ALL {
            for m in render(&dest(f), &resolved) {
                assert!(!m.body.contains("google"), "{f:?}: {}", m.body);
            }
        }
    }

    fn contains_string(v: &Value, needle: &str) -> bool {
        match v {
            Value::String(s) => s.contains(needle),
            Value::Array(a) => a.iter().any(|x| contains_string(x, needle)),
            Value::Object(o) => o.values().any(|x| contains_string(x, needle)),
            _ => false,
        }
    }

    #[test]
    fn empty_events_render_nothing() {
        for f in WebhookFormat::ALL {
            assert!(render(&dest(f), &[]).is_empty(), "{f:?}");
        }
    }

    #[test]
    fn group_ids_are_stable_and_distinct() {
        let a = event("evt_1", EventStatus::Firing);
        let b = event("evt_3", EventStatus::Firing);
        for f in [WebhookFormat::Slack, WebhookFormat::Alertmanager] {
            let ab = render(&dest(f), &[a.clone(), b.clone()]);
            let again = render(&dest(f), &[a.clone(), b.clone()]);
            let ba = render(&dest(f), &[b.clone(), a.clone()]);
            let only_a = render(&dest(f), std::slice::from_ref(&a));
            assert_eq!(ab, again);
            assert_eq!(ab[0].id, ba[0].id);
            assert_ne!(ab[0].id, only_a[0].id);
            let id = &ab[0].id;
            assert_eq!(id.len(), 20);
            assert!(id[4..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
        // Concatenation is unambiguous: ["ab","c"] is not ["a","bc"].
        let x = [
            event("ab", EventStatus::Firing),
            event("c", EventStatus::Firing),
        ];
        let y = [
            event("a", EventStatus::Firing),
            event("bc", EventStatus::Firing),
        ];
        assert_ne!(group_id(&x), group_id(&y));
        // The same events give the same id whichever grouped format.
        assert_eq!(
            render(&dest(WebhookFormat::Slack), &x)[0].id,
            render(&dest(WebhookFormat::Alertmanager), &x)[0].id
        );
    }

    #[test]
    fn destination_debug_hides_the_routing_key() {
        let shown = format!("{:?}", dest(WebhookFormat::Pagerduty));
        assert!(!shown.contains("R0UTINGKEY"));
        assert!(shown.contains("redacted") && shown.contains("oncall"));
    }
}
