//! The alert object's answers to the read path: `GET /api/alerts` (every
//! rule's state with its latest evaluation, explanation and silence, the
//! recent deliveries and the receivers), the lines of
//! `/api/alerts/history` and the silences of `/api/silences`, built from
//! what the `SiteAlerts` Durable Object reads from its storage
//! ([`StoredAlerts`]); and what the object answers a tick ([`TickAnswer`])
//! and a receiver's re-enabling ([`EnableAnswer`]).
//!
//! Invariants: a rule judged on its metric's total has one entry; a `by`
//! rule has one entry per instance (per watched value), and a single
//! `learning` entry with no value while it has none; an entry names the
//! first stored silence that covers its rule at `now`; the receivers are
//! listed as [`crate::alert::outbox::receiver_statuses`] orders them, and
//! the disabled ones again sorted by name; every time is RFC 3339
//! ([`format_time`]), and a field with nothing to say is `null`, never
//! absent.

use crate::alert::alert_book::{HistoryEntry, RuleRecord, Silence};
use crate::alert::detector::{Evaluation, WindowVerdict};
use crate::alert::explain::Explanation;
use crate::alert::outbox::{Delivery, Enabled, ReceiverStatus};
use crate::config::rules::{AlertRule, WebhookFormat};
use crate::config::Config;
use crate::time::format_time;
use serde::Serialize;
use std::collections::BTreeMap;

/// Deliveries `GET /api/alerts` lists, newest first.
pub const RECENT_DELIVERIES: u32 = 50;
/// History lines `GET /api/alerts/history` answers unless `limit` says.
pub const DEFAULT_HISTORY_LIMIT: u32 = 100;
/// Most history lines one answer holds.
pub const MAX_HISTORY_LIMIT: u32 = 1000;

/// What the alert object's storage holds, as read for one answer.
#[derive(Debug, Clone, Copy)]
pub struct StoredAlerts<'a> {
    /// The live book's records, else the stored ones.
    pub records: &'a [RuleRecord],
    pub silences: &'a [Silence],
    /// The newest [`RECENT_DELIVERIES`] outbox rows, newest first.
    pub deliveries: &'a [Delivery],
    pub receivers: &'a [ReceiverStatus],
    /// The last instant evaluated (Unix seconds).
    pub evaluated_at: Option<i64>,
    /// How long the last evaluation took, in milliseconds, as stored
    /// (text); unreadable text shows as `null`.
    pub evaluation_ms: Option<&'a str>,
}

/// The body of `GET /api/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsReport<'a> {
    pub site: &'a str,
    pub timezone: &'a str,
    pub evaluated_at: Option<String>,
    pub evaluation_ms: Option<f64>,
    pub alerts: Vec<AlertEntry<'a>>,
    pub deliveries: &'a [Delivery],
    pub receivers: Vec<ReceiverView<'a>>,
    pub disabled_receivers: Vec<DisabledReceiver<'a>>,
}

/// One rule, or one instance of a `by` rule, as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEntry<'a> {
    pub rule: &'a str,
    /// A `by` rule's dimension.
    pub by: Option<&'static str>,
    /// The value an instance of a `by` rule judges.
    pub value: Option<&'a str>,
    pub metric: &'a str,
    pub severity: &'static str,
    /// `learning` until the rule has a record.
    pub state: &'static str,
    pub silenced: bool,
    /// The id of the silence that mutes it.
    pub silence: Option<&'a str>,
    pub since: Option<String>,
    pub fingerprint: Option<&'a str>,
    /// Set once an episode fired.
    pub incident: Option<String>,
    pub fired_at: Option<String>,
    pub lowest_ratio: Option<f64>,
    /// The last event's sequence number (0: none sent).
    pub sequence: u64,
    pub receivers: &'a [String],
    pub labels: &'a BTreeMap<String, String>,
    pub runbook: &'a str,
    pub evaluation: Option<&'a Evaluation>,
    pub explanation: Option<&'a Explanation>,
}

/// A receiver as `GET /api/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiverView<'a> {
    pub name: &'a str,
    pub format: Option<WebhookFormat>,
    pub enabled: bool,
    pub disabled_since: Option<String>,
    pub disabled_reason: Option<&'a str>,
    pub queued: usize,
    pub held: usize,
}

