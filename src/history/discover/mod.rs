//! `bpm-edge discover`: the request signatures that best tell an incident
//! apart, each proposed as a ready `[[metric]]` and `[[alert]]`.
//!
//! Two passes over the log. The first ([`Discoverer`]) counts every
//! human request per minute under its [`Leaf`] (method, generalised path,
//! status class, redirect target), builds the `/**` patterns above the
//! paths found, and keeps the signatures whose count in the incident's
//! range fell against the same wall-clock range on earlier days and weeks
//! ([`COMPARED_DAYS`]) by enough, with enough volume, and beyond the
//! day-to-day spread. A signature another one explains is dropped (a path
//! inside a `/**` that fell as much; a `/**` whose loss is one path's).
//! The best [`DiscoverOptions::shortlist`] become candidate metrics.
//!
//! The second pass replays the log through the classifier with the
//! operator's config plus the candidates' TOML (so the TOML is checked
//! as pasted, and counts what the worker would count), then backtests
//! the candidates' rules and the configured ones with the alert object's
//! own ticks ([`rule_backtest`]). Candidates are ranked: caught the
//! incident, then fewest false alerts elsewhere in the log, then the
//! largest drop (to 5 %), then the earliest firing, then the volume.
//!
//! Invariant: discover never reads a line a third time and never panics
//! on a line; a malformed line is skipped by the caller's reader.

pub mod signature;

use crate::alert::detector::median;
use crate::config::rules::{AlertRule, Severity};
use crate::config::{parse_toml, Config};
use crate::count::agent::{classify, AgentKind};
use crate::count::classify::{Classifier, RequestFacts, ResponseFacts};
use crate::history::replay::Replay;
use crate::history::rule_backtest::{self, Episode};
use crate::history::simulate::{rule_toml, toml_string};
use crate::time::{format_time, Resolution, MINUTE};
use serde::Serialize;
#[cfg(test)]
use signature::StatusClass;
use signature::{pattern_text, Answer, Leaf};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The incident's range `[from, to)`, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub from: i64,
    pub to: i64,
}

/// Days before the incident whose same wall-clock range it is compared
/// with: the week before, and the same weekday 2–4 weeks before.
pub const COMPARED_DAYS: [i64; 10] = [1, 2, 3, 4, 5, 6, 7, 14, 21, 28];

/// How far around the incident an alert counts as about it (neither a
/// detection nor a false alert): a range is rarely labelled to the minute.
pub const RELATED_MARGIN_SECS: i64 = 3600;

/// What discover keeps and how many it backtests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscoverOptions {
    /// Candidates backtested and ranked.
    pub shortlist: usize,
    /// Least usual count in the incident's range (the rules' own
    /// `min_expected` default).
    pub min_expected: f64,
    /// Least drop, `1 − during / usual`.
    pub min_drop: f64,
    /// Least `(usual − during) / √(usual + spread²)`: the drop against
    /// chance and against the earlier days' own spread.
    pub min_z: f64,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            shortlist: 10,
            min_expected: 10.0,
            min_drop: 0.3,
            min_z: 3.0,
        }
    }
}

/// Why discover could not rank anything.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoverError {
    /// `--incident` ends before it starts.
    EmptyIncident,
    /// The log holds no request in the incident's range.
    IncidentOutsideLog {
        first: Option<i64>,
        last: Option<i64>,
    },
    /// The log covers the incident's wall-clock range on fewer than two
    /// earlier days.
    TooLittleHistory { compared: usize },
    /// The operator's config (or it with the candidates appended) does not
    /// parse.
    Config(String),
    /// The caller's reader failed.
    Read(String),
}

impl fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoverError::EmptyIncident => write!(f, "the incident must end after it starts"),
            DiscoverError::IncidentOutsideLog { first, last } => write!(
                f,
                "the log has no request in the incident's range (it runs {} .. {})",
                first.map_or_else(|| "-".into(), format_time),
                last.map_or_else(|| "-".into(), format_time)
            ),
            DiscoverError::TooLittleHistory { compared } => write!(
                f,
                "the log covers the incident's time of day on {compared} earlier day(s); \
                 discover needs at least 2 (a log starting 2 days before the incident)"
            ),
            DiscoverError::Config(e) => write!(f, "{e}"),
            DiscoverError::Read(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DiscoverError {}

/// What the first pass saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub requests: u64,
    /// Requests from bots: never a candidate.
    pub bots: u64,
    /// Assets, housekeeping paths, 5xx/1xx answers, the dashboard.
    pub left_out: u64,
}

