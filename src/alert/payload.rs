//! Webhook bodies: the wire formats of alert notifications. This module owns
//! how the [`AlertEvent`]s of one evaluation of one site are rendered for one
//! receiver as generic JSON, Slack Block Kit, PagerDuty Events API v2 or
//! Alertmanager webhook v4, and the one-line summaries and duration labels
//! those formats share.
//!
//! Pure: no I/O, no clock, so the same destination and events always give
//! the same messages byte for byte, and a retry or re-render carries the same
//! `webhook-id`. Invariants: the per-event formats (json, pagerduty) give one
//! message per event whose id is the event id; the grouped formats (slack,
//! alertmanager) give exactly one message whose id depends only on the set of
//! event ids; no events give no messages. An Alertmanager message lists the
//! receiver's whole group ([`render_group`]) with Alertmanager's own
//! fingerprints ([`am_fingerprint`]). The limits the receiving services
//! document (Slack: header 150 characters, text object 3000, 50 blocks;
//! PagerDuty: summary 1024) are enforced here, counted in characters.

use crate::alert::event::{AlertEvent, EventStatus, HealthChange, OtherBpm, Severity};
use crate::alert::explain::Explanation;
use crate::time::{duration_label, format_time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

pub use crate::config::rules::WebhookFormat;

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
        WebhookFormat::Slack => message(&group_id(events), &slack(events))
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
            format!(
                "{name} {verb} {}% below its baseline ({} vs {} expected in the last {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            )
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

/// Alertmanager's "zero time": the `endsAt` of an alert still firing.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// What an unrepresentable timestamp renders as.
const EPOCH: &str = "1970-01-01T00:00:00Z";
const HEX: &[u8; 16] = b"0123456789abcdef";

const SLACK_HEADER_MAX: usize = 150;
const SLACK_TEXT_MAX: usize = 3000;
/// Sections per message: 50 blocks minus header, "more" note and context.
const SLACK_SECTIONS_MAX: usize = 47;
const PD_SUMMARY_MAX: usize = 1024;

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

/// Unix seconds → RFC 3339 UTC; unrepresentable → the epoch.
fn rfc3339(t: i64) -> String {
    Some(format_time(t))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| EPOCH.to_string())
}

/// Unix seconds → "2026-11-24 10:15 UTC" for people.
fn human_time(t: i64) -> String {
    match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => "1970-01-01 00:00 UTC".to_string(),
    }
}

/// `x` rounded to `digits` decimals; non-finite values pass through (they
/// serialize as `null`) and −0 becomes 0.
fn round(x: f64, digits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let p = 10f64.powi(digits);
    let r = (x * p).round() / p;
    if r.is_finite() {
        r + 0.0
    } else {
        x
    }
}

/// A count for prose: at most one decimal, no trailing ".0"; "n/a" if not
/// finite.
fn short_num(x: f64) -> String {
    if x.is_finite() {
        round(x, 1).to_string()
    } else {
        "n/a".to_string()
    }
}

/// A percentage for prose: whole number; "n/a" if not finite.
fn whole(x: f64) -> String {
    if x.is_finite() {
        round(x, 0).to_string()
    } else {
        "n/a".to_string()
    }
}

/// A number as an annotation string: rounded, "NaN"/"inf" never, "" instead.
fn num_string(x: f64, digits: i32) -> String {
    if x.is_finite() {
        round(x, digits).to_string()
    } else {
        String::new()
    }
}

/// At most `max` characters; a cut string ends with "…" within the limit.
fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// [`truncate_chars`] for Slack mrkdwn that is already escaped
/// ([`slack_escape`], [`slack_link`]): the cut never falls inside an entity
/// (`&amp;`) or a link (`<url|label>`). In such text a bare `&` only starts
/// an entity and a bare `<` only starts a link, so a kept prefix that ends
/// after an `&` with no `;` behind it, or after a `<` with no `>` behind it,
/// is shortened to end before that character; the result still ends with
/// "…" and has at most `max` characters.
fn truncate_mrkdwn(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    loop {
        let open_entity = out.rfind('&').filter(|&i| !out[i..].contains(';'));
        let open_link = out.rfind('<').filter(|&i| !out[i..].contains('>'));
        match open_entity.into_iter().chain(open_link).min() {
            Some(i) => out.truncate(i),
            None => break,
        }
    }
    out.push('…');
    out
}