/// A receiver a 410 disabled, in `disabled_receivers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisabledReceiver<'a> {
    pub receiver: &'a str,
    pub since: Option<String>,
    pub reason: Option<&'a str>,
}

/// A silence as the API shows it: in `/api/silences` with whether it mutes
/// anything at the time of asking (`active`), in a history line without.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceView<'a> {
    pub id: &'a str,
    pub rule: &'a str,
    pub until: String,
    pub reason: &'a str,
    pub author: &'a str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl<'a> SilenceView<'a> {
    /// The silence as `/api/silences` lists it at `now`.
    pub fn listed(s: &'a Silence, now: i64) -> Self {
        SilenceView {
            active: Some(s.covers(&s.rule, now)),
            ..SilenceView::recorded(s)
        }
    }

    /// The silence as a history line keeps it.
    pub fn recorded(s: &'a Silence) -> Self {
        SilenceView {
            id: &s.id,
            rule: &s.rule,
            until: format_time(s.until),
            reason: &s.reason,
            author: &s.author,
            created_at: format_time(s.created_at),
            active: None,
        }
    }
}

/// The body of `GET /api/silences`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceList<'a> {
    pub silences: Vec<SilenceView<'a>>,
}

impl<'a> SilenceList<'a> {
    pub fn new(silences: &'a [Silence], now: i64) -> Self {
        SilenceList {
            silences: silences
                .iter()
                .map(|s| SilenceView::listed(s, now))
                .collect(),
        }
    }
}

/// One line of `/api/alerts/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryLine<'a> {
    pub at: String,
    pub rule: &'a str,
    pub value: Option<&'a str>,
    pub metric: &'a str,
    pub from: Option<&'static str>,
    pub to: Option<&'static str>,
    pub notice: Option<&'a str>,
    pub incident: Option<&'a str>,
    pub window: Option<&'a WindowVerdict>,
    pub silence: Option<SilenceView<'a>>,
}

impl<'a> HistoryLine<'a> {
    pub fn new(h: &'a HistoryEntry) -> Self {
        HistoryLine {
            at: format_time(h.at),
            rule: &h.rule,
            value: h.value.as_deref(),
            metric: &h.metric,
            from: h.from.map(|s| s.as_str()),
            to: h.to.map(|s| s.as_str()),
            notice: h.notice.as_deref(),
            incident: h.incident.as_deref(),
            window: h.window.as_ref(),
            silence: h.silence.as_ref().map(SilenceView::recorded),
        }
    }
}

/// The body of `GET /api/alerts/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage<'a> {
    pub history: Vec<HistoryLine<'a>>,
}

impl<'a> HistoryPage<'a> {
    pub fn new(entries: &'a [HistoryEntry]) -> Self {
        HistoryPage {
            history: entries.iter().map(HistoryLine::new).collect(),
        }
    }
}

/// `?limit=N&rule=NAME` of `/api/alerts/history`. A `limit` that is no
/// whole number is [`DEFAULT_HISTORY_LIMIT`], any other is clamped to
/// `1..=`[`MAX_HISTORY_LIMIT`]; a repeated parameter's last value counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: u32,
    pub rule: Option<String>,
}

impl HistoryQuery {
    /// `query` is a URL's query, without its `?`. Never refuses a query:
    /// parameters it does not know are ignored.
    pub fn parse(query: &str) -> Self {
        let mut out = HistoryQuery {
            limit: DEFAULT_HISTORY_LIMIT,
            rule: None,
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "limit" => {
                    out.limit = v
                        .parse()
                        .unwrap_or(DEFAULT_HISTORY_LIMIT)
                        .clamp(1, MAX_HISTORY_LIMIT)
                }
                "rule" => out.rule = Some(v.into_owned()),
                _ => {}
            }
        }
        out
    }
}

