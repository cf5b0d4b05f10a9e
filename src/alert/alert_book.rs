//! The alerts of one site: every rule's lifecycle record, the history of
//! transitions, and the notifications they cause.
//!
//! Two entry points, both pure and driven by the Durable Object that owns
//! the book: [`AlertBook::evaluate`] judges the rules once per new complete
//! bucket (`at`) and steps their lifecycles; [`AlertBook::notify`] runs on
//! every tick (`now`) and decides which notifications go out, per record:
//! [`crate::alert::mute`] says whether a silence or a firing rule holds it
//! back, `due_notification` what is due under that, and a due event takes
//! the record's next sequence. Invariants: a firing notification waits
//! `group_wait` seconds (so alerts of one outage go out together and an
//! inhibiting alert can catch up); a silenced or inhibited alert changes
//! state but sends nothing, and its firing goes out if it is still firing
//! when the silence ends; a resolved notification is sent only for an
//! episode whose firing was sent; every sent event gets the next `sequence`
//! of its rule and the id `evt_{fingerprint}_{sequence}`, so it is unique
//! and stable across delivery retries. [`AlertBook::firing_group`] gives
//! the rest of a receiver's Alertmanager group, which
//! [`crate::alert::dispatch`] routes beside the tick's events.

use crate::alert::detector::{
    CountSeries, DetectorParams, DropDetector, Evaluation, WindowVerdict,
};
use crate::alert::dispatch::Notice;
use crate::alert::event::{AlertEvent, EventStatus, MetricInfo, OtherBpm, Scope};
use crate::alert::lifecycle::{step, AlertState, LifecycleParams, State};
use crate::alert::mute::{mute_on, Mute};
use crate::config::rules::AlertRule;
use crate::config::{Config, MetricKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The silences [`AlertBook::notify`] and [`AlertBook::firing_group`] take.
pub use crate::alert::silence::Silence;

/// Window whose ratio is shown for the other BPMs and judges recovery.
const RECOVERY_WINDOW: i64 = crate::config::rules::RESOLVE_WINDOW_SECS;

/// The history line that keeps a silence once it leaves the silence list:
/// written when it is created (`notice` "silence created") and when it is
/// deleted ("silence deleted"), with the whole silence. `rule` is the
/// silence's (`*` for all rules, whose `metric` is then empty).
pub fn silence_history(config: &Config, silence: &Silence, notice: &str, at: i64) -> HistoryEntry {
    HistoryEntry {
        at,
        rule: silence.rule.clone(),
        value: None,
        metric: config
            .alert(&silence.rule)
            .map(|r| r.metric.clone())
            .unwrap_or_default(),
        from: None,
        to: None,
        notice: Some(notice.to_string()),
        incident: None,
        window: None,
        silence: Some(silence.clone()),
    }
}

/// What the book remembers about one rule between evaluations: about the
/// rule, or for a `by` rule about one of its values (an instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub rule: String,
    /// The dimension value a `by` rule's instance judges; `None` for a
    /// rule judged on its metric's total.
    #[serde(default)]
    pub value: Option<String>,
    pub fingerprint: String,
    pub alert: AlertState,
    /// Sequence number of the last event sent (0: none yet).
    pub sequence: u64,
    /// The current episode's firing notification went out.
    pub firing_sent: bool,
    /// When (tick time) the current episode's firing started to wait.
    pub held_since: Option<i64>,
    /// The current episode's suppression was already written to history.
    pub suppression_noted: bool,
    pub last_sent_at: Option<i64>,
    /// The latest evaluation, to explain the state.
    pub last: Option<Evaluation>,
    /// Where the current episode's drop happened, as its latest firing
    /// notification said; `None` outside a notified episode.
    #[serde(default)]
    pub explanation: Option<crate::alert::explain::Explanation>,
}

impl RuleRecord {
    fn new(config: &Config, rule: &AlertRule, value: Option<&str>, at: i64) -> Self {
        let subject = match (value, rule.by) {
            (Some(v), Some(split)) => {
                format!("{}\u{0}{}={v}", rule.metric, split.dimension.as_str())
            }
            _ => rule.metric.clone(),
        };
        RuleRecord {
            rule: rule.name.clone(),
            value: value.map(str::to_string),
            fingerprint: fingerprint(&config.site.name, &rule.name, &subject),
            alert: AlertState::new(at),
            sequence: 0,
            firing_sent: false,
            held_since: None,
            suppression_noted: false,
            last_sent_at: None,
            last: None,
            explanation: None,
        }
    }

    /// Forgets the current episode's notification state once the rule no
    /// longer fires: the next firing is a new episode's.
    fn end_episode(&mut self) {
        self.firing_sent = false;
        self.held_since = None;
        self.suppression_noted = false;
        self.explanation = None;
    }

    /// Takes the next sequence for an event of `status` sent at `now`.
    fn mark_sent(&mut self, status: EventStatus, now: i64) {
        self.sequence += 1;
        self.last_sent_at = Some(now);
        if status == EventStatus::Firing {
            self.firing_sent = true;
        }
    }

    /// The incident id of the current (or last) episode.
    pub fn incident(&self) -> String {
        format!("inc_{}_{}", self.fingerprint, self.alert.episodes)
    }

    /// Its key in the book and in storage: the rule's name, or for an
    /// instance `rule[value]` (rule names cannot hold `[`, so keys are
    /// unique).
    pub fn key(&self) -> String {
        instance_key(&self.rule, self.value.as_deref())
    }

    /// An instance whose episode is not over: it stays judged (and
    /// listed) even when its value leaves the rule's top values, so a
    /// source that went dark resolves instead of vanishing.
    pub fn is_open(&self) -> bool {
        self.firing_sent
            || matches!(
                self.alert.state,
                State::Pending | State::Firing | State::Resolved
            )
    }
}