fn rounded_others(others: &[OtherBpm]) -> Vec<OtherBpm> {
    others
        .iter()
        .map(|o| OtherBpm {
            ratio: o.ratio.map(|r| round(r, 4)),
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
                now_pct: round(s.now_pct, 2),
                before_pct: s.before_pct.map(|p| round(p, 2)),
            })
            .collect(),
        p95_ms_now: h.p95_ms_now.map(|v| round(v, 1)),
        p95_ms_before: h.p95_ms_before.map(|v| round(v, 1)),
    }
}

// ---------------------------------------------------------------------------
// json: our own format, one object per event

#[derive(Serialize)]
struct JsonEvent<'a> {
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
}

impl<'a> JsonEvent<'a> {
    fn new(e: &'a AlertEvent) -> Self {
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
            observed: round(e.observed, 3),
            expected: round(e.expected, 3),
            drop_pct: round(e.drop_pct, 1),
            z: round(e.z, 2),
            p_value: e.p_value,
            at: rfc3339(e.at),
            started_at: rfc3339(e.started_at),
            resolved_at: e.resolved_at.map(rfc3339),
            duration_seconds: e.duration_s,
            lowest_ratio: e.lowest_ratio.map(|r| round(r, 4)),
            dashboard_url: &e.dashboard_url,
            other_bpms: rounded_others(&e.other_bpms),
            health: e.health.as_ref().map(rounded_health),
            explanation: explanation(e),
        }
    }
}

// ---------------------------------------------------------------------------
// pagerduty: Events API v2, one event per alert event

#[derive(Serialize)]
struct PdTrigger<'a> {
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
}

#[derive(Serialize)]
struct PdLink<'a> {
    href: &'a str,
    text: &'static str,
}

/// A resolve needs nothing but the key and the dedup key.
#[derive(Serialize)]
struct PdResolve<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
}

impl<'a> PdTrigger<'a> {
    fn new(dest: &Destination<'a>, e: &'a AlertEvent) -> Self {
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
                timestamp: rfc3339(e.at),
                component: &e.metric.name,
                group: &e.metric.stage,
                class: "bpm_drop",
                custom_details: PdDetails {
                    observed: round(e.observed, 3),
                    expected: round(e.expected, 3),
                    drop_pct: round(e.drop_pct, 1),
                    window: duration_label(e.window),
                    z: round(e.z, 2),
                    p_value: e.p_value,
                    incident: &e.incident,
                    sequence: e.sequence,
                    owner: &e.metric.owner,
                    other_bpms: rounded_others(&e.other_bpms),
                    health: e.health.as_ref().map(rounded_health),
                    explanation: explanation(e),
                },
            },
            links,
            client: "bpm-edge",
            client_url: dest.external_url,
        }
    }
}

impl<'a> PdResolve<'a> {
    fn new(dest: &Destination<'a>, e: &'a AlertEvent) -> Self {
        PdResolve {
            routing_key: dest.routing_key.unwrap_or(""),
            event_action: "resolve",
            dedup_key: &e.fingerprint,
        }
    }
}

// ---------------------------------------------------------------------------
// slack: incoming webhook with Block Kit, one message per group

#[derive(Serialize)]
struct SlackMessage {
    text: String,
    blocks: Vec<SlackBlock>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SlackBlock {
    Header { text: SlackText },
    Section { text: SlackText },
    Context { elements: Vec<SlackText> },
}

#[derive(Serialize)]
struct SlackText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji: Option<bool>,
}

impl SlackText {
    fn plain(text: &str, max: usize) -> Self {
        SlackText {
            kind: "plain_text",
            text: truncate_chars(text, max),
            emoji: Some(true),
        }
    }