/// The body of `GET /api/alerts` at `now`.
pub fn report<'a>(config: &'a Config, stored: StoredAlerts<'a>, now: i64) -> AlertsReport<'a> {
    let alerts = config
        .alerts
        .iter()
        .flat_map(|rule| {
            let mut own: Vec<AlertEntry> = stored
                .records
                .iter()
                .filter(|r| r.rule == rule.name)
                .map(|r| entry(rule, Some(r), stored.silences, now))
                .collect();
            if own.is_empty() {
                own.push(entry(rule, None, stored.silences, now));
            }
            own
        })
        .collect();
    let mut disabled: Vec<&ReceiverStatus> = stored
        .receivers
        .iter()
        .filter(|r| r.disabled_since.is_some())
        .collect();
    disabled.sort_by(|a, b| a.name.cmp(&b.name));
    AlertsReport {
        site: &config.site.name,
        timezone: &config.time.zone,
        evaluated_at: stored.evaluated_at.map(format_time),
        evaluation_ms: stored.evaluation_ms.and_then(|v| v.parse().ok()),
        alerts,
        deliveries: stored.deliveries,
        receivers: stored.receivers.iter().map(receiver_view).collect(),
        disabled_receivers: disabled
            .into_iter()
            .map(|r| DisabledReceiver {
                receiver: &r.name,
                since: r.disabled_since.map(format_time),
                reason: r.disabled_reason.as_deref(),
            })
            .collect(),
    }
}

/// `rule`'s entry for `rec`, one of its records (`None`: it has none yet).
fn entry<'a>(
    rule: &'a AlertRule,
    rec: Option<&'a RuleRecord>,
    silences: &'a [Silence],
    now: i64,
) -> AlertEntry<'a> {
    let silence = silences.iter().find(|s| s.covers(&rule.name, now));
    AlertEntry {
        rule: &rule.name,
        by: rule.by.map(|b| b.dimension.as_str()),
        value: rec.and_then(|r| r.value.as_deref()),
        metric: &rule.metric,
        severity: rule.severity.as_str(),
        state: rec.map_or("learning", |r| r.alert.state.as_str()),
        silenced: silence.is_some(),
        silence: silence.map(|s| s.id.as_str()),
        since: rec.map(|r| format_time(r.alert.since)),
        fingerprint: rec.map(|r| r.fingerprint.as_str()),
        incident: rec.filter(|r| r.alert.episodes > 0).map(|r| r.incident()),
        fired_at: rec.and_then(|r| r.alert.fired_at).map(format_time),
        lowest_ratio: rec.and_then(|r| r.alert.lowest_ratio),
        sequence: rec.map_or(0, |r| r.sequence),
        receivers: &rule.receivers,
        labels: &rule.labels,
        runbook: &rule.runbook,
        evaluation: rec.and_then(|r| r.last.as_ref()),
        explanation: rec.and_then(|r| r.explanation.as_ref()),
    }
}

fn receiver_view(r: &ReceiverStatus) -> ReceiverView<'_> {
    ReceiverView {
        name: &r.name,
        format: r.format,
        enabled: r.enabled,
        disabled_since: r.disabled_since.map(format_time),
        disabled_reason: r.disabled_reason.as_deref(),
        queued: r.queued,
        held: r.held,
    }
}

/// What the alert object answers `POST /tick`.
#[derive(Debug, Serialize, PartialEq)]
pub struct TickAnswer {
    /// The tick's instant.
    pub now: String,
    /// The bucket it judged up to (the last complete one).
    pub at: String,
    /// Whether a new bucket was judged.
    pub evaluated: bool,
    pub evaluation_ms: f64,
    /// History entries the tick wrote.
    pub changes: usize,
    /// Notifications it queued.
    pub queued: usize,
}

impl TickAnswer {
    pub fn new(
        now: i64,
        at: i64,
        evaluated: bool,
        evaluation_ms: f64,
        changes: usize,
        queued: usize,
    ) -> Self {
        TickAnswer {
            now: format_time(now),
            at: format_time(at),
            evaluated,
            evaluation_ms,
            changes,
            queued,
        }
    }
}

