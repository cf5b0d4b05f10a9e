//! The BPM configuration: what `bpm.toml` may say, how it is validated, and
//! the compiled form the classifier and the worker use.
//!
//! `bpm.toml` is parsed and validated natively (by `build.rs` when the worker
//! is built, and by `bpm-edge check-config`), so every invalid field is
//! reported with its line and column before anything is deployed. The worker
//! receives the compiled [`Config`] as JSON and never parses TOML itself,
//! which keeps a TOML parser out of the wasm binary.

#[cfg(not(target_arch = "wasm32"))]
mod checker;
mod error;
#[cfg(not(target_arch = "wasm32"))]
mod names;
pub mod pattern;
pub mod rules;
pub mod sitetime;

pub use error::{ConfigError, ConfigErrors};

use crate::config::pattern::PathPattern;
use crate::config::rules::{AlertRule, AlertSettings, Receiver};
use crate::config::sitetime::SiteTime;
use crate::count::agent::AgentKind;
use serde::{Deserialize, Serialize};

/// The five stages a metric belongs to (RARR, plus `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Retention,
    Activation,
    Revenue,
    Referral,
    Other,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Retention,
        Stage::Activation,
        Stage::Revenue,
        Stage::Referral,
        Stage::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Retention => "retention",
            Stage::Activation => "activation",
            Stage::Revenue => "revenue",
            Stage::Referral => "referral",
            Stage::Other => "other",
        }
    }
}

/// Dimensions a counted metric may keep besides status class and latency,
/// which every metric keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralDimension {
    Source,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Landing,
}

impl ReferralDimension {
    pub const ALL: [ReferralDimension; 5] = [
        ReferralDimension::Source,
        ReferralDimension::UtmSource,
        ReferralDimension::UtmMedium,
        ReferralDimension::UtmCampaign,
        ReferralDimension::Landing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralDimension::Source => "source",
            ReferralDimension::UtmSource => "utm_source",
            ReferralDimension::UtmMedium => "utm_medium",
            ReferralDimension::UtmCampaign => "utm_campaign",
            ReferralDimension::Landing => "landing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A response-status condition: a class (`2xx`) or one exact code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusMatch {
    Class(u8),
    Code(u16),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Class(c) => status / 100 == u16::from(c),
            StatusMatch::Code(code) => status == code,
        }
    }
}

/// A condition on one query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryCondition {
    /// The parameter is present, with any value (`"*"` in the config).
    Present,
    /// The parameter has exactly this (decoded) value.
    Equals(String),
}

/// A referrer-host condition: `example.com` exactly or `*.example.com`
/// (the domain itself and every subdomain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPattern {
    Exact(String),
    Domain(String),
}

impl HostPattern {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Domain(d) => {
                host.eq_ignore_ascii_case(d)
                    || (host.len() > d.len()
                        && host
                            .get(host.len() - d.len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(d))
                        && host.as_bytes().get(host.len() - d.len() - 1) == Some(&b'.'))
            }
        }
    }
}

/// The request/response conditions of a counted metric; all must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRule {
    /// Upper-case methods; empty means any method.
    pub methods: Vec<String>,
    /// At least one pattern; any may match.
    pub paths: Vec<PathPattern>,
    /// Empty means any status.
    pub statuses: Vec<StatusMatch>,
    /// Pattern the path of the response's `Location` header must match.
    pub location: Option<PathPattern>,
    pub query: Vec<(String, QueryCondition)>,
    /// Empty means any referrer (or none).
    pub referrer_hosts: Vec<HostPattern>,
}

/// `numerator / denominator × scale`, judged only with enough denominator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioDef {
    pub numerator: String,
    pub denominator: String,
    pub scale: f64,
    pub min_denominator: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricKind {
    Counted {
        rule: MatchRule,
        dimensions: Vec<ReferralDimension>,
        /// The agent kinds whose hits the metric counts (the others are
        /// tallied apart per kind), without duplicates, never empty.
        count: Vec<AgentKind>,
    },
    Ratio(RatioDef),
}