/// The key of a rule, or of one value's instance of a `by` rule.
pub fn instance_key(rule: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{rule}[{v}]"),
        None => rule.to_string(),
    }
}

/// One line of the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: i64,
    pub rule: String,
    /// The value of a `by` rule's instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub metric: String,
    /// Set for a state change.
    pub from: Option<State>,
    pub to: Option<State>,
    /// Set for a notification decision: `firing sent`, `resolved sent`,
    /// `repeat sent`, `silenced`, `inhibited by <rule>`.
    pub notice: Option<String>,
    pub incident: Option<String>,
    /// The window that explains the change.
    pub window: Option<WindowVerdict>,
    /// Set for a silence's lines ([`silence_history`]). Absent in lines
    /// written before silences were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence: Option<Silence>,
}

/// The 5-minute bucket series of the metrics the rules need, the recent
/// minute series the fast path judges (none: no fast path), and per `by`
/// rule the 5-minute series of each value it watches (rule → value →
/// series; a `by` rule absent here judges nothing and keeps its instances).
#[derive(Debug, Clone, Default)]
pub struct SeriesSet {
    pub series: BTreeMap<String, CountSeries>,
    pub minutes: BTreeMap<String, CountSeries>,
    pub by: BTreeMap<String, BTreeMap<String, CountSeries>>,
}