/// The first pass: minute counts per [`Leaf`].
#[derive(Debug, Clone)]
pub struct Discoverer {
    prefix: String,
    leaves: HashMap<Leaf, BTreeMap<i64, u32>>,
    first: Option<i64>,
    last: Option<i64>,
    seen: Seen,
}

impl Discoverer {
    /// `prefix`: the dashboard's own path prefix, left out.
    pub fn new(prefix: &str) -> Self {
        Discoverer {
            prefix: prefix.to_string(),
            leaves: HashMap::new(),
            first: None,
            last: None,
            seen: Seen::default(),
        }
    }

    /// Counts one request answered at `at`.
    pub fn add(&mut self, at: i64, request: &RequestFacts, response: &ResponseFacts) {
        self.seen.requests += 1;
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        if classify(request.user_agent, request.cf) == AgentKind::Bot {
            self.seen.bots += 1;
            return;
        }
        let Some(leaf) = Leaf::of(
            request.method,
            request.target,
            response.status,
            response.location,
            &self.prefix,
        ) else {
            self.seen.left_out += 1;
            return;
        };
        let minute = Resolution::Minute.floor(at);
        let slot = self
            .leaves
            .entry(leaf)
            .or_default()
            .entry(minute)
            .or_insert(0);
        *slot = slot.saturating_add(1);
    }

    /// The comparison ranges the log covers: the incident's wall-clock
    /// range on each of [`COMPARED_DAYS`], whole within the log and ended
    /// before the incident starts.
    fn compared(&self, incident: Incident, config: &Config) -> Vec<(i64, i64)> {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return Vec::new();
        };
        let (first, end) = (
            Resolution::Minute.floor(first),
            Resolution::Minute.floor(last) + MINUTE,
        );
        COMPARED_DAYS
            .iter()
            .map(|d| {
                (
                    config.time.days_before(incident.from, *d),
                    config.time.days_before(incident.to, *d),
                )
            })
            .filter(|(a, b)| *a >= first && *b <= end && *b <= incident.from)
            .collect()
    }

    /// The signatures that fell, explained ones left out, best first.
    fn screen(
        &self,
        incident: Incident,
        compared: &[(i64, i64)],
        options: &DiscoverOptions,
    ) -> (usize, Vec<Screened>) {
        // Per node (answer, prefix): counts in the incident then each
        // compared range, and how many leaves it holds.
        let mut ranges = vec![(incident.from, incident.to)];
        ranges.extend_from_slice(compared);
        // Keyed by (answer, path prefix, `/**` or exact).
        type Node<'a> = (&'a Answer, &'a [String], bool);
        let mut nodes: HashMap<Node, (Vec<u64>, usize)> = HashMap::new();
        for (leaf, minutes) in &self.leaves {
            let sums: Vec<u64> = ranges
                .iter()
                .map(|(a, b)| minutes.range(*a..*b).map(|(_, n)| u64::from(*n)).sum())
                .collect();
            let mut add = |key| {
                let (acc, leaves) = nodes
                    .entry(key)
                    .or_insert_with(|| (vec![0; ranges.len()], 0));
                for (a, s) in acc.iter_mut().zip(&sums) {
                    *a += s;
                }
                *leaves += 1;
            };
            add((&leaf.answer, leaf.segments.as_slice(), false));
            for k in 0..=leaf.segments.len() {
                add((&leaf.answer, leaf.segments.get(..k).unwrap_or(&[]), true));
            }
        }
        let mut considered = 0;
        let mut fell = Vec::new();
        for ((answer, prefix, any), (sums, leaves)) in nodes {
            // A `/**` over one path is that path.
            if any && leaves < 2 {
                continue;
            }
            let (observed, before) = sums.split_first().unwrap_or((&0, &[]));
            let Some(fall) = Fall::of(*observed, before, options) else {
                continue;
            };
            considered += 1;
            if fall.drop >= options.min_drop && fall.z >= options.min_z {
                fell.push(Screened {
                    answer: answer.clone(),
                    prefix: prefix.to_vec(),
                    any,
                    fall,
                });
            }
        }
        fell.sort_by(|a, b| {
            b.fall
                .drop
                .total_cmp(&a.fall.drop)
                .then(b.fall.z.total_cmp(&a.fall.z))
                .then_with(|| a.signature().cmp(&b.signature()))
        });
        let mut kept: Vec<Screened> = Vec::new();
        for c in fell {
            if !kept.iter().any(|k| k.explains(&c)) {
                kept.push(c);
            }
        }
        (considered, kept)
    }
}