/// What the alert object answers `POST /receivers/{name}/enable`.
#[derive(Debug, Serialize, PartialEq)]
pub struct EnableAnswer<'a> {
    pub receiver: &'a str,
    /// Always `true`: the receiver takes messages again.
    pub enabled: bool,
    pub was_disabled: bool,
    pub requeued: usize,
    pub given_up: usize,
}

impl<'a> EnableAnswer<'a> {
    pub fn new(receiver: &'a str, was_disabled: bool, outcome: &Enabled) -> Self {
        EnableAnswer {
            receiver,
            enabled: true,
            was_disabled,
            requeued: outcome.requeued,
            given_up: outcome.given_up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_and_enable_answers_keep_their_fields() {
        let tick = TickAnswer::new(1_764_000_000, 1_763_999_700, true, 1.5, 2, 1);
        assert_eq!(
            serde_json::to_value(&tick).unwrap(),
            serde_json::json!({
                "now": "2025-11-24T16:00:00Z",
                "at": "2025-11-24T15:55:00Z",
                "evaluated": true,
                "evaluation_ms": 1.5,
                "changes": 2,
                "queued": 1,
            })
        );
        let outcome = Enabled {
            requeued: 3,
            given_up: 1,
        };
        assert_eq!(
            serde_json::to_value(EnableAnswer::new("ops", true, &outcome)).unwrap(),
            serde_json::json!({
                "receiver": "ops",
                "enabled": true,
                "was_disabled": true,
                "requeued": 3,
                "given_up": 1,
            })
        );
    }
    use crate::alert::alert_book::{silence_history, AlertBook};
    use crate::alert::lifecycle::State;
    use crate::alert::outbox::receiver_statuses;

    /// 2026-01-05T00:00:00Z.
    const NOW: i64 = 1_767_571_200;

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    fn by_rule(cfg: &Config) -> &AlertRule {
        cfg.alerts.iter().find(|r| r.by.is_some()).unwrap()
    }

    fn silence(id: &str, rule: &str, until: i64) -> Silence {
        Silence {
            id: id.into(),
            rule: rule.into(),
            until,
            reason: "migration".into(),
            author: "e2e".into(),
            created_at: NOW - 60,
        }
    }

    fn empty<'a>() -> StoredAlerts<'a> {
        StoredAlerts {
            records: &[],
            silences: &[],
            deliveries: &[],
            receivers: &[],
            evaluated_at: None,
            evaluation_ms: None,
        }
    }

    #[test]
    fn a_by_rule_without_records_is_one_learning_entry() {
        let cfg = config();
        let rule = by_rule(&cfg);
        let r = report(&cfg, empty(), NOW);
        assert_eq!(r.alerts.len(), cfg.alerts.len());
        let entries: Vec<&AlertEntry> = r.alerts.iter().filter(|a| a.rule == rule.name).collect();
        assert_eq!(entries.len(), 1);
        let e = entries[0];
        assert_eq!((e.state, e.value, e.by), ("learning", None, Some("source")));
        assert_eq!(
            (e.since.as_deref(), e.fingerprint, e.sequence),
            (None, None, 0)
        );
        assert_eq!(e.receivers, rule.receivers.as_slice());
    }

    #[test]
    fn a_by_rule_has_one_entry_per_instance_and_plain_rules_keep_config_order() {
        let cfg = config();
        let rule = by_rule(&cfg);
        let book = AlertBook::new(&cfg, Vec::new(), NOW);
        let mut records: Vec<RuleRecord> = book.records().cloned().collect();
        let template = records[0].clone();
        for value in ["google", "bing"] {
            records.push(RuleRecord {
                rule: rule.name.clone(),
                value: Some(value.into()),
                fingerprint: format!("fp-{value}"),
                ..template.clone()
            });
        }
        let stored = StoredAlerts {
            records: &records,
            ..empty()
        };
        let r = report(&cfg, stored, NOW);
        let names: Vec<&str> = r.alerts.iter().map(|a| a.rule).collect();
        let mut expected: Vec<&str> = Vec::new();
        for a in &cfg.alerts {
            expected.push(&a.name);
            if a.by.is_some() {
                expected.push(&a.name);
            }
        }
        assert_eq!(names, expected);
        let values: Vec<Option<&str>> = r
            .alerts
            .iter()
            .filter(|a| a.rule == rule.name)
            .map(|a| a.value)
            .collect();
        assert_eq!(values, [Some("google"), Some("bing")]);
        let plain = r.alerts.iter().find(|a| a.by.is_none()).unwrap();
        assert_eq!(plain.state, "learning");
        assert_eq!(plain.since.as_deref(), Some("2026-01-05T00:00:00Z"));
    }

    #[test]
    fn a_silenced_rule_names_its_silence_and_a_firing_one_its_incident() {
        let cfg = config();
        let name = cfg.alerts[0].name.clone();
        let book = AlertBook::new(&cfg, Vec::new(), NOW);
        let mut records: Vec<RuleRecord> = book.records().cloned().collect();
        let rec = records.iter_mut().find(|r| r.rule == name).unwrap();
        rec.alert.state = State::Firing;
        rec.alert.episodes = 2;
        rec.alert.fired_at = Some(NOW - 600);
        rec.alert.lowest_ratio = Some(0.25);
        rec.sequence = 3;
        let silences = [
            silence("sil_ended", &name, NOW - 1),
            silence("sil_other", "no_such_rule", NOW + 3600),
            silence("sil_all", "*", NOW + 3600),
            silence("sil_own", &name, NOW + 3600),
        ];
        let stored = StoredAlerts {
            records: &records,
            silences: &silences,
            ..empty()
        };
        let r = report(&cfg, stored, NOW);
        let e = r.alerts.iter().find(|a| a.rule == name).unwrap();
        assert_eq!(
            (e.state, e.silenced, e.silence),
            ("firing", true, Some("sil_all"))
        );
        let fingerprint = e.fingerprint.unwrap();
        assert_eq!(e.incident, Some(format!("inc_{fingerprint}_2")));
        assert_eq!(e.fired_at.as_deref(), Some("2026-01-04T23:50:00Z"));
        assert_eq!((e.lowest_ratio, e.sequence), (Some(0.25), 3));
        // After every silence ended, nothing mutes it.
        let later = report(&cfg, stored, NOW + 3600);
        let e = later.alerts.iter().find(|a| a.rule == name).unwrap();
        assert_eq!(
            (e.silenced, e.silence, e.incident.is_some()),
            (false, None, true)
        );
    }

    #[test]
    fn disabled_receivers_are_sorted_by_name_and_times_are_rfc3339() {
        let configured = [
            ("ops", WebhookFormat::Json),
            ("oncall", WebhookFormat::Slack),
        ];
        let disabled = [
            ("zed".to_string(), NOW - 120, "gone".to_string()),
            (
                "ops".to_string(),
                NOW - 60,
                "the endpoint answered 410".to_string(),
            ),
        ];
        let statuses = receiver_statuses(&configured, &disabled, &[]);
        let cfg = config();
        let stored = StoredAlerts {
            receivers: &statuses,
            evaluated_at: Some(NOW),
            evaluation_ms: Some("12.5"),
            ..empty()
        };
        let r = report(&cfg, stored, NOW);
        let listed: Vec<&str> = r.receivers.iter().map(|x| x.name).collect();
        assert_eq!(listed, ["ops", "oncall", "zed"]);
        let off: Vec<(&str, Option<&str>)> = r
            .disabled_receivers
            .iter()
            .map(|d| (d.receiver, d.since.as_deref()))
            .collect();
        assert_eq!(
            off,
            [
                ("ops", Some("2026-01-04T23:59:00Z")),
                ("zed", Some("2026-01-04T23:58:00Z"))
            ]
        );
        assert_eq!(
            r.receivers[0].disabled_reason,
            Some("the endpoint answered 410")
        );
        assert_eq!(
            (
                r.receivers[1].enabled,
                r.receivers[1].disabled_since.as_deref()
            ),
            (true, None)
        );
        assert_eq!(r.evaluated_at.as_deref(), Some("2026-01-05T00:00:00Z"));
        assert_eq!(r.evaluation_ms, Some(12.5));
        let unreadable = StoredAlerts {
            evaluation_ms: Some("soon"),
            ..empty()
        };
        assert_eq!(report(&cfg, unreadable, NOW).evaluation_ms, None);
    }

    #[test]
    fn the_report_has_every_field_the_dashboard_reads_even_when_empty() {
        let cfg = config();
        let deliveries = [Delivery::new(7, "ops", "msg_1", NOW)];
        let stored = StoredAlerts {
            deliveries: &deliveries,
            ..empty()
        };
        let v = serde_json::to_value(report(&cfg, stored, NOW)).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "alerts",
                "deliveries",
                "disabled_receivers",
                "evaluated_at",
                "evaluation_ms",
                "receivers",
                "site",
                "timezone"
            ]
        );
        let entry: Vec<&String> = v["alerts"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            entry,
            [
                "by",
                "evaluation",
                "explanation",
                "fingerprint",
                "fired_at",
                "incident",
                "labels",
                "lowest_ratio",
                "metric",
                "receivers",
                "rule",
                "runbook",
                "sequence",
                "severity",
                "silence",
                "silenced",
                "since",
                "state",
                "value"
            ]
        );
        assert!(v["alerts"][0]["value"].is_null() && v["evaluated_at"].is_null());
        assert_eq!(v["deliveries"][0]["message_id"], "msg_1");
        assert_eq!(v["deliveries"][0]["state"], "queued");
    }