/// A stable id per (site, rule, metric): 16 hex digits of a SHA-256.
pub fn fingerprint(site: &str, rule: &str, metric: &str) -> String {
    let digest = Sha256::digest(format!("{site}\u{0}{rule}\u{0}{metric}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Every counted metric: the alert object keeps all their 5-minute series
/// (rules read some, Mission Control shows all).
pub fn counted_metrics(config: &Config) -> Vec<String> {
    config
        .metrics
        .iter()
        .filter(|m| matches!(m.kind, MetricKind::Counted { .. }))
        .map(|m| m.name.clone())
        .collect()
}

/// Detector parameters of a rule.
pub fn detector_params(rule: &AlertRule) -> DetectorParams {
    DetectorParams {
        windows: rule.windows.clone(),
        delta: rule.delta,
        z_alpha: rule.z_alpha,
        min_expected: rule.min_expected,
        weeks: rule.weeks,
        ..DetectorParams::critical()
    }
}

/// Detector parameters of one of a rule's records: a `by` rule's
/// instances have no fast path (their series are 5-minute buckets).
fn instance_params(rule: &AlertRule) -> DetectorParams {
    match rule.by {
        Some(_) => detector_params(rule).without_fast_path(),
        None => detector_params(rule),
    }
}

/// Lifecycle parameters of a rule.
pub fn lifecycle_params(rule: &AlertRule) -> LifecycleParams {
    LifecycleParams {
        for_evaluations: rule.for_evaluations,
        resolve_ratio: rule.resolve_ratio,
        resolve_evaluations: rule.resolve_evaluations,
        reopen_hold_off: rule.hold_off,
        resolve_window: RECOVERY_WINDOW,
    }
}

/// One-sided lower-tail p-value of `z` under the standard normal.
pub fn p_value(z: f64) -> f64 {
    if !z.is_finite() {
        return if z < 0.0 { 0.0 } else { 1.0 };
    }
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The alert state of a site.
///
/// Records and detectors are keyed by [`instance_key`]: one per rule, and
/// one per watched value of a `by` rule (created when the value first
/// comes with a series, dropped once it no longer does and its episode is
/// over).
#[derive(Debug, Clone)]
pub struct AlertBook {
    records: BTreeMap<String, RuleRecord>,
    detectors: BTreeMap<String, DropDetector>,
    /// Keys of dropped records, for the owner to delete from storage.
    dropped: Vec<String>,
}

impl AlertBook {
    /// Picks up stored records; rules without one start `learning` at
    /// `now`, a `by` rule keeps its stored instances, and records of
    /// rules no longer configured (or no longer split the same way) are
    /// dropped.
    pub fn new(config: &Config, stored: Vec<RuleRecord>, now: i64) -> Self {
        let mut records = BTreeMap::new();
        let mut detectors = BTreeMap::new();
        let mut dropped = Vec::new();
        for rec in stored {
            let fits = config
                .alert(&rec.rule)
                .is_some_and(|rule| rule.by.is_some() == rec.value.is_some());
            if fits {
                records.insert(rec.key(), rec);
            } else {
                dropped.push(rec.key());
            }
        }
        for rule in config.alerts.iter().filter(|r| r.by.is_none()) {
            records
                .entry(rule.name.clone())
                .or_insert_with(|| RuleRecord::new(config, rule, None, now));
        }
        for (key, rec) in &records {
            if let Some(rule) = config.alert(&rec.rule) {
                detectors.insert(key.clone(), DropDetector::new(instance_params(rule)));
            }
        }
        AlertBook {
            records,
            detectors,
            dropped,
        }
    }

    pub fn records(&self) -> impl Iterator<Item = &RuleRecord> {
        self.records.values()
    }

    /// The records of `rule`: the rule's own, or its instances by value.
    pub fn instances<'s, 'r>(
        &'s self,
        rule: &'r str,
    ) -> impl Iterator<Item = &'s RuleRecord> + use<'s, 'r> {
        self.records.values().filter(move |r| r.rule == rule)
    }

    /// The values of `rule`'s instances whose episode is not over (see
    /// [`RuleRecord::is_open`]): the owner keeps their series coming.
    pub fn open_values(&self, rule: &str) -> Vec<String> {
        self.instances(rule)
            .filter(|r| r.is_open())
            .filter_map(|r| r.value.clone())
            .collect()
    }

    /// Keys of the records dropped since the last call, to delete from
    /// storage.
    pub fn take_dropped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dropped)
    }

    /// Keeps where an event's drop happened, as its firing notification
    /// says it, for the dashboard until the episode ends.
    pub fn explained(&mut self, event: &AlertEvent) {
        let value = event.scope.as_ref().map(|s| s.value.as_str());
        if let Some(rec) = self.records.get_mut(&instance_key(&event.rule, value)) {
            rec.explanation = event.explanation.clone();
        }
    }

    /// The record of a rule, or of one value's instance of a `by` rule.
    pub fn record(&self, rule: &str, value: Option<&str>) -> Option<&RuleRecord> {
        self.records.get(&instance_key(rule, value))
    }

    /// The records of every rule, in config order (a `by` rule's by
    /// value).
    fn records_in_rule_order<'s, 'c>(
        &'s self,
        config: &'c Config,
    ) -> impl Iterator<Item = (&'c AlertRule, &'s RuleRecord)> + use<'s, 'c> {
        config
            .alerts
            .iter()
            .flat_map(|rule| self.instances(&rule.name).map(move |rec| (rule, rec)))
    }

    /// The rules with a firing record, in config order: those that inhibit
    /// at this tick.
    fn firing_rules<'c>(&self, config: &'c Config) -> Vec<&'c AlertRule> {
        config
            .alerts
            .iter()
            .filter(|r| {
                self.instances(&r.name)
                    .any(|rec| rec.alert.state == State::Firing)
            })
            .collect()
    }

    /// The other BPMs an event lists: every rule judged on its metric's
    /// total, with its state and its ratio over the recovery window. A `by`
    /// rule's instances are parts of one metric, not BPMs of their own.
    fn other_bpms(&self, config: &Config) -> Vec<OtherBpm> {
        config
            .alerts
            .iter()
            .filter(|r| r.by.is_none())
            .filter_map(|r| {
                let rec = self.records.get(&r.name)?;
                Some(OtherBpm {
                    metric: r.metric.clone(),
                    rule: r.name.clone(),
                    state: rec.alert.state.as_str().to_string(),
                    ratio: rec
                        .last
                        .as_ref()
                        .and_then(|e| e.window(RECOVERY_WINDOW))
                        .and_then(|w| w.ratio),
                })
            })
            .collect()
    }

    /// Judges every rule on the buckets ending at `at` and steps its
    /// lifecycle. Call at each instant [`crate::alert::ticks::evaluation_instants`]
    /// gives, in time order: a bucket end judges every window, another
    /// minute only the fast windows of counted metrics.
    pub fn evaluate(
        &mut self,
        config: &Config,
        data: &SeriesSet,
        at: i64,
        clock: &dyn crate::time::WallClock,
    ) -> Vec<HistoryEntry> {
        let mut history = Vec::new();
        let empty = CountSeries::new(at, crate::time::BUCKET_SECS);
        let on_bucket = at.rem_euclid(crate::time::BUCKET_SECS) == 0;
        for rule in &config.alerts {
            let series = |name: &str| data.series.get(name).unwrap_or(&empty);
            if rule.by.is_some() {
                // Instances are judged on 5-minute buckets only: a value's
                // series has no minutes (no fast path).
                let Some(values) = data.by.get(&rule.name) else {
                    continue;
                };
                self.drop_unwatched(rule, values);
                if !on_bucket {
                    continue;
                }
                for (value, s) in values {
                    let key = instance_key(&rule.name, Some(value));
                    let rec = self
                        .records
                        .entry(key.clone())
                        .or_insert_with(|| RuleRecord::new(config, rule, Some(value), at));
                    let det = self
                        .detectors
                        .entry(key)
                        .or_insert_with(|| DropDetector::new(instance_params(rule)));
                    let eval = det.evaluate(s, at, clock);
                    history.extend(judged(rule, rec, eval));
                }
                continue;
            }
            let (Some(rec), Some(det)) = (
                self.records.get_mut(&rule.name),
                self.detectors.get_mut(&rule.name),
            ) else {
                continue;
            };
            let eval = match config.metric(&rule.metric).map(|m| &m.kind) {
                // Ratios have no fast path: a total outage is the
                // denominator's alert.
                Some(MetricKind::Ratio(_)) if !on_bucket => continue,
                Some(MetricKind::Ratio(r)) => det.evaluate_ratio(
                    series(&r.numerator),
                    series(&r.denominator),
                    r.min_denominator as f64,
                    at,
                    clock,
                ),
                _ => det.evaluate_at(
                    series(&rule.metric),
                    data.minutes.get(&rule.metric),
                    at,
                    clock,
                ),
            };
            history.extend(judged(rule, rec, eval));
        }
        history
    }

    /// Drops the instances of `rule` whose value is no longer watched and
    /// whose episode is over.
    fn drop_unwatched(&mut self, rule: &AlertRule, watched: &BTreeMap<String, CountSeries>) {
        let gone: Vec<String> = self
            .instances(&rule.name)
            .filter(|r| !r.is_open() && r.value.as_ref().is_none_or(|v| !watched.contains_key(v)))
            .map(RuleRecord::key)
            .collect();
        for key in gone {
            self.records.remove(&key);
            self.detectors.remove(&key);
            self.dropped.push(key);
        }
    }

    /// Decides, at tick time `now`, which notifications go out. Returns the
    /// events (in rule order) and the history lines of the decisions.
    ///
    /// Per record: [`mute_on`] says whether a silence or a firing rule holds
    /// its notifications back, [`due_notification`] what is due under that
    /// mute, and a due event takes the record's next sequence.
    pub fn notify(
        &mut self,
        config: &Config,
        silences: &[Silence],
        now: i64,
    ) -> (Vec<Notice>, Vec<HistoryEntry>) {
        let firing = self.firing_rules(config);
        let others = self.other_bpms(config);
        let keys: Vec<(&AlertRule, String)> = self
            .records_in_rule_order(config)
            .map(|(rule, rec)| (rule, rec.key()))
            .collect();
        let mut notices = Vec::new();
        let mut history = Vec::new();
        for (rule, key) in keys {
            let Some(rec) = self.records.get_mut(&key) else {
                continue;
            };
            let mute = mute_on(&rule.name, silences, &firing, now);
            match due_notification(rec, rule, config.alerting.group_wait, mute, now) {
                Due::Nothing => {}
                Due::Muted(mute) => {
                    if !rec.suppression_noted {
                        history.push(notice_line(rule, rec, mute.notice(), now));
                        rec.suppression_noted = true;
                    }
                }
                Due::Send(outgoing) => {
                    rec.mark_sent(outgoing.status(), now);
                    history.push(notice_line(rule, rec, outgoing.notice().to_string(), now));
                    let other_bpms = others
                        .iter()
                        .filter(|o| o.rule != rule.name)
                        .cloned()
                        .collect();
                    notices.push(Notice {
                        event: build_event(
                            config,
                            rule,
                            rec,
                            outgoing.status(),
                            outgoing == Outgoing::Repeat,
                            now,
                            other_bpms,
                        ),
                        receivers: rule.receivers.clone(),
                    });
                }
            }
        }
        (notices, history)
    }

    /// The alerts a group holds besides a tick's events, as Alertmanager
    /// keeps them: every rule still firing whose firing notification went
    /// out and that is neither silenced nor inhibited at `now`. Call after
    /// [`AlertBook::notify`] at the same `now`, so a firing sent in this
    /// tick counts as sent.
    ///
    /// The events are built afresh (status firing, not a repeat, the
    /// numbers of the latest evaluation, the id of the rule's last sent
    /// event) and changes nothing: no sequence is taken, nothing is queued
    /// for them on their own; a grouped format lists them beside the tick's
    /// events ([`crate::alert::payload::render_group`]).
    pub fn firing_group(&self, config: &Config, silences: &[Silence], now: i64) -> Vec<Notice> {
        let firing = self.firing_rules(config);
        self.records_in_rule_order(config)
            .filter(|(rule, rec)| {
                rec.alert.state == State::Firing
                    && rec.firing_sent
                    && mute_on(&rule.name, silences, &firing, now).is_none()
            })
            .map(|(rule, rec)| Notice {
                event: build_event(
                    config,
                    rule,
                    rec,
                    EventStatus::Firing,
                    false,
                    now,
                    Vec::new(),
                ),
                receivers: rule.receivers.clone(),
            })
            .collect()
    }
}

