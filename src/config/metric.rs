//! Metrics: what a `[[metric]]` table of `bpm.toml` may say, its
//! validation, and the compiled model the classifier counts by.
//!
//! A metric is counted (`match`: conditions on the request and response,
//! the referral dimensions it keeps, the agent kinds it counts) or the
//! ratio of two counted metrics. Invariants of a validated metric: its name
//! is unique in the file; a counted metric has at least one path pattern
//! and counts at least one agent kind, each once; a ratio's numerator and
//! denominator are counted metrics of the same file and its scale is
//! positive.

use crate::config::pattern::PathPattern;
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

    /// The counted metrics whose stored counts this one is made of: itself,
    /// or a ratio's numerator and denominator.
    pub fn counted_inputs(&self) -> Vec<String> {
        match &self.kind {
            MetricKind::Counted { .. } => vec![self.name.clone()],
            MetricKind::Ratio(r) => vec![r.numerator.clone(), r.denominator.clone()],
        }
    }
}

/// Limits on what a config may declare.
pub const MAX_METRICS: usize = 1000;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod parse {
    use super::*;
    use crate::config::checker::Checker;
    use crate::config::names::{valid_host, valid_metric_name};
    use crate::config::pattern::TrailingSlash;
    use std::collections::BTreeMap;
    use std::ops::Range;
    use toml::{Spanned, Value};

    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawMetric {
        pub(crate) name: Option<Spanned<String>>,
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

    #[derive(Clone, Deserialize)]
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

    pub fn check_metrics(c: &mut Checker, raw: &[Spanned<RawMetric>]) -> Vec<Metric> {
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
                    let ok = crate::config::url_text::parse_url(r.get_ref())
                        .map(|u| matches!(u.scheme().as_str(), "http" | "https"))
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
    use crate::config::test_fixtures::{errors, one_error, MINIMAL};
    use crate::config::{parse_toml, Config};

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
    fn dimensions_default_to_referral_set_for_referral_stage() {
        let text = "[[metric]]\nname = \"m\"\nstage = \"referral\"\ndescription = \"d\"\nmatch = { path = \"/\" }\n[[metric]]\nname = \"n\"\nstage = \"other\"\ndescription = \"d\"\ndimensions = [\"utm_source\", \"bogus\"]\nmatch = { path = \"/\" }\n";
        let e = one_error(text);
        assert_eq!(e.field, "metric \"n\".dimensions");
        assert!(e.message.contains("bogus"));
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