    #[test]
    fn a_history_line_carries_its_value_and_its_silence_without_active() {
        let cfg = config();
        let rule = by_rule(&cfg);
        let fired = HistoryEntry {
            at: NOW,
            rule: rule.name.clone(),
            value: Some("google".into()),
            metric: rule.metric.clone(),
            from: Some(State::Pending),
            to: Some(State::Firing),
            notice: None,
            incident: Some("inc_x_1".into()),
            window: None,
            silence: None,
        };
        let s = silence("sil_1", "*", NOW + 3600);
        let created = silence_history(&cfg, &s, "silence created", NOW);
        let entries = [fired, created];
        let v = serde_json::to_value(HistoryPage::new(&entries)).unwrap();
        let lines = v["history"].as_array().unwrap();
        assert_eq!(lines[0]["value"], "google");
        assert_eq!(lines[0]["at"], "2026-01-05T00:00:00Z");
        assert_eq!(
            (&lines[0]["from"], &lines[0]["to"]),
            (&"pending".into(), &"firing".into())
        );
        assert!(lines[0]["silence"].is_null() && lines[0]["window"].is_null());
        assert!(lines[1]["value"].is_null());
        assert_eq!(lines[1]["notice"], "silence created");
        assert_eq!(lines[1]["silence"]["until"], "2026-01-05T01:00:00Z");
        assert_eq!(lines[1]["silence"]["reason"], "migration");
        assert!(lines[1]["silence"].get("active").is_none());
    }