/// What a record's notification does at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Due<'a> {
    /// Nothing goes out.
    Nothing,
    /// The firing is due but held back; the history notes it once per
    /// episode.
    Muted(Mute<'a>),
    /// An event goes out.
    Send(Outgoing),
}

/// An event that goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    /// The episode's first firing notification.
    Firing,
    /// A firing notification again, `repeat_interval` after the last one.
    Repeat,
    /// The end of an episode whose firing went out.
    Resolved,
}

impl Outgoing {
    fn status(self) -> EventStatus {
        match self {
            Outgoing::Firing | Outgoing::Repeat => EventStatus::Firing,
            Outgoing::Resolved => EventStatus::Resolved,
        }
    }

    /// The notice of its history line.
    fn notice(self) -> &'static str {
        match self {
            Outgoing::Firing => "firing sent",
            Outgoing::Repeat => "repeat sent",
            Outgoing::Resolved => "resolved sent",
        }
    }
}

/// The notification `rec` has due at `now` under `mute`: a new firing
/// waits `group_wait` from the first tick that sees it (`held_since`) and
/// then goes out unless muted; a repeat goes out `repeat_interval` after
/// the last event unless muted; a resolution goes out for an episode whose
/// firing went out unless a silence holds it. Once the rule is no longer
/// firing, the episode's notification state ends
/// ([`RuleRecord::end_episode`]).
fn due_notification<'a>(
    rec: &mut RuleRecord,
    rule: &AlertRule,
    group_wait: i64,
    mute: Option<Mute<'a>>,
    now: i64,
) -> Due<'a> {
    match rec.alert.state {
        State::Firing if !rec.firing_sent => {
            let held = *rec.held_since.get_or_insert(now);
            match mute {
                _ if now - held < group_wait => Due::Nothing,
                Some(mute) => Due::Muted(mute),
                None => Due::Send(Outgoing::Firing),
            }
        }
        State::Firing => {
            let repeat_due = rule.repeat_interval > 0
                && rec
                    .last_sent_at
                    .is_some_and(|t| now - t >= rule.repeat_interval);
            if repeat_due && mute.is_none() {
                Due::Send(Outgoing::Repeat)
            } else {
                Due::Nothing
            }
        }
        State::Resolved if rec.firing_sent => {
            rec.end_episode();
            if mute.is_some_and(|m| m.holds_resolved()) {
                Due::Nothing
            } else {
                Due::Send(Outgoing::Resolved)
            }
        }
        _ => {
            rec.end_episode();
            Due::Nothing
        }
    }
}

/// The history line of a notification decision about `rec` at `now`.
fn notice_line(rule: &AlertRule, rec: &RuleRecord, notice: String, now: i64) -> HistoryEntry {
    HistoryEntry {
        at: now,
        rule: rule.name.clone(),
        value: rec.value.clone(),
        metric: rule.metric.clone(),
        from: None,
        to: None,
        notice: Some(notice),
        incident: Some(rec.incident()),
        window: None,
        silence: None,
    }
}