/// How a signature's count in the incident's range compares with the
/// compared ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fall {
    observed: u64,
    /// The median of the compared ranges' counts.
    expected: f64,
    /// `1 − observed / expected`.
    drop: f64,
    /// `(expected − observed) / √(expected + spread²)`, the spread being
    /// the compared counts' sample variance.
    z: f64,
}

impl Fall {
    /// The fall, if the signature has the volume and shows up in most
    /// compared ranges.
    fn of(observed: u64, before: &[u64], options: &DiscoverOptions) -> Option<Fall> {
        let present = before.iter().filter(|n| **n > 0).count();
        if before.is_empty() || present * 2 < before.len() {
            return None;
        }
        let expected = median_u64(before);
        if expected < options.min_expected {
            return None;
        }
        let n = before.len() as f64;
        let mean = before.iter().map(|x| *x as f64).sum::<f64>() / n;
        let spread2 = if before.len() > 1 {
            before
                .iter()
                .map(|x| (*x as f64 - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0)
        } else {
            0.0
        };
        let o = observed as f64;
        Some(Fall {
            observed,
            expected,
            drop: 1.0 - o / expected,
            z: (expected - o) / (expected + spread2).sqrt(),
        })
    }

    fn loss(&self) -> f64 {
        self.expected - self.observed as f64
    }
}

/// A signature that fell.
#[derive(Debug, Clone, PartialEq)]
struct Screened {
    answer: Answer,
    prefix: Vec<String>,
    /// `prefix/**`, else exactly `prefix`.
    any: bool,
    fall: Fall,
}

impl Screened {
    fn pattern(&self) -> String {
        pattern_text(&self.prefix, self.any)
    }

    /// `GET /blog/** 2xx`, `POST /login 3xx → /dashboard`.
    fn signature(&self) -> String {
        signature_text(&self.answer, &self.pattern())
    }

    /// Whether `self` holds every request `other` counts.
    fn covers(&self, other: &Screened) -> bool {
        self.any
            && self.answer == other.answer
            && other.prefix.starts_with(&self.prefix)
            && self != other
    }

    /// Whether `self`, ranked higher, makes `other` redundant: `other`
    /// lies inside it and fell no more (the wider metric has the volume),
    /// or `other` holds it and lost little more than it did.
    fn explains(&self, other: &Screened) -> bool {
        const SAME_DROP: f64 = 0.05;
        const SAME_LOSS: f64 = 1.25;
        (self.covers(other) && other.fall.drop <= self.fall.drop + SAME_DROP)
            || (other.covers(self) && other.fall.loss() <= self.fall.loss() * SAME_LOSS)
    }
}

fn signature_text(answer: &Answer, pattern: &str) -> String {
    let mut s = format!("{} {pattern} {}", answer.method, answer.class.label());
    if let Some(to) = &answer.location {
        s.push_str(" → ");
        s.push_str(to);
    }
    s
}

/// A candidate metric and how it did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// `GET /blog/** 2xx`.
    pub signature: String,
    pub metric: String,
    pub rule: String,
    /// Its count in the incident's range, as the metric counts it.
    pub during: u64,
    /// The median of its counts in the compared ranges.
    pub usual: f64,
    /// `1 − during / usual`.
    pub drop: f64,
    /// When its rule first fired in the incident's range.
    pub fired: Option<i64>,
    /// Its rule's firings away from the incident (beyond
    /// [`RELATED_MARGIN_SECS`] of it).
    pub false_alerts: Vec<Episode>,
    /// The `[[metric]]` and `[[alert]]` blocks to paste.
    pub toml: String,
}

/// What discover found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Discovery {
    pub incident: Incident,
    /// Starts of the compared ranges.
    pub compared: Vec<i64>,
    pub seen: Seen,
    /// Signatures with the volume to judge.
    pub considered: usize,
    /// Of those, the ones that fell (explained ones left out).
    pub fell: usize,
    /// Best first.
    pub candidates: Vec<Candidate>,
    /// The configured rule that fired first in the incident's range.
    pub configured: Option<Episode>,
    /// Configured rules judged.
    pub configured_rules: usize,
    /// The range the rules were judged over.
    pub judged: (i64, i64),
}

/// Longest metric name (as `bpm.toml` allows).
const MAX_NAME: usize = 64;