/// The agent kinds a counted metric of `stage` counts when its `count` is
/// not given: browsers for referral (page views are people), browsers and
/// clients (an app's login is a login) for every other stage.
pub fn default_count(stage: Stage) -> Vec<AgentKind> {
    match stage {
        Stage::Referral => vec![AgentKind::Browser],
        _ => vec![AgentKind::Browser, AgentKind::Client],
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub stage: Stage,
    pub description: String,
    pub owner: String,
    pub runbook: String,
    pub kind: MetricKind,
}

impl Metric {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MetricKind::Counted { .. } => "metric",
            MetricKind::Ratio(_) => "ratio",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// Names the Durable Objects (`{name}:{shard}`); changing it starts empty.
    pub name: String,
    /// The site's own hosts: referrers from these are internal navigation.
    pub hosts: Vec<String>,
    /// Reserved path prefix for bpm-edge's own endpoints, e.g. `/_bpm`.
    pub prefix: String,
    /// Public base URL of the site (for links in alerts), e.g.
    /// `https://www.example.com`; empty: links are relative.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSettings {
    pub shards: u32,
    pub minute_retention_days: u32,
    pub hour_retention_days: u32,
    /// 0 keeps day buckets forever.
    pub day_retention_days: u32,
    /// K: distinct values kept per metric, dimension and hour (rest: `other`).
    pub max_dimension_values: u32,
    pub flush_interval_ms: u32,
    pub flush_max_events: u32,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            shards: 4,
            minute_retention_days: 8,
            hour_retention_days: 400,
            day_retention_days: 0,
            max_dimension_values: 50,
            flush_interval_ms: 20_000,
            flush_max_events: 1000,
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub site: Site,
    /// The site's time zone (`site.timezone`), for seasonal baselines.
    pub time: SiteTime,
    pub storage: StorageSettings,
    pub metrics: Vec<Metric>,
    pub alerting: AlertSettings,
    pub receivers: Vec<Receiver>,
    pub alerts: Vec<AlertRule>,
}

impl Config {
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    pub fn alert(&self, name: &str) -> Option<&AlertRule> {
        self.alerts.iter().find(|r| r.name == name)
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    /// The dashboard's base URL: `{site.url}{prefix}/`.
    pub fn dashboard_url(&self) -> String {
        format!(
            "{}{}/",
            self.site.url.trim_end_matches('/'),
            self.site.prefix
        )
    }

    /// Reads the compiled form produced at build time.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Limits on what a config may declare.
pub const MAX_METRICS: usize = 1000;

#[cfg(not(target_arch = "wasm32"))]
pub use parse::parse_toml;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod parse {
    use super::*;
    use crate::config::checker::{line_col, Checker};
    use crate::config::names::{valid_host, valid_metric_name, valid_site_name};
    use crate::config::pattern::TrailingSlash;
    use crate::config::rules::parse as rules;
    use std::collections::BTreeMap;
    use std::ops::Range;
    use toml::{Spanned, Value};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawConfig {
        site: Option<Spanned<RawSite>>,
        storage: Option<Spanned<RawStorage>>,
        #[serde(default, rename = "metric")]
        metrics: Vec<Spanned<RawMetric>>,
        alerting: Option<Spanned<rules::RawAlerting>>,
        #[serde(default, rename = "receiver")]
        receivers: Vec<Spanned<rules::RawReceiver>>,
        #[serde(default, rename = "alert")]
        alerts: Vec<Spanned<rules::RawRule>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawSite {
        name: Option<Spanned<String>>,
        hosts: Option<Spanned<Vec<String>>>,
        prefix: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        url: Option<Spanned<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawStorage {
        shards: Option<Spanned<i64>>,
        minute_retention_days: Option<Spanned<i64>>,
        hour_retention_days: Option<Spanned<i64>>,
        day_retention_days: Option<Spanned<i64>>,
        max_dimension_values: Option<Spanned<i64>>,
        flush_interval_ms: Option<Spanned<i64>>,
        flush_max_events: Option<Spanned<i64>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawMetric {
        name: Option<Spanned<String>>,
        stage: Option<Spanned<String>>,
        description: Option<Spanned<String>>,
        owner: Option<Spanned<String>>,
        runbook: Option<Spanned<String>>,
        #[serde(rename = "match")]
        rule: Option<Spanned<RawMatch>>,
        dimensions: Option<Spanned<Vec<String>>>,
        count: Option<Spanned<Vec<String>>>,
        numerator: Option<Spanned<String>>,
        denominator: Option<Spanned<String>>,
        scale: Option<Spanned<Value>>,
        min_denominator: Option<Spanned<i64>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawMatch {
        method: Option<Spanned<Value>>,
        path: Option<Spanned<Value>>,
        status: Option<Spanned<Value>>,
        location: Option<Spanned<String>>,
        query: Option<Spanned<BTreeMap<String, String>>>,
        referrer_host: Option<Spanned<Value>>,
        case_insensitive: Option<Spanned<bool>>,
        trailing_slash: Option<Spanned<String>>,
    }

    /// Parses and validates `text`; `file` names it in error messages.
    pub fn parse_toml(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
                return Err(ConfigErrors {
                    file: file.to_string(),
                    errors: vec![ConfigError {
                        line,
                        column,
                        field: "toml".into(),
                        message: e.message().trim().to_string(),
                    }],
                });
            }
        };
        let mut c = Checker {
            text,
            errors: Vec::new(),
        };
        let site = check_site(&mut c, raw.site.as_ref());
        let time = check_timezone(&mut c, raw.site.as_ref());
        let storage = check_storage(&mut c, raw.storage.as_ref());
        let metrics = check_metrics(&mut c, &raw.metrics);
        let alerting = rules::check_alerting(&mut c, raw.alerting.as_ref());
        let receivers = rules::check_receivers(&mut c, &raw.receivers);
        let alerts = rules::check_rules(
            &mut c,
            &raw.alerts,
            &metrics,
            &receivers,
            raw.receivers.len(),
        );
        if c.errors.is_empty() {
            Ok(Config {
                site,
                time,
                storage,
                metrics,
                alerting,
                receivers,
                alerts,
            })
        } else {
            c.errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors {
                file: file.to_string(),
                errors: c.errors,
            })
        }
    }

    fn check_site(c: &mut Checker, raw: Option<&Spanned<RawSite>>) -> Site {
        let mut site = Site {
            name: "default".into(),
            hosts: Vec::new(),
            prefix: "/_bpm".into(),
            url: String::new(),
        };
        let Some(raw) = raw else { return site };
        let raw = raw.get_ref();
        if let Some(name) = &raw.name {
            let n = name.get_ref();
            if valid_site_name(n) {
                site.name = n.clone();
            } else {
                c.error(
                    name.span(),
                    "site.name",
                    "must be 1-64 characters of letters, digits, '-', '_' or '.'",
                );
            }
        }
        if let Some(hosts) = &raw.hosts {
            for h in hosts.get_ref() {
                let lower = h.trim().to_ascii_lowercase();
                if valid_host(&lower) {
                    site.hosts.push(lower);
                } else {
                    c.error(
                        hosts.span(),
                        "site.hosts",
                        format!("{h:?} is not a host name (no scheme, port or path)"),
                    );
                }
            }
        }
        if let Some(prefix) = &raw.prefix {
            let p = prefix.get_ref();
            let ok = p.len() >= 2
                && p.len() <= 64
                && p.starts_with('/')
                && !p.ends_with('/')
                && !p.contains("//")
                && p.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '/' | '_' | '-' | '.'));
            if ok {
                site.prefix = p.clone();
            } else {
                c.error(
                    prefix.span(),
                    "site.prefix",
                    "must look like \"/_bpm\": start with '/', no trailing '/', letters, digits, '_', '-', '.'",
                );
            }
        }
        if let Some(u) = &raw.url {
            let ok = url::Url::parse(u.get_ref())
                .map(|p| {
                    matches!(p.scheme(), "http" | "https")
                        && p.host_str().is_some()
                        && p.query().is_none()
                        && p.path().trim_end_matches('/').is_empty()
                })
                .unwrap_or(false);
            if ok {
                site.url = u.get_ref().trim_end_matches('/').to_string();
            } else {
                c.error(
                    u.span(),
                    "site.url",
                    "must be the site's base URL, like \"https://www.example.com\" (no path)",
                );
            }
        }
        site
    }

    fn check_timezone(c: &mut Checker, raw: Option<&Spanned<RawSite>>) -> SiteTime {
        let Some(zone) = raw.and_then(|r| r.get_ref().timezone.as_ref()) else {
            return SiteTime::utc();
        };
        match crate::config::sitetime::lookup(zone.get_ref()) {
            Some(t) => t,
            None => {
                c.error(
                    zone.span(),
                    "site.timezone",
                    format!(
                        "{:?} is not an IANA time zone (like \"Europe/Berlin\" or \"UTC\")",
                        zone.get_ref()
                    ),
                );
                SiteTime::utc()
            }
        }
    }

    fn check_storage(c: &mut Checker, raw: Option<&Spanned<RawStorage>>) -> StorageSettings {
        let d = StorageSettings::default();
        let Some(raw) = raw else { return d };
        let r = raw.get_ref();
        StorageSettings {
            shards: c.int_in(&r.shards, "storage.shards", 1..=64, d.shards),
            minute_retention_days: c.int_in(
                &r.minute_retention_days,
                "storage.minute_retention_days",
                2..=31,
                d.minute_retention_days,
            ),
            hour_retention_days: c.int_in(
                &r.hour_retention_days,
                "storage.hour_retention_days",
                2..=3660,
                d.hour_retention_days,
            ),
            day_retention_days: c.int_in(
                &r.day_retention_days,
                "storage.day_retention_days",
                0..=36600,
                d.day_retention_days,
            ),
            max_dimension_values: c.int_in(
                &r.max_dimension_values,
                "storage.max_dimension_values",
                1..=1000,
                d.max_dimension_values,
            ),
            flush_interval_ms: c.int_in(
                &r.flush_interval_ms,
                "storage.flush_interval_ms",
                // At most flush_queue::MAX_WINDOW_MS: the window and the
                // send budget must fit in one `wait_until`.
                50..=20_000,
                d.flush_interval_ms,
            ),
            flush_max_events: c.int_in(
                &r.flush_max_events,
                "storage.flush_max_events",
                1..=100_000,
                d.flush_max_events,
            ),
        }
    }

    fn check_metrics(c: &mut Checker, raw: &[Spanned<RawMetric>]) -> Vec<Metric> {
        if raw.len() > MAX_METRICS {
            c.error(
                0..0,
                "metric",
                format!("at most {MAX_METRICS} metrics may be defined"),
            );
        }
        // Names first, so ratios can refer to metrics defined after them.
        let names: Vec<Option<String>> = raw
            .iter()
            .map(|m| m.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
            .collect();
        let mut out = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let m = spanned.get_ref();
            let at = spanned.span();
            let label = match &m.name {
                Some(n) => format!("metric {:?}", n.get_ref()),
                None => format!("metric[{i}]"),
            };
            let f = |field: &str| format!("{label}.{field}");
            let name = match &m.name {
                None => {
                    c.error(at.clone(), f("name"), "is required");
                    None
                }
                Some(n) if !valid_metric_name(n.get_ref()) => {
                    c.error(
                        n.span(),
                        f("name"),
                        "must start with a-z and contain only a-z, 0-9 and '_' (at most 64)",
                    );
                    None
                }
                Some(n) => {
                    if names
                        .iter()
                        .take(i)
                        .any(|other| other.as_deref() == Some(n.get_ref().as_str()))
                    {
                        c.error(n.span(), f("name"), "is defined more than once");
                    }
                    Some(n.get_ref().clone())
                }
            };
            let stage = match &m.stage {
                None => {
                    c.error(
                        at.clone(),
                        f("stage"),
                        "is required (retention, activation, revenue, referral or other)",
                    );
                    None
                }
                Some(s) => {
                    let found = Stage::ALL.into_iter().find(|st| st.as_str() == s.get_ref());
                    if found.is_none() {
                        c.error(
                            s.span(),
                            f("stage"),
                            format!(
                                "{:?} is not a stage (retention, activation, revenue, referral or other)",
                                s.get_ref()
                            ),
                        );
                    }
                    found
                }
            };
            let description = match &m.description {
                Some(d) if !d.get_ref().trim().is_empty() => d.get_ref().trim().to_string(),
                Some(d) => {
                    c.error(d.span(), f("description"), "must not be empty");
                    String::new()
                }
                None => {
                    c.error(at.clone(), f("description"), "is required");
                    String::new()
                }
            };
            let owner = m
                .owner
                .as_ref()
                .map(|o| o.get_ref().trim().to_string())
                .unwrap_or_default();
            let runbook = match &m.runbook {
                Some(r) => {
                    let ok = url::Url::parse(r.get_ref())
                        .map(|u| matches!(u.scheme(), "http" | "https"))
                        .unwrap_or(false);
                    if !ok {
                        c.error(r.span(), f("runbook"), "must be an http(s) URL");
                    }
                    r.get_ref().clone()
                }
                None => String::new(),
            };
            let is_ratio = m.numerator.is_some() || m.denominator.is_some();
            let kind = match (&m.rule, is_ratio) {
                (Some(rule), true) => {
                    c.error(
                        rule.span(),
                        f("match"),
                        "a metric is either counted (`match`) or a ratio (`numerator`/`denominator`), not both",
                    );
                    None
                }
                (None, false) => {
                    c.error(
                        at.clone(),
                        f("match"),
                        "is required (or `numerator` and `denominator` for a ratio)",
                    );
                    None
                }
                (Some(rule), false) => {
                    let rule = check_rule(c, rule, &label);
                    let dimensions = check_dimensions(c, m, stage, &label);
                    let count = check_count(c, m, stage, &label);
                    rule.map(|rule| MetricKind::Counted {
                        rule,
                        dimensions,
                        count,
                    })
                }
                (None, true) => {
                    check_ratio(c, m, at.clone(), &label, raw, &names).map(MetricKind::Ratio)
                }
            };
            if !is_ratio {
                for (field, present) in [
                    ("scale", m.scale.as_ref().map(|s| s.span())),
                    (
                        "min_denominator",
                        m.min_denominator.as_ref().map(|s| s.span()),
                    ),
                ] {
                    if let Some(span) = present {
                        c.error(span, f(field), "only applies to ratio metrics");
                    }
                }
            }
            if let (Some(name), Some(stage), Some(kind)) = (name, stage, kind) {
                out.push(Metric {
                    name,
                    stage,
                    description,
                    owner,
                    runbook,
                    kind,
                });
            }
        }
        out
    }

    fn check_dimensions(
        c: &mut Checker,
        m: &RawMetric,
        stage: Option<Stage>,
        label: &str,
    ) -> Vec<ReferralDimension> {
        match &m.dimensions {
            None if stage == Some(Stage::Referral) => ReferralDimension::ALL.to_vec(),
            None => Vec::new(),
            Some(dims) => {
                let mut out = Vec::new();
                for d in dims.get_ref() {
                    match ReferralDimension::parse(d) {
                        Some(dim) if !out.contains(&dim) => out.push(dim),
                        Some(_) => {}
                        None => c.error(
                            dims.span(),
                            format!("{label}.dimensions"),
                            format!(
                                "{d:?} is not a dimension (source, utm_source, utm_medium, utm_campaign, landing)"
                            ),
                        ),
                    }
                }
                out
            }
        }
    }

    /// `count`: which agent kinds a counted metric counts. Default: browsers
    /// for a referral metric (page views are people), browsers and clients
    /// (apps, API clients) otherwise.
    fn check_count(
        c: &mut Checker,
        m: &RawMetric,
        stage: Option<Stage>,
        label: &str,
    ) -> Vec<AgentKind> {
        let Some(kinds) = &m.count else {
            return stage.map(default_count).unwrap_or_default();
        };
        let mut out = Vec::new();
        for k in kinds.get_ref() {
            match AgentKind::parse(k) {
                Some(kind) if !out.contains(&kind) => out.push(kind),
                Some(_) => {}
                None => c.error(
                    kinds.span(),
                    format!("{label}.count"),
                    format!("{k:?} is not an agent kind (browser, client, bot)"),
                ),
            }
        }
        if kinds.get_ref().is_empty() {
            c.error(
                kinds.span(),
                format!("{label}.count"),
                "must name at least one agent kind (browser, client, bot)",
            );
        }
        out.sort();
        out
    }

    fn check_ratio(
        c: &mut Checker,
        m: &RawMetric,
        at: Range<usize>,
        label: &str,
        raw: &[Spanned<RawMetric>],
        names: &[Option<String>],
    ) -> Option<RatioDef> {
        let f = |field: &str| format!("{label}.{field}");
        let mut part = |field: &str, v: &Option<Spanned<String>>| -> Option<String> {
            let Some(v) = v else {
                c.error(at.clone(), f(field), "is required for a ratio metric");
                return None;
            };
            let target = v.get_ref();
            let idx = names.iter().position(|n| n.as_deref() == Some(target));
            match idx.and_then(|i| raw.get(i)) {
                None => {
                    c.error(
                        v.span(),
                        f(field),
                        format!("{target:?} is not a metric defined in this file"),
                    );
                    None
                }
                Some(other) if other.get_ref().rule.is_none() => {
                    c.error(
                        v.span(),
                        f(field),
                        format!("{target:?} is a ratio; a ratio is built from counted metrics"),
                    );
                    None
                }
                Some(_) => Some(target.clone()),
            }
        };
        let numerator = part("numerator", &m.numerator);
        let denominator = part("denominator", &m.denominator);
        let scale = match &m.scale {
            None => Some(100.0),
            Some(s) => {
                let v = match s.get_ref() {
                    Value::Integer(i) => Some(*i as f64),
                    Value::Float(x) => Some(*x),
                    _ => None,
                };
                match v {
                    Some(x) if x.is_finite() && x > 0.0 => Some(x),
                    _ => {
                        c.error(s.span(), f("scale"), "must be a positive number");
                        None
                    }
                }
            }
        };
        let min_denominator = match &m.min_denominator {
            None => Some(0),
            Some(v) => match u64::try_from(*v.get_ref()) {
                Ok(n) => Some(n),
                Err(_) => {
                    c.error(v.span(), f("min_denominator"), "must be 0 or more");
                    None
                }
            },
        };
        if let Some(k) = &m.count {
            c.error(
                k.span(),
                f("count"),
                "a ratio counts nothing itself (its numerator and denominator do)",
            );
        }
        if m.dimensions.is_some() {
            if let Some(d) = &m.dimensions {
                c.error(
                    d.span(),
                    f("dimensions"),
                    "a ratio has no dimensions of its own",
                );
            }
        }
        Some(RatioDef {
            numerator: numerator?,
            denominator: denominator?,
            scale: scale?,
            min_denominator: min_denominator?,
        })
    }

    fn check_rule(c: &mut Checker, spanned: &Spanned<RawMatch>, label: &str) -> Option<MatchRule> {
        let r = spanned.get_ref();
        let f = |field: &str| format!("{label}.match.{field}");
        let before = c.errors.len();
        let mut methods = Vec::new();
        if let Some(m) = &r.method {
            for s in c.strings(m, &f("method")) {
                let up = s.trim().to_ascii_uppercase();
                if !up.is_empty() && up.len() <= 16 && up.chars().all(|ch| ch.is_ascii_uppercase())
                {
                    if !methods.contains(&up) {
                        methods.push(up);
                    }
                } else {
                    c.error(
                        m.span(),
                        f("method"),
                        format!("{s:?} is not an HTTP method"),
                    );
                }
            }
        }
        let case_insensitive = r.case_insensitive.as_ref().is_some_and(|b| *b.get_ref());
        let slash = match &r.trailing_slash {
            None => TrailingSlash::Ignore,
            Some(s) => match s.get_ref().as_str() {
                "ignore" => TrailingSlash::Ignore,
                "strict" => TrailingSlash::Strict,
                other => {
                    c.error(
                        s.span(),
                        f("trailing_slash"),
                        format!("{other:?} is not \"ignore\" or \"strict\""),
                    );
                    TrailingSlash::Ignore
                }
            },
        };
        let mut paths = Vec::new();
        match &r.path {
            None => c.error(spanned.span(), f("path"), "is required"),
            Some(p) => {
                let list = c.strings(p, &f("path"));
                if list.is_empty() && c.errors.len() == before {
                    c.error(p.span(), f("path"), "must name at least one path");
                }
                for s in list {
                    match PathPattern::parse(&s, case_insensitive, slash) {
                        Ok(pat) => paths.push(pat),
                        Err(e) => c.error(p.span(), f("path"), format!("{s:?}: {e}")),
                    }
                }
            }
        }
        let mut statuses = Vec::new();
        if let Some(st) = &r.status {
            let items: Vec<Value> = match st.get_ref() {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for item in items {
                match parse_status(&item) {
                    Some(s) => statuses.push(s),
                    None => c.error(
                        st.span(),
                        f("status"),
                        format!(
                            "{} is not a status class (\"1xx\".. \"5xx\") or a code (100-599)",
                            show_value(&item)
                        ),
                    ),
                }
            }
        }
        let location = match &r.location {
            None => None,
            Some(l) => match PathPattern::parse(l.get_ref(), case_insensitive, slash) {
                Ok(p) => Some(p),
                Err(e) => {
                    c.error(l.span(), f("location"), e.to_string());
                    None
                }
            },
        };
        let mut query = Vec::new();
        if let Some(q) = &r.query {
            for (k, v) in q.get_ref() {
                if k.is_empty() {
                    c.error(q.span(), f("query"), "a parameter name must not be empty");
                    continue;
                }
                let cond = if v == "*" {
                    QueryCondition::Present
                } else {
                    QueryCondition::Equals(v.clone())
                };
                query.push((k.clone(), cond));
            }
        }
        let mut referrer_hosts = Vec::new();
        if let Some(h) = &r.referrer_host {
            for s in c.strings(h, &f("referrer_host")) {
                let lower = s.trim().to_ascii_lowercase();
                let (domain, pat) = match lower.strip_prefix("*.") {
                    Some(d) => (d.to_string(), HostPattern::Domain(d.to_string())),
                    None => (lower.clone(), HostPattern::Exact(lower.clone())),
                };
                if valid_host(&domain) {
                    referrer_hosts.push(pat);
                } else {
                    c.error(
                        h.span(),
                        f("referrer_host"),
                        format!("{s:?} is not a host name or \"*.domain\""),
                    );
                }
            }
        }
        (c.errors.len() == before).then_some(MatchRule {
            methods,
            paths,
            statuses,
            location,
            query,
            referrer_hosts,
        })
    }

    fn show_value(v: &Value) -> String {
        match v {
            Value::String(s) => format!("{s:?}"),
            Value::Integer(i) => i.to_string(),
            other => other.type_str().to_string(),
        }
    }

    fn parse_status(v: &Value) -> Option<StatusMatch> {
        match v {
            Value::Integer(i) if (100..=599).contains(i) => {
                u16::try_from(*i).ok().map(StatusMatch::Code)
            }
            Value::String(s) => {
                let s = s.trim().to_ascii_lowercase();
                let b = s.as_bytes();
                if b.len() == 3 && s.get(1..) == Some("xx") && (b'1'..=b'5').contains(&b[0]) {
                    Some(StatusMatch::Class(b[0] - b'0'))
                } else {
                    s.parse::<u16>()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .map(StatusMatch::Code)
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[metric]]
name = "login_views"
stage = "retention"
description = "Views of the login page"
match = { method = "GET", path = "/login" }
"#;

    fn errors(text: &str) -> Vec<ConfigError> {
        parse_toml(text, "bpm.toml").unwrap_err().errors
    }

    fn one_error(text: &str) -> ConfigError {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
        errs.into_iter().next().unwrap()
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../../bpm.toml");
        let cfg = parse_toml(text, "bpm.toml").unwrap();
        for name in [
            "login_views",
            "dashboard_views",
            "logins",
            "signups",
            "subscriptions",
            "marketing_views",
            "login_success",
        ] {
            assert!(cfg.metric(name).is_some(), "{name} missing");
        }
        let ratio = cfg.metric("login_success").unwrap();
        match &ratio.kind {
            MetricKind::Ratio(r) => {
                assert_eq!(r.numerator, "dashboard_views");
                assert_eq!(r.denominator, "login_views");
                assert_eq!(r.scale, 100.0);
                assert_eq!(r.min_denominator, 20);
            }
            other => panic!("not a ratio: {other:?}"),
        }
        assert_eq!(
            cfg.metric("marketing_views").unwrap().stage,
            Stage::Referral
        );
    }

    #[test]
    fn defaults_apply_when_sections_are_missing() {
        let cfg = parse_toml(MINIMAL, "bpm.toml").unwrap();
        assert_eq!(cfg.site.prefix, "/_bpm");
        assert_eq!(cfg.storage, StorageSettings::default());
        let m = cfg.metric("login_views").unwrap();
        assert_eq!(m.kind_name(), "metric");
        match &m.kind {
            MetricKind::Counted {
                dimensions,
                rule,
                count,
            } => {
                assert!(dimensions.is_empty());
                assert_eq!(count, &[AgentKind::Browser, AgentKind::Client]);
                assert_eq!(rule.methods, vec!["GET"]);
            }
            _ => panic!(),
        }
    }

    fn counts(cfg: &Config, name: &str) -> Vec<AgentKind> {
        match &cfg.metric(name).unwrap().kind {
            MetricKind::Counted { count, .. } => count.clone(),
            MetricKind::Ratio(_) => panic!("{name} is a ratio"),
        }
    }

    #[test]
    fn count_defaults_by_stage_and_explicit_kinds() {
        let cfg = parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        use AgentKind::*;
        assert_eq!(counts(&cfg, "marketing_views"), [Browser]);
        for m in [
            "logins",
            "signups",
            "subscriptions",
            "login_views",
            "traffic",
        ] {
            assert_eq!(counts(&cfg, m), [Browser, Client], "{m}");
        }
        let text = "[[metric]]\nname = \"api\"\nstage = \"referral\"\ndescription = \"d\"\ncount = [\"bot\", \"client\", \"bot\"]\nmatch = { path = \"/\" }\n";
        let cfg = parse_toml(text, "t").unwrap();
        assert_eq!(counts(&cfg, "api"), [Client, Bot]);
        assert_eq!(Config::from_json(&cfg.to_json()).unwrap(), cfg);
    }

    #[test]
    fn count_errors_are_located_and_clear() {
        let bad = "[[metric]]\nname = \"m\"\nstage = \"other\"\ndescription = \"d\"\ncount = [\"browser\", \"robot\"]\nmatch = { path = \"/\" }\n";
        let e = parse_toml(bad, "t").unwrap_err().to_string();
        assert!(
            e.contains(
                "t:5:9: metric \"m\".count: \"robot\" is not an agent kind (browser, client, bot)"
            ),
            "{e}"
        );
        let empty = bad.replace("[\"browser\", \"robot\"]", "[]");
        let e = parse_toml(&empty, "t").unwrap_err().to_string();
        assert!(
            e.contains("metric \"m\".count: must name at least one agent kind"),
            "{e}"
        );
        let not_list = bad.replace("[\"browser\", \"robot\"]", "\"browser\"");
        assert!(parse_toml(&not_list, "t").is_err());
        let ratio = "[[metric]]\nname = \"a\"\nstage = \"other\"\ndescription = \"d\"\nmatch = { path = \"/\" }\n[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"a\"\ncount = [\"bot\"]\n";
        let e = parse_toml(ratio, "t").unwrap_err().to_string();
        assert!(
            e.contains("metric \"r\".count: a ratio counts nothing itself"),
            "{e}"
        );
    }

    #[test]
    fn json_round_trip_preserves_the_config() {
        let cfg = parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        assert_eq!(Config::from_json(&cfg.to_json()).unwrap(), cfg);
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let e = one_error("[[metric]]\nname = \"x\"\nstage = \n");
        assert_eq!(e.field, "toml");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn unknown_field_is_rejected_with_its_line() {
        let e = one_error(&format!("{MINIMAL}colour = \"red\"\n"));
        assert_eq!(e.field, "toml");
        assert!(e.message.contains("colour"), "{}", e.message);
        assert_eq!(e.line, 7);
    }

    #[test]
    fn missing_required_fields() {
        let errs = errors("[[metric]]\nowner = \"x\"\n");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"metric[0].name"));
        assert!(fields.contains(&"metric[0].stage"));
        assert!(fields.contains(&"metric[0].description"));
        assert!(fields.contains(&"metric[0].match"));
    }

    #[test]
    fn bad_name_stage_description_runbook() {
        let text = r#"
[[metric]]
name = "Login-Views"
stage = "retentoin"
description = "  "
runbook = "ftp://x"
match = { path = "/login" }
"#;
        let errs = errors(text);
        let by_line: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            by_line,
            vec![
                (3, "metric \"Login-Views\".name"),
                (4, "metric \"Login-Views\".stage"),
                (5, "metric \"Login-Views\".description"),
                (6, "metric \"Login-Views\".runbook"),
            ]
        );
    }

    #[test]
    fn duplicate_names() {
        let e = one_error(&format!("{MINIMAL}{MINIMAL}"));
        assert_eq!(e.field, "metric \"login_views\".name");
        assert!(e.message.contains("more than once"));
        assert_eq!(e.line, 9);
    }

    #[test]
    fn match_field_errors() {
        let cases = [
            (
                r#"match = { path = "login" }"#,
                "match.path",
                "start with '/'",
            ),
            (r#"match = { path = [] }"#, "match.path", "at least one"),
            (r#"match = { path = 3 }"#, "match.path", "found integer"),
            (
                r#"match = { method = "G3T", path = "/" }"#,
                "match.method",
                "HTTP method",
            ),
            (
                r#"match = { path = "/", status = "6xx" }"#,
                "match.status",
                "status class",
            ),
            (
                r#"match = { path = "/", status = [200, 700] }"#,
                "match.status",
                "700",
            ),
            (
                r#"match = { path = "/", location = "dashboard" }"#,
                "match.location",
                "start with '/'",
            ),
            (
                r#"match = { path = "/", referrer_host = "https://x.com/" }"#,
                "match.referrer_host",
                "host name",
            ),
            (
                r#"match = { path = "/", trailing_slash = "maybe" }"#,
                "match.trailing_slash",
                "strict",
            ),
            (
                r#"match = { path = "/a/**/b/**" }"#,
                "match.path",
                "at most once",
            ),
            (
                r#"match = { path = "/a", query = { "" = "x" } }"#,
                "match.query",
                "empty",
            ),
        ];
        for (rule, field, needle) in cases {
            let text = format!(
                "[[metric]]\nname = \"m\"\nstage = \"other\"\ndescription = \"d\"\n{rule}\n"
            );
            let e = one_error(&text);
            assert_eq!(e.field, format!("metric \"m\".{field}"), "{rule}");
            assert!(e.message.contains(needle), "{rule}: {}", e.message);
            assert_eq!(e.line, 5, "{rule}");
        }
    }

    #[test]
    fn status_classes_and_codes() {
        let text = "[[metric]]\nname = \"m\"\nstage = \"other\"\ndescription = \"d\"\nmatch = { path = \"/\", status = [\"2XX\", 302, \"404\"] }\n";
        let cfg = parse_toml(text, "f").unwrap();
        let MetricKind::Counted { rule, .. } = &cfg.metrics[0].kind else {
            panic!()
        };
        assert_eq!(
            rule.statuses,
            vec![
                StatusMatch::Class(2),
                StatusMatch::Code(302),
                StatusMatch::Code(404)
            ]
        );
        assert!(StatusMatch::Class(2).matches(204));
        assert!(!StatusMatch::Class(2).matches(302));
    }

    #[test]
    fn ratio_errors() {
        let base = "[[metric]]\nname = \"a\"\nstage = \"other\"\ndescription = \"d\"\nmatch = { path = \"/\" }\n";
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"nope\"\n"
        ));
        assert_eq!(e.field, "metric \"r\".denominator");
        assert_eq!(e.line, 11);
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\n"
        ));
        assert_eq!(e.field, "metric \"r\".denominator");
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"a\"\nscale = -1\n"
        ));
        assert_eq!(e.field, "metric \"r\".scale");
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"a\"\nmin_denominator = -5\n"
        ));
        assert_eq!(e.field, "metric \"r\".min_denominator");
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"a\"\nmatch = {{ path = \"/\" }}\n"
        ));
        assert!(e.message.contains("not both"));
        // A ratio of a ratio is refused.
        let e = one_error(&format!(
            "{base}[[metric]]\nname = \"r\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"a\"\ndenominator = \"a\"\n[[metric]]\nname = \"rr\"\nstage = \"other\"\ndescription = \"d\"\nnumerator = \"r\"\ndenominator = \"a\"\n"
        ));
        assert_eq!(e.field, "metric \"rr\".numerator");
        // scale on a counted metric is refused.
        let e = one_error(&format!("{base}scale = 2\n"));
        assert_eq!(e.field, "metric \"a\".scale");
    }

    #[test]
    fn site_and_storage_errors() {
        let text = "[site]\nname = \"my site\"\nprefix = \"/_bpm/\"\nhosts = [\"https://x.com\"]\n[storage]\nshards = 0\nminute_retention_days = 90\nmax_dimension_values = 5000\n";
        let errs = errors(text);
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (2, "site.name"),
                (3, "site.prefix"),
                (4, "site.hosts"),
                (6, "storage.shards"),
                (7, "storage.minute_retention_days"),
                (8, "storage.max_dimension_values"),
            ]
        );
    }

    #[test]
    fn dimensions_default_to_referral_set_for_referral_stage() {
        let text = "[[metric]]\nname = \"m\"\nstage = \"referral\"\ndescription = \"d\"\nmatch = { path = \"/\" }\n[[metric]]\nname = \"n\"\nstage = \"other\"\ndescription = \"d\"\ndimensions = [\"utm_source\", \"bogus\"]\nmatch = { path = \"/\" }\n";
        let e = one_error(text);
        assert_eq!(e.field, "metric \"n\".dimensions");
        assert!(e.message.contains("bogus"));
    }

    #[test]
    fn error_display_names_file_line_and_field() {
        let err = parse_toml(
            "[[metric]]\nname = \"x\"\nstage = \"nope\"\ndescription=\"d\"\nmatch={path=\"/\"}\n",
            "conf/bpm.toml",
        )
        .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("conf/bpm.toml:3:9: metric \"x\".stage: "),
            "{shown}"
        );
    }

    #[test]
    fn host_patterns() {
        let d = HostPattern::Domain("example.com".into());
        assert!(d.matches("example.com"));
        assert!(d.matches("news.EXAMPLE.com"));
        assert!(!d.matches("badexample.com"));
        let e = HostPattern::Exact("example.com".into());
        assert!(!e.matches("www.example.com"));
    }

    #[test]
    fn regression_status_with_a_multibyte_first_character_panicked() {
        // Found by tests/properties.rs (config::generated_file_with_random_values):
        // a three-byte status string whose first character is two bytes
        // was sliced inside that character.
        let text = "[[metric]]\nname = \"m\"\nstage = \"other\"\ndescription = \"d\"\nmatch = { path = \"/\", status = \"éx\" }\n";
        let e = one_error(text);
        assert_eq!(e.field, "metric \"m\".match.status");
        assert!(e.message.contains("is not a status class"), "{}", e.message);
    }
}