    #[test]
    fn a_listed_silence_says_whether_it_is_active() {
        let silences = [silence("sil_1", "*", NOW + 60), silence("sil_2", "x", NOW)];
        let v = serde_json::to_value(SilenceList::new(&silences, NOW)).unwrap();
        assert_eq!(v["silences"][0]["active"], true);
        assert_eq!(v["silences"][1]["active"], false);
        assert_eq!(v["silences"][0]["created_at"], "2026-01-04T23:59:00Z");
        let one = serde_json::to_value(SilenceView::listed(&silences[0], NOW)).unwrap();
        assert_eq!(one, v["silences"][0]);
    }

    #[test]
    fn the_history_query_clamps_its_limit_and_never_refuses() {
        let q = |s: &str| HistoryQuery::parse(s);
        assert_eq!(
            q(""),
            HistoryQuery {
                limit: 100,
                rule: None
            }
        );
        assert_eq!(q("limit=0").limit, 1);
        assert_eq!(q("limit=5000").limit, 1000);
        assert_eq!(q("limit=-3").limit, 100);
        assert_eq!(q("limit=ten").limit, 100);
        assert_eq!(q("limit=5&limit=7").limit, 7);
        let named = q("rule=signups%20drop&other=1");
        assert_eq!(named.rule.as_deref(), Some("signups drop"));
        assert_eq!(named.limit, 100);
    }
}