/// A metric name for a signature, not among `taken`.
fn metric_name(s: &Screened, taken: &dyn Fn(&str) -> bool) -> String {
    let mut words = vec![s.answer.method.to_ascii_lowercase()];
    if s.prefix.is_empty() {
        words.push(if s.any { "all" } else { "home" }.to_string());
    }
    for seg in &s.prefix {
        words.push(if seg == "*" {
            "any".into()
        } else {
            seg.replace(':', "")
        });
    }
    words.push(s.answer.class.label().to_string());
    if let Some(to) = &s.answer.location {
        words.push("to".into());
        words.push(to.clone());
    }
    let mut name = String::new();
    for ch in words.join("_").chars() {
        let c = ch.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        if !(c == '_' && (name.is_empty() || name.ends_with('_'))) {
            name.push(c);
        }
    }
    let mut name = name.trim_end_matches('_').to_string();
    // Room for the rule's `_drop` and a `_N` to make it unique.
    name.truncate(MAX_NAME - 8);
    let name = name.trim_end_matches('_').to_string();
    if !taken(&name) {
        return name;
    }
    (2..)
        .map(|i| format!("{name}_{i}"))
        .find(|n| !taken(n))
        .unwrap_or(name)
}

/// The candidate's `[[metric]]` block.
fn metric_toml(s: &Screened, name: &str, incident: Incident, source: &str) -> String {
    let mut m = format!(
        "{{ method = {}, path = {}, status = {}",
        toml_string(&s.answer.method),
        toml_string(&s.pattern()),
        s.answer.class.toml(&s.answer.method)
    );
    if let Some(to) = &s.answer.location {
        m.push_str(&format!(", location = {}", toml_string(to)));
    }
    m.push_str(" }");
    let description = format!(
        "{} (found by bpm-edge discover in {source}: {:.0} % fewer during {} .. {}).",
        s.signature(),
        s.fall.drop * 100.0,
        format_time(incident.from),
        format_time(incident.to)
    );
    format!(
        "[[metric]]\nname = {}\nstage = \"other\"  # or retention, activation, revenue, referral\ndescription = {}\nmatch = {m}\ncount = [\"browser\", \"client\"]\n",
        toml_string(name),
        toml_string(&description),
    )
}

/// The candidate's rule: `bpm.toml`'s critical defaults (as its checker
/// sets them), to the receivers the first configured critical rule pages.
fn candidate_rule(config: &Config, name: &str, metric: &str) -> Option<AlertRule> {
    let text = format!(
        "[site]\nname = \"discover\"\n[[metric]]\nname = {m}\nstage = \"other\"\ndescription = \"-\"\nmatch = {{ path = \"/\" }}\n[[alert]]\nname = {n}\nmetric = {m}\nseverity = \"critical\"\n",
        m = toml_string(metric),
        n = toml_string(name)
    );
    let mut rule = parse_toml(&text, "discover")
        .ok()?
        .alerts
        .into_iter()
        .next()?;
    rule.receivers = config
        .alerts
        .iter()
        .find(|r| r.severity == Severity::Critical && r.by.is_none())
        .map(|r| r.receivers.clone())
        .unwrap_or_default();
    Some(rule)
}

/// Takes one logged request: its time (Unix seconds) and facts.
pub type Visit<'a> = dyn FnMut(i64, &RequestFacts, &ResponseFacts) + 'a;

/// Reads every request of the log, for each pass: calls the visitor with
/// each request's time and facts.
pub type ReadLog<'a> = dyn FnMut(&mut Visit<'_>) -> Result<(), String> + 'a;