    /// `text` must be escaped mrkdwn; it is cut as [`truncate_mrkdwn`] does.
    fn mrkdwn(text: &str) -> Self {
        SlackText {
            kind: "mrkdwn",
            text: truncate_mrkdwn(text, SLACK_TEXT_MAX),
            emoji: None,
        }
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `<url|label>`, or `None` for an empty URL; a `|` in the URL is
/// percent-encoded so it cannot end the link early.
fn slack_link(url: &str, label: &str) -> Option<String> {
    (!url.is_empty()).then(|| format!("<{}|{label}>", slack_escape(url).replace('|', "%7C")))
}

fn status_emoji(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Firing => ":rotating_light:",
        EventStatus::Resolved => ":white_check_mark:",
    }
}

/// The fallback line of one event (unescaped), e.g. ":rotating_light:
/// [FIRING] logins dropped 64% (observed 36 vs expected 100 in 1h) on demo".
fn slack_line(e: &AlertEvent) -> String {
    let name = e.subject();
    let what = match e.status {
        EventStatus::Firing => {
            let verb = if e.repeat { "still down" } else { "dropped" };
            format!(
                "[FIRING] {name} {verb} {}% (observed {} vs expected {} in {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            )
        }
        EventStatus::Resolved => {
            let mut s = format!(
                "[RESOLVED] {name} recovered after {}",
                elapsed_label(e.duration_s)
            );
            if let Some(r) = e.lowest_ratio.filter(|r| r.is_finite()) {
                s.push_str(&format!(" (lowest {}% of baseline)", whole(r * 100.0)));
            }
            s
        }
    };
    format!("{} {what} on {}", status_emoji(e.status), e.site)
}

/// The header of a group: one event names its metric; several are counted
/// per status, Alertmanager style ("[FIRING:2] demo").
fn slack_header(events: &[AlertEvent]) -> String {
    let site = events.first().map_or("", |e| e.site.as_str());
    if let [e] = events {
        let tag = match e.status {
            EventStatus::Firing => "FIRING",
            EventStatus::Resolved => "RESOLVED",
        };
        return format!(
            "{} [{tag}] {} on {site}",
            status_emoji(e.status),
            e.subject()
        );
    }
    let firing = events
        .iter()
        .filter(|e| e.status == EventStatus::Firing)
        .count();
    let resolved = events.len() - firing;
    let tag = match (firing, resolved) {
        (f, 0) => format!("[FIRING:{f}]"),
        (0, r) => format!("[RESOLVED:{r}]"),
        (f, r) => format!("[FIRING:{f}, RESOLVED:{r}]"),
    };
    let emoji = status_emoji(if firing > 0 {
        EventStatus::Firing
    } else {
        EventStatus::Resolved
    });
    format!("{emoji} {tag} {site}")
}

/// The status mix and latency change, if anything was measured.
fn health_line(h: &HealthChange) -> Option<String> {
    let mut parts: Vec<String> = h
        .status
        .iter()
        .filter(|s| s.now_pct.is_finite())
        .map(|s| match s.before_pct.filter(|p| p.is_finite()) {
            Some(b) => format!(
                "{} {}% (was {}%)",
                s.class,
                short_num(s.now_pct),
                short_num(b)
            ),
            None => format!("{} {}%", s.class, short_num(s.now_pct)),
        })
        .collect();
    if let Some(now) = h.p95_ms_now.filter(|v| v.is_finite()) {
        parts.push(match h.p95_ms_before.filter(|v| v.is_finite()) {
            Some(b) => format!("p95 {} ms (was {} ms)", whole(now), whole(b)),
            None => format!("p95 {} ms", whole(now)),
        });
    }
    (!parts.is_empty()).then(|| slack_escape(&parts.join(", ")))
}

/// The mrkdwn section of one event: metric, observed vs expected, drop,
/// window, since when, health, runbook and dashboard links.
fn slack_section(e: &AlertEvent) -> String {
    let m = &e.metric;
    let mut title = format!("{} *{}*", status_emoji(e.status), slack_escape(&m.name));
    if let Some(sc) = &e.scope {
        title.push_str(&format!(
            " {} *{}*",
            slack_escape(&sc.dimension),
            slack_escape(&sc.value)
        ));
    }
    if !m.stage.is_empty() {
        title.push_str(&format!(" ({})", slack_escape(&m.stage)));
    }
    title.push_str(&format!(
        " · {} · rule `{}`",
        e.severity.as_str(),
        slack_escape(&e.rule)
    ));
    let mut lines = vec![title];
    match e.status {
        EventStatus::Firing => {
            lines.push(format!(
                "Dropped *{}%*: observed *{}* vs expected *{}* in the last {} (z {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window),
                num_string(e.z, 2)
            ));
            // An episode's first firing has `duration_s` 0 (it reports the
            // evaluation that started it): "(0s)" would say nothing.
            let mut since = format!("Firing since {}", human_time(e.started_at));
            if e.duration_s > 0 {
                since.push_str(&format!(" ({})", elapsed_label(e.duration_s)));
            }
            lines.push(since);
        }
        EventStatus::Resolved => {
            let mut s = format!("Recovered after {}", elapsed_label(e.duration_s));
            if let Some(r) = e.lowest_ratio.filter(|r| r.is_finite()) {
                s.push_str(&format!("; lowest {}% of baseline", whole(r * 100.0)));
            }
            lines.push(s);
            lines.push(format!(
                "Now observed {} vs expected {} in the last {}",
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            ));
            lines.push(format!(
                "Fired {}, resolved {}",
                human_time(e.started_at),
                human_time(e.resolved_at.unwrap_or(e.at))
            ));
        }
    }
    if let Some(x) = explanation(e) {
        lines.push(format!("Where: {}", slack_escape(&x.text)));
    }
    if let Some(h) = e.health.as_ref().and_then(health_line) {
        lines.push(h);
    }
    let links: Vec<String> = [
        slack_link(&m.runbook, "Runbook"),
        slack_link(&e.dashboard_url, "Dashboard"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !links.is_empty() {
        lines.push(links.join(" · "));
    }
    lines.join("\n")
}

/// Other BPMs of the site, once each, leaving out those the message is
/// about: "signups 98% · checkout 41% (firing)".
fn slack_others(events: &[AlertEvent]) -> Option<String> {
    let mut seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.metric.name.as_str(), e.rule.as_str()))
        .collect();
    let mut parts = Vec::new();
    for o in events.iter().flat_map(|e| &e.other_bpms) {
        let key = (o.metric.as_str(), o.rule.as_str());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let ratio = match o.ratio.filter(|r| r.is_finite()) {
            Some(r) => format!("{}%", whole(r * 100.0)),
            None => "–".to_string(),
        };
        let mut s = format!("{} {ratio}", slack_escape(&o.metric));
        if o.state != "ok" {
            s.push_str(&format!(" ({})", slack_escape(&o.state)));
        }
        parts.push(s);
    }
    (!parts.is_empty()).then(|| format!("Other BPMs: {}", parts.join(" · ")))
}

fn slack(events: &[AlertEvent]) -> SlackMessage {
    let header = slack_header(events);
    let lines: Vec<String> = events.iter().map(slack_line).collect();
    let text = match lines.as_slice() {
        [one] => one.clone(),
        _ => format!("{header}\n{}", lines.join("\n")),
    };
    let mut blocks = vec![SlackBlock::Header {
        text: SlackText::plain(&header, SLACK_HEADER_MAX),
    }];
    let shown = if events.len() > SLACK_SECTIONS_MAX {
        SLACK_SECTIONS_MAX - 1
    } else {
        events.len()
    };
    blocks.extend(events.iter().take(shown).map(|e| SlackBlock::Section {
        text: SlackText::mrkdwn(&slack_section(e)),
    }));
    if shown < events.len() {
        blocks.push(SlackBlock::Context {
            elements: vec![SlackText::mrkdwn(&format!(
                "…and {} more",
                events.len() - shown
            ))],
        });
    }
    if let Some(others) = slack_others(events) {
        blocks.push(SlackBlock::Context {
            elements: vec![SlackText::mrkdwn(&others)],
        });
    }
    SlackMessage {
        text: truncate_mrkdwn(&slack_escape(&text), SLACK_TEXT_MAX),
        blocks,
    }
}

// ---------------------------------------------------------------------------
// alertmanager: webhook v4, one message per group

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AmMessage<'a> {
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
        // bpm-edge's own key (the json event's `fingerprint`, PagerDuty's
        // `dedup_key`), which Alertmanager's label hash is not.
        put(&mut annotations, "bpm_fingerprint", e.fingerprint.clone());

        let fingerprint = am_fingerprint(&labels);
        AmAlert {
            status: e.status.as_str(),
            labels,
            annotations,
            starts_at: rfc3339(e.started_at),
            ends_at: match (e.status, e.resolved_at) {
                (EventStatus::Resolved, Some(t)) => rfc3339(t),
                (EventStatus::Resolved, None) => rfc3339(e.at),
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
    fn new(dest: &Destination<'a>, events: &'a [AlertEvent], group: &'a [AlertEvent]) -> Self {
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
    use crate::alert::event::{MetricInfo, StatusShare};
    use crate::alert::explain::Finding;
    use serde_json::Value;

    /// 2026-11-24T10:15:00Z
    const AT: i64 = 1_795_515_300;
    const EXTERNAL: &str = "https://www.example.com/_bpm/";

    fn event(id: &str, status: EventStatus) -> AlertEvent {
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
        }
    }

    fn dest(format: WebhookFormat) -> Destination<'static> {
        Destination {
            receiver: "oncall",
            format,
            routing_key: (format == WebhookFormat::Pagerduty).then_some("R0UTINGKEY"),
            external_url: EXTERNAL,
        }
    }

    fn bodies(format: WebhookFormat, events: &[AlertEvent]) -> Vec<(String, Value)> {
        render(&dest(format), events)
            .into_iter()
            .map(|m| {
                let v = serde_json::from_str::<Value>(&m.body).unwrap();
                (m.id, v)
            })
            .collect()
    }

    fn one(format: WebhookFormat, events: &[AlertEvent]) -> (String, Value) {
        let mut all = bodies(format, events);
        assert_eq!(all.len(), 1, "{format:?} gives one message");
        all.remove(0)
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
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

    #[test]
    fn slack_shape() {
        let (id, v) = one(WebhookFormat::Slack, &[event("evt_1", EventStatus::Firing)]);
        assert!(id.starts_with("grp_"));
        assert_eq!(
            v["text"],
            ":rotating_light: [FIRING] logins dropped 64% (observed 36 vs expected 100 in 1h) on demo"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(!header.is_empty() && header.chars().count() <= 150);
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        for part in [
            "*logins*",
            "*64%*",
            "observed *36* vs expected *100*",
            "last 1h",
            "Firing since 2026-11-24 09:10 UTC (1h 05m)",
            "<https://wiki.example.com/runbooks/logins|Runbook>",
            "|Dashboard>",
            "5xx 11.9% (was 1%)",
        ] {
            assert!(section.contains(part), "{part:?} in {section:?}");
        }
        let last = blocks.last().unwrap();
        assert_eq!(last["type"], "context");
        let others = last["elements"][0]["text"].as_str().unwrap();
        assert_eq!(others, "Other BPMs: signups 98% · checkout – (learning)");
    }

    #[test]
    fn slack_groups_resolved_and_limits_lengths() {
        let (_, v) = one(
            WebhookFormat::Slack,
            &[event("evt_2", EventStatus::Resolved)],
        );
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: [RESOLVED] logins recovered after 1h 05m"));

        let mut a = event("evt_1", EventStatus::Firing);
        a.site = "d".repeat(400);
        a.metric.name = "<b>&".to_string();
        let b = AlertEvent {
            id: "evt_3".to_string(),
            ..a.clone()
        };
        let (_, v) = one(WebhookFormat::Slack, &[a, b]);
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with(":rotating_light: [FIRING:2] ddd"));
        assert_eq!(header.chars().count(), 150);
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("&lt;b&gt;&amp;") && !text.contains("<b>"));
        assert!(v["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*&lt;b&gt;&amp;*"));

        let many: Vec<AlertEvent> = (0..60)
            .map(|i| event(&format!("evt_{i}"), EventStatus::Firing))
            .collect();
        let (_, v) = one(WebhookFormat::Slack, &many);
        assert!(v["blocks"].as_array().unwrap().len() <= 50);
        assert!(v["text"].as_str().unwrap().chars().count() <= 3000);
    }

    #[test]
    fn regression_slack_truncation_cut_inside_an_entity_or_a_link() {
        // Cutting "&amp;" to "&am…" or "<https://…|Runbook>" to "<https://…"
        // showed raw markup in Slack (or a link to a truncated URL).
        let entity = format!("{}&amp;tail", "x".repeat(10));
        for max in 11..=15 {
            let cut = truncate_mrkdwn(&entity, max);
            assert_eq!(cut, format!("{}…", "x".repeat(10)), "max {max}");
        }
        assert_eq!(
            truncate_mrkdwn(&entity, 16),
            format!("{}&amp;…", "x".repeat(10))
        );
        let link = "see <https://wiki.example.com/a?b=1&amp;c=2|Runbook> now";
        for max in 6..=52 {
            let cut = truncate_mrkdwn(link, max);
            assert_eq!(cut, "see …", "max {max}");
        }
        assert_eq!(
            truncate_mrkdwn(link, 53),
            "see <https://wiki.example.com/a?b=1&amp;c=2|Runbook>…"
        );
        // Plain text is cut like truncate_chars; short text is kept.
        assert_eq!(truncate_mrkdwn("abcdef", 4), "abc…");
        assert_eq!(truncate_mrkdwn("a&amp;b", 7), "a&amp;b");
        // A whole message: every cut of a long section ends cleanly.
        let mut e = event("evt_1", EventStatus::Firing);
        e.metric.description = String::new();
        e.metric.stage = "&".repeat(3000);
        let (_, v) = one(WebhookFormat::Slack, &[e]);
        let section = v["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= SLACK_TEXT_MAX);
        assert!(
            section.ends_with("&amp;…"),
            "{}",
            &section[section.len() - 20..]
        );
        for text in [section, v["text"].as_str().unwrap()] {
            let tail = text.trim_end_matches('…');
            let last_amp = tail.rfind('&').unwrap_or(0);
            assert!(tail[last_amp..].contains(';') || !tail.contains('&'));
            assert!(tail.rfind('<').is_none_or(|i| tail[i..].contains('>')));
        }
    }

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