/// Steps `rec`'s lifecycle with `eval` and keeps it as the latest
/// verdict; the history line of a state change, if any.
fn judged(rule: &AlertRule, rec: &mut RuleRecord, eval: Evaluation) -> Option<HistoryEntry> {
    let entry = step(&mut rec.alert, &eval, &lifecycle_params(rule)).map(|t| {
        let window = match t.to {
            State::Resolved => eval.window(RECOVERY_WINDOW).cloned(),
            _ => eval.headline().cloned(),
        };
        HistoryEntry {
            at: t.at,
            rule: rule.name.clone(),
            value: rec.value.clone(),
            metric: rule.metric.clone(),
            from: Some(t.from),
            to: Some(t.to),
            notice: None,
            incident: matches!(t.to, State::Firing | State::Resolved).then(|| rec.incident()),
            window,
            silence: None,
        }
    });
    // `last` keeps the latest verdict of every window: a fast-only
    // evaluation replaces the fast windows of the last full one.
    match rec.last.as_mut() {
        Some(last) if eval.fast_only => {
            last.windows.retain(|w| !w.fast);
            last.windows.extend(eval.windows);
            last.at = eval.at;
            last.drop = last.windows.iter().any(|w| w.holds);
        }
        _ => rec.last = Some(eval),
    }
    entry
}