/// Runs discover over the log `read` gives (`log_name`, for the proposed
/// metrics' descriptions), with the operator's config (`config_text`, from
/// `config_file`).
pub fn discover(
    config_text: &str,
    config_file: &str,
    log_name: &str,
    read: &mut ReadLog,
    incident: Incident,
    options: &DiscoverOptions,
) -> Result<Discovery, DiscoverError> {
    if incident.to <= incident.from {
        return Err(DiscoverError::EmptyIncident);
    }
    let config =
        parse_toml(config_text, config_file).map_err(|e| DiscoverError::Config(e.to_string()))?;
    let mut first = Discoverer::new(&config.site.prefix);
    read(&mut |at, req, resp| first.add(at, req, resp)).map_err(DiscoverError::Read)?;
    let inside = |t: Option<i64>, after: bool| {
        t.is_some_and(|t| {
            if after {
                t >= incident.from
            } else {
                t < incident.to
            }
        })
    };
    if !inside(first.last, true) || !inside(first.first, false) {
        return Err(DiscoverError::IncidentOutsideLog {
            first: first.first,
            last: first.last,
        });
    }
    let compared = first.compared(incident, &config);
    if compared.len() < 2 {
        return Err(DiscoverError::TooLittleHistory {
            compared: compared.len(),
        });
    }
    let (considered, fell) = first.screen(incident, &compared, options);
    let shortlisted: Vec<&Screened> = fell.iter().take(options.shortlist).collect();

    // The candidates' TOML, appended to the operator's own file.
    let mut names: Vec<(String, String)> = Vec::new();
    let mut appended = String::new();
    for s in &shortlisted {
        let taken = |n: &str| {
            config.metric(n).is_some()
                || config.alert(&format!("{n}_drop")).is_some()
                || names.iter().any(|(m, _)| m == n)
        };
        let metric = metric_name(s, &taken);
        let rule =
            candidate_rule(&config, &format!("{metric}_drop"), &metric).ok_or_else(|| {
                DiscoverError::Config(format!("no rule can be made for metric {metric:?} (a bug)"))
            })?;
        let block = format!(
            "{}\n{}",
            metric_toml(s, &metric, incident, log_name),
            rule_toml(&rule)
        );
        appended.push('\n');
        appended.push_str(&block);
        names.push((metric, block));
    }
    let merged_text = format!("{config_text}\n{appended}");
    let merged = parse_toml(&merged_text, config_file).map_err(|e| {
        DiscoverError::Config(format!("the proposed TOML does not check (a bug): {e}"))
    })?;

    // Second pass: what the worker would count with the candidates added.
    let classifier = Classifier::new(merged.clone());
    let mut replay = Replay::default();
    let mut hits = Vec::new();
    read(&mut |at, req, resp| replay.add(&classifier, at, req, resp, &mut hits))
        .map_err(DiscoverError::Read)?;
    let judged_to = first
        .last
        .map_or(incident.to, |l| Resolution::Minute.floor(l) + MINUTE);
    let range = (None, Some(judged_to));

    let related = |e: &Episode| {
        e.fired >= incident.from - RELATED_MARGIN_SECS
            && e.fired < incident.to + RELATED_MARGIN_SECS
    };
    let caught = |e: &Episode| (incident.from..incident.to).contains(&e.fired);

    let mut own = config.clone();
    own.metrics = merged.metrics.clone();
    let configured_rules = own.alerts.len();
    let configured = if own.alerts.is_empty() {
        None
    } else {
        rule_backtest::run(&own, &replay, None, range, &[])
            .episodes()
            .into_iter()
            .find(caught)
    };

    let mut candidates_config = merged.clone();
    candidates_config
        .alerts
        .retain(|r| names.iter().any(|(m, _)| r.metric == *m));
    let run = rule_backtest::run(&candidates_config, &replay, None, range, &[]);
    let episodes = run.episodes();
    let judged = (run.from, run.to);

    let count_in = |metric: &str, (a, b): (i64, i64)| -> u64 {
        replay
            .counts
            .range((a, String::new())..(b, String::new()))
            .filter(|((_, m), _)| m == metric)
            .map(|(_, n)| *n)
            .sum()
    };
    let mut candidates: Vec<Candidate> = shortlisted
        .iter()
        .zip(&names)
        .map(|(s, (metric, toml))| {
            let rule = format!("{metric}_drop");
            let mine: Vec<&Episode> = episodes.iter().filter(|e| e.rule == rule).collect();
            let during = count_in(metric, (incident.from, incident.to));
            let before: Vec<u64> = compared.iter().map(|r| count_in(metric, *r)).collect();
            let usual = median_u64(&before);
            Candidate {
                signature: s.signature(),
                metric: metric.clone(),
                rule,
                during,
                usual,
                drop: if usual > 0.0 {
                    1.0 - during as f64 / usual
                } else {
                    0.0
                },
                fired: mine.iter().find(|e| caught(e)).map(|e| e.fired),
                false_alerts: mine
                    .iter()
                    .filter(|e| !related(e))
                    .map(|e| (*e).clone())
                    .collect(),
                toml: toml.clone(),
            }
        })
        .collect();
    candidates.sort_by(|a, b| {
        let key = |c: &Candidate| {
            (
                c.fired.is_none(),
                c.false_alerts.len(),
                -((c.drop * 20.0).round() as i64),
                c.fired.unwrap_or(i64::MAX),
            )
        };
        key(a)
            .cmp(&key(b))
            .then(b.usual.total_cmp(&a.usual))
            .then_with(|| a.signature.cmp(&b.signature))
    });
    Ok(Discovery {
        incident,
        compared: compared.iter().map(|(a, _)| *a).collect(),
        seen: first.seen,
        considered,
        fell: fell.len(),
        candidates,
        configured,
        configured_rules,
        judged,
    })
}

/// The median of counts (0 for none).
fn median_u64(values: &[u64]) -> f64 {
    let v: Vec<f64> = values.iter().map(|n| *n as f64).collect();
    median(&v).unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