fn build_event(
    config: &Config,
    rule: &AlertRule,
    rec: &RuleRecord,
    status: EventStatus,
    repeat: bool,
    now: i64,
    other_bpms: Vec<OtherBpm>,
) -> AlertEvent {
    let eval = rec.last.as_ref();
    let window = match status {
        EventStatus::Resolved => eval.and_then(|e| e.window(RECOVERY_WINDOW)),
        EventStatus::Firing => eval.and_then(|e| e.headline()),
    };
    // Numbers in an event are finite, so no format writes them as `null`.
    let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
    let observed = finite(window.map_or(0.0, |w| w.observed));
    let expected = finite(window.and_then(|w| w.expected).unwrap_or(0.0));
    let z = finite(window.and_then(|w| w.z).unwrap_or(0.0));
    let drop_pct = if expected > 0.0 {
        ((1.0 - observed / expected) * 1000.0).round() / 10.0
    } else {
        0.0
    };
    let started_at = rec.alert.fired_at.unwrap_or(now);
    let resolved_at = (status == EventStatus::Resolved)
        .then_some(rec.alert.resolved_at)
        .flatten();
    let metric = config.metric(&rule.metric);
    let scope = match (rule.by, &rec.value) {
        (Some(split), Some(value)) => Some(Scope {
            dimension: split.dimension.as_str().to_string(),
            value: value.clone(),
        }),
        _ => None,
    };
    // A `by` rule's value is a label too, so label-keyed receivers
    // (Alertmanager) tell its instances apart.
    let mut labels = rule.labels.clone();
    if let Some(sc) = &scope {
        labels.insert(sc.dimension.clone(), sc.value.clone());
    }
    // The instant the event describes: the evaluation it reports, not the
    // tick that sends it (which is `group_wait` or a silence later).
    let at = eval.map_or(now, |e| e.at);
    AlertEvent {
        id: format!("evt_{}_{}", rec.fingerprint, rec.sequence),
        fingerprint: rec.fingerprint.clone(),
        incident: rec.incident(),
        sequence: rec.sequence,
        status,
        repeat,
        severity: rule.severity,
        site: config.site.name.clone(),
        rule: rule.name.clone(),
        scope,
        labels,
        metric: MetricInfo {
            name: rule.metric.clone(),
            stage: metric
                .map(|m| m.stage.as_str().to_string())
                .unwrap_or_default(),
            description: metric.map(|m| m.description.clone()).unwrap_or_default(),
            owner: metric.map(|m| m.owner.clone()).unwrap_or_default(),
            runbook: rule.runbook.clone(),
        },
        at,
        window: window.map_or(RECOVERY_WINDOW, |w| w.window),
        observed,
        expected,
        drop_pct,
        z,
        p_value: p_value(z),
        started_at,
        resolved_at,
        // Both ends are evaluation instants, so the body's own fields give
        // it: `resolved_at − started_at`, or `at − started_at` while firing.
        duration_s: resolved_at.unwrap_or(at).saturating_sub(started_at).max(0),
        lowest_ratio: rec.alert.lowest_ratio,
        dashboard_url: format!("{}#/metric/{}", config.dashboard_url(), rule.metric),
        other_bpms,
        health: None,
        explanation: None,
        after_deploy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::dispatch::dispatch;
    use crate::alert::test_fixtures::{config, grouped, silence, two_outages, weeks_then, T0};
    use crate::time::Utc;
    use crate::time::BUCKET_SECS;

    /// Five weeks at `rate` per bucket, then the given tail per metric.
    fn data(logins_tail: &[f64], traffic_tail: &[f64]) -> SeriesSet {
        let mut s = SeriesSet::default();
        s.series
            .insert("logins".into(), weeks_then(50.0, logins_tail.to_vec()));
        s.series
            .insert("traffic".into(), weeks_then(2000.0, traffic_tail.to_vec()));
        s
    }

    /// Evaluates `book` at each of `buckets` bucket ends after [`T0`] and
    /// calls `tick` at each of them and 60 s later.
    fn run_ticks(
        book: &mut AlertBook,
        cfg: &Config,
        d: &SeriesSet,
        buckets: i64,
        mut tick: impl FnMut(&mut AlertBook, i64),
    ) {
        for i in 1..=buckets {
            let at = T0 + i * BUCKET_SECS;
            book.evaluate(cfg, d, at, &Utc);
            for now in [at, at + 60] {
                tick(book, now);
            }
        }
    }

    /// Evaluates bucket after bucket, ticking at each bucket end and 60 s
    /// later; returns every notice.
    fn drive(
        book: &mut AlertBook,
        cfg: &Config,
        d: &SeriesSet,
        buckets: i64,
        silences: &[Silence],
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        run_ticks(book, cfg, d, buckets, |book, now| {
            out.extend(book.notify(cfg, silences, now).0);
        });
        out
    }

    #[test]
    fn a_login_outage_fires_once_then_resolves() {
        let cfg = config();
        let mut tail = vec![0.0; 6];
        tail.extend([50.0; 24]);
        let d = data(&tail, &[2000.0; 30]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let notices = drive(&mut book, &cfg, &d, 30, &[]);
        let events: Vec<(&str, EventStatus, u64)> = notices
            .iter()
            .map(|n| (n.event.rule.as_str(), n.event.status, n.event.sequence))
            .collect();
        assert_eq!(
            events,
            vec![
                ("logins_drop", EventStatus::Firing, 1),
                ("logins_drop", EventStatus::Resolved, 2)
            ]
        );
        let firing = &notices[0].event;
        assert_eq!(firing.observed, 0.0);
        assert!(firing.expected >= 50.0);
        assert_eq!(firing.drop_pct, 100.0);
        assert!(firing.p_value < 1e-6);
        assert_eq!(
            firing.dashboard_url,
            "https://shop.example/_bpm/#/metric/logins"
        );
        assert_eq!(firing.id, format!("evt_{}_1", firing.fingerprint));
        let other = &firing.other_bpms[0];
        assert_eq!(
            (other.rule.as_str(), other.ratio),
            ("traffic_down", Some(1.0))
        );
        let resolved = &notices[1].event;
        assert_eq!(resolved.incident, firing.incident);
        assert_eq!(resolved.lowest_ratio, Some(0.0));
        assert!(resolved.duration_s > 0);
        assert_eq!(notices[0].receivers, vec!["ops".to_string()]);
    }

    const SPLIT_CONFIG: &str = r#"
[site]
name = "shop"

[[metric]]
name = "views"
stage = "referral"
description = "Page views"
match = { path = "/**" }

[[receiver]]
name = "ops"
url = "https://hooks.example/ops"

[[alert]]
name = "views_drop"
metric = "views"
receivers = ["ops"]

[[alert]]
name = "source_dark"
metric = "views"
by = "source"
top = 3
receivers = ["ops"]
labels = { team = "marketing" }
"#;

    /// Five flat weeks per source, then `tail` buckets where google goes
    /// dark and bing takes its traffic: the total stays flat.
    fn split_data(tail: usize) -> SeriesSet {
        let mk = |before: f64, after: f64| weeks_then(before, std::iter::repeat_n(after, tail));
        let mut s = SeriesSet::default();
        s.series.insert("views".into(), mk(60.2, 60.2));
        let by = BTreeMap::from([
            ("google".to_string(), mk(30.0, 0.0)),
            ("bing".to_string(), mk(30.0, 60.0)),
            // Never significant: 2.4 an hour.
            ("tiny".to_string(), mk(0.2, 0.0)),
        ]);
        s.by.insert("source_dark".into(), by);
        s
    }

    #[test]
    fn a_by_source_rule_fires_for_the_dark_source_only_while_the_total_is_flat() {
        let cfg = crate::config::parse_toml(SPLIT_CONFIG, "test.toml").unwrap();
        let d = split_data(12);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let notices = drive(&mut book, &cfg, &d, 12, &[]);
        let fired: Vec<(&str, Option<&str>)> = notices
            .iter()
            .map(|n| {
                (
                    n.event.rule.as_str(),
                    n.event.scope.as_ref().map(|s| s.value.as_str()),
                )
            })
            .collect();
        assert_eq!(fired, vec![("source_dark", Some("google"))]);
        let e = &notices[0].event;
        assert_eq!(e.observed, 0.0);
        assert_eq!(e.labels.get("source").map(String::as_str), Some("google"));
        assert_eq!(e.labels.get("team").map(String::as_str), Some("marketing"));
        assert!(
            crate::alert::payload::summary(e).starts_with("views (source google) dropped 100%"),
            "{}",
            crate::alert::payload::summary(e)
        );
        // Each value is its own alert: its own fingerprint and record.
        let google = book.record("source_dark", Some("google")).unwrap();
        let bing = book.record("source_dark", Some("bing")).unwrap();
        assert_eq!(e.fingerprint, google.fingerprint);
        assert_ne!(google.fingerprint, bing.fingerprint);
        assert_eq!(bing.alert.state, State::Ok);
        assert_eq!(
            book.record("views_drop", None).unwrap().alert.state,
            State::Ok
        );
        assert_ne!(
            book.record("source_dark", Some("tiny"))
                .unwrap()
                .alert
                .state,
            State::Firing
        );
        assert_eq!(book.open_values("source_dark"), vec!["google".to_string()]);
    }

    #[test]
    fn a_by_rule_drops_unwatched_values_but_keeps_open_ones() {
        let cfg = crate::config::parse_toml(SPLIT_CONFIG, "test.toml").unwrap();
        let mut d = split_data(12);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        drive(&mut book, &cfg, &d, 12, &[]);
        // The next day's top values no longer hold bing, nor google; google
        // is firing, so it stays (with whatever series it still has).
        if let Some(values) = d.by.get_mut("source_dark") {
            values.remove("bing");
            values.remove("google");
        }
        book.evaluate(&cfg, &d, T0 + 13 * BUCKET_SECS, &Utc);
        assert!(book.record("source_dark", Some("bing")).is_none());
        assert!(book.record("source_dark", Some("google")).is_some());
        assert_eq!(book.take_dropped(), vec!["source_dark[bing]".to_string()]);
        // Stored instances come back; those of a rule that is no longer
        // split are dropped.
        let stored: Vec<RuleRecord> = book.records().cloned().collect();
        let again = AlertBook::new(&cfg, stored.clone(), 0);
        assert!(again.record("source_dark", Some("google")).is_some());
        let unsplit = crate::config::parse_toml(
            &SPLIT_CONFIG.replace("by = \"source\"\ntop = 3\n", ""),
            "test.toml",
        )
        .unwrap();
        let mut plain = AlertBook::new(&unsplit, stored, 0);
        assert!(plain.record("source_dark", None).is_some());
        assert!(plain
            .take_dropped()
            .contains(&"source_dark[google]".to_string()));
    }

    #[test]
    fn regression_duration_s_was_counted_to_the_tick_not_the_evaluation() {
        // `duration_s` was documented as `at − started_at` while firing but
        // computed to the tick that sent the event, so a first firing said
        // "60 s" (the group wait) with `at == started_at` in the same body.
        let mut cfg = config();
        cfg.alerts[0].repeat_interval = 3600;
        let mut tail = vec![0.0; 18];
        tail.extend([50.0; 24]);
        let d = data(&tail, &[2000.0; 42]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let notices = drive(&mut book, &cfg, &d, 42, &[]);
        let first = &notices[0].event;
        assert_eq!((first.status, first.repeat), (EventStatus::Firing, false));
        let repeat = &notices[1].event;
        assert_eq!((repeat.status, repeat.repeat), (EventStatus::Firing, true));
        let last = &notices[notices.len() - 1].event;
        assert_eq!(last.status, EventStatus::Resolved);
        for n in &notices {
            let e = &n.event;
            let end = e.resolved_at.unwrap_or(e.at);
            assert_eq!(e.duration_s, end - e.started_at, "{:?}", e.status);
            assert_eq!(e.duration_s % BUCKET_SECS, 0, "evaluation instants only");
        }
        assert_eq!(first.duration_s, 0, "first firing: at == started_at");
        assert!(repeat.duration_s >= 3600);
        assert!(last.duration_s > repeat.duration_s);
    }

    /// The Alertmanager messages of `buckets` evaluations (ticks at each
    /// bucket end and 60 s later), as `(status, [(alertname, status)])`,
    /// with every groupKey seen.
    #[allow(clippy::type_complexity)]
    fn am_messages(
        cfg: &Config,
        d: &SeriesSet,
        buckets: i64,
        silences: &[Silence],
    ) -> (Vec<(String, Vec<(String, String)>)>, Vec<String>) {
        let mut book = AlertBook::new(cfg, vec![], 0);
        let mut out = Vec::new();
        let mut keys = Vec::new();
        run_ticks(&mut book, cfg, d, buckets, |book, tick| {
            let (notices, _) = book.notify(cfg, silences, tick);
            let group = book.firing_group(cfg, silences, tick);
            let (routed, _) = dispatch(cfg, &notices, &group, &[]);
            for r in routed.iter().filter(|r| r.receiver.name == "am") {
                let dest = crate::alert::payload::Destination {
                    receiver: "am",
                    format: r.receiver.format,
                    routing_key: None,
                    external_url: "https://shop.example/_bpm/",
                };
                for m in crate::alert::payload::render_group(&dest, &r.events, &r.group) {
                    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
                    keys.push(v["groupKey"].as_str().unwrap().to_string());
                    let alerts = v["alerts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| {
                            (
                                a["labels"]["alertname"].as_str().unwrap().to_string(),
                                a["status"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    out.push((v["status"].as_str().unwrap().to_string(), alerts));
                }
            }
        });
        (out, keys)
    }

    #[test]
    fn regression_alertmanager_second_alert_of_a_group_dropped_the_first() {
        // logins_drop fired in one tick, signups_drop in a later one: the
        // second message had the group's key but listed only signups_drop.
        // Alertmanager lists every alert of the group in each message.
        let cfg = grouped();
        let (messages, keys) = am_messages(&cfg, &two_outages(), 60, &[]);
        let pair = |a: &str, s: &str| (a.to_string(), s.to_string());
        assert_eq!(
            messages,
            vec![
                ("firing".into(), vec![pair("logins_drop", "firing")]),
                (
                    "firing".into(),
                    vec![
                        pair("signups_drop", "firing"),
                        pair("logins_drop", "firing")
                    ]
                ),
                (
                    "firing".into(),
                    vec![
                        pair("logins_drop", "resolved"),
                        pair("signups_drop", "firing")
                    ]
                ),
                // logins_drop's resolution was notified: it left the group.
                ("resolved".into(), vec![pair("signups_drop", "resolved")]),
            ]
        );
        assert!(keys.iter().all(|k| k == "{}:{site=\"shop\"}"), "{keys:?}");
    }

    #[test]
    fn a_silenced_or_inhibited_alert_is_not_listed_in_its_group() {
        let cfg = grouped();
        let silence = silence("logins_drop", i64::MAX);
        let (messages, _) = am_messages(&cfg, &two_outages(), 60, &[silence]);
        assert_eq!(
            messages,
            vec![
                (
                    "firing".to_string(),
                    vec![("signups_drop".to_string(), "firing".to_string())]
                ),
                (
                    "resolved".to_string(),
                    vec![("signups_drop".to_string(), "resolved".to_string())]
                ),
            ]
        );
        // An inhibited rule is left out of the group too.
        let mut inhibiting = cfg.clone();
        inhibiting.alerts[1].inhibits = vec!["logins_drop".into()];
        let d = two_outages();
        let mut book = AlertBook::new(&inhibiting, vec![], 0);
        let mut listed = Vec::new();
        run_ticks(&mut book, &inhibiting, &d, 12, |book, tick| {
            book.notify(&inhibiting, &[], tick);
            listed.push(
                book.firing_group(&inhibiting, &[], tick)
                    .into_iter()
                    .map(|n| n.event.rule)
                    .collect::<Vec<_>>(),
            );
        });
        assert!(listed.iter().any(|l| l == &["logins_drop".to_string()]));
        assert_eq!(listed.last().unwrap(), &["signups_drop".to_string()]);
    }

    #[test]
    fn whole_site_down_sends_only_the_traffic_alert() {
        let cfg = config();
        let d = data(&[0.0; 8], &[0.0; 8]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let notices = drive(&mut book, &cfg, &d, 8, &[]);
        let rules: Vec<&str> = notices.iter().map(|n| n.event.rule.as_str()).collect();
        assert_eq!(rules, vec!["traffic_down"]);
        // The inhibited alert still fires (listed), it only sends nothing.
        assert_eq!(
            book.record("logins_drop", None).unwrap().alert.state,
            State::Firing
        );
    }

    #[test]
    fn a_silence_mutes_but_the_state_still_changes_and_the_end_of_it_notifies() {
        let cfg = config();
        let d = data(&[0.0; 12], &[2000.0; 12]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let silence = silence("logins_drop", T0 + 8 * BUCKET_SECS);
        let mut notices = Vec::new();
        let mut history = Vec::new();
        for i in 1..=12 {
            let at = T0 + i * BUCKET_SECS;
            history.extend(book.evaluate(&cfg, &d, at, &Utc));
            let (n, h) = book.notify(&cfg, std::slice::from_ref(&silence), at + 60);
            notices.extend(n);
            history.extend(h);
            if i < 8 {
                assert!(notices.is_empty(), "sent during the silence at bucket {i}");
            }
        }
        assert_eq!(
            book.record("logins_drop", None).unwrap().alert.state,
            State::Firing
        );
        assert!(history
            .iter()
            .any(|h| h.notice.as_deref() == Some("silenced by sil_1")));
        // Still firing when the silence ended: the firing goes out then.
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].event.status, EventStatus::Firing);
    }

    #[test]
    fn group_wait_holds_the_firing_notification() {
        let cfg = config();
        let d = data(&[0.0; 4], &[2000.0; 4]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let mut fired_at = None;
        for i in 1..=4 {
            let at = T0 + i * BUCKET_SECS;
            book.evaluate(&cfg, &d, at, &Utc);
            if book.record("logins_drop", None).unwrap().alert.state == State::Firing
                && fired_at.is_none()
            {
                fired_at = Some(at);
                assert!(book.notify(&cfg, &[], at).0.is_empty());
                assert!(book.notify(&cfg, &[], at + 59).0.is_empty());
                assert_eq!(book.notify(&cfg, &[], at + 60).0.len(), 1);
                assert!(book.notify(&cfg, &[], at + 61).0.is_empty());
            }
        }
        assert!(fired_at.is_some());
    }

    #[test]
    fn repeat_interval_resends_while_firing() {
        let mut cfg = config();
        cfg.alerts[0].repeat_interval = 3600;
        let d = data(&[0.0; 40], &[2000.0; 40]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let notices = drive(&mut book, &cfg, &d, 40, &[]);
        let kinds: Vec<(bool, u64)> = notices
            .iter()
            .map(|n| (n.event.repeat, n.event.sequence))
            .collect();
        // Sent 11 min in; repeats 1 h, 2 h and 3 h later, all within 200 min.
        assert_eq!(kinds, vec![(false, 1), (true, 2), (true, 3), (true, 4)]);
    }

    #[test]
    fn records_survive_a_restart() {
        let cfg = config();
        let d = data(&[0.0; 4], &[2000.0; 4]);
        let mut book = AlertBook::new(&cfg, vec![], 0);
        drive(&mut book, &cfg, &d, 4, &[]);
        let stored: Vec<RuleRecord> = book
            .records()
            .map(|r| serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap())
            .collect();
        let again = AlertBook::new(&cfg, stored, 0);
        let rec = again.record("logins_drop", None).unwrap();
        assert_eq!(rec.alert.state, State::Firing);
        assert!(rec.firing_sent);
        assert_eq!(rec.sequence, 1);
    }

    #[test]
    fn history_lines_written_before_silences_were_recorded_still_read() {
        let old = r#"{"at":5,"rule":"logins_drop","metric":"logins","from":null,"to":null,"notice":"firing sent","incident":"inc_x_1","window":null}"#;
        let h: HistoryEntry = serde_json::from_str(old).unwrap();
        assert_eq!(h.silence, None);
        // A line without a silence is written without the key.
        assert!(!serde_json::to_string(&h).unwrap().contains("silence"));
        let s = silence("*", 100);
        let line = silence_history(&config(), &s, "silence created", 0);
        assert_eq!((line.rule.as_str(), line.metric.as_str()), ("*", ""));
        let back: HistoryEntry =
            serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
        assert_eq!(back, line);
    }

    #[test]
    fn p_values() {
        assert!((p_value(0.0) - 0.5).abs() < 1e-7);
        assert!((p_value(-1.96) - 0.025).abs() < 1e-4);
        // Φ(−5) = 2.8665e-7; the fit is good to ~1e-7 relative.
        assert!((p_value(-5.0) / 2.8665e-7 - 1.0).abs() < 1e-3);
        assert!(p_value(f64::NEG_INFINITY) == 0.0);
    }
}
