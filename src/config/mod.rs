//! The BPM configuration: what `bpm.toml` may say, how it is validated, and
//! the compiled form the classifier and the worker use.
//!
//! `bpm.toml` is parsed and validated natively (by `build.rs` when the worker
//! is built, and by `bpm-edge check-config`), so every invalid field is
//! reported with its line and column before anything is deployed. The worker
//! receives the compiled [`Config`] as JSON and never parses TOML itself,
//! which keeps a TOML parser out of the wasm binary.
//!
//! One file per part of `bpm.toml`, each with its model and, natively, its
//! checks: this one the [`Config`] itself, `[site]` and `[storage]`, and
//! [`parse_deployment`], which walks the tables in order; `metric` the
//! `[[metric]]` tables; `rules` `[alerting]`, `[[receiver]]` and
//! `[[alert]]`; `digest` `[digest]`; `names` what every name may be;
//! `checker` and `error` how an invalid value is reported. `sites` holds
//! what a `[[sites]]` file compiles to (a [`Config`] per site) and which
//! site a request's host names. Dependencies go one way: this file uses
//! the others, `rules` uses `metric`, and none of them but `sites` uses
//! this file.

#[cfg(not(target_arch = "wasm32"))]
mod checker;
pub mod digest;
mod error;
pub mod metric;
#[cfg(not(target_arch = "wasm32"))]
mod names;
pub mod pattern;
pub mod rules;
pub mod sites;
pub mod sitetime;
#[cfg(test)]
mod test_fixtures;
pub mod url_text;

pub use error::{ConfigError, ConfigErrors};
/// The metric model, at the paths its users name it by (`config::Metric`):
/// a [`Config`] is mostly its metrics. (`metric::parse` is not re-exported:
/// this module's own `parse` shadows it.)
pub use metric::*;

use crate::config::digest::DigestSettings;
use crate::config::rules::{AlertRule, AlertSettings, Receiver};
use crate::config::sitetime::SiteTime;
use serde::{Deserialize, Serialize};

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
    /// When the BPM digest goes out (`[digest]`).
    #[serde(default)]
    pub digest: DigestSettings,
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

#[cfg(not(target_arch = "wasm32"))]
pub use parse::{parse_deployment, parse_toml};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod parse {
    use super::*;
    use crate::config::checker::{line_col, Checker};
    use crate::config::metric::parse as metric;
    use crate::config::names::{valid_host, valid_site_name};
    use crate::config::rules::parse as rules;
    use crate::config::sites::Deployment;
    use toml::Spanned;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawConfig {
        site: Option<Spanned<RawSite>>,
        /// Several sites; the tables below are then shared by all of them.
        #[serde(default)]
        sites: Vec<Spanned<RawSiteEntry>>,
        storage: Option<Spanned<RawStorage>>,
        #[serde(default, rename = "metric")]
        metrics: Vec<Spanned<metric::RawMetric>>,
        alerting: Option<Spanned<rules::RawAlerting>>,
        digest: Option<Spanned<digest::parse::RawDigest>>,
        #[serde(default, rename = "receiver")]
        receivers: Vec<Spanned<rules::RawReceiver>>,
        #[serde(default, rename = "alert")]
        alerts: Vec<Spanned<rules::RawRule>>,
    }

    /// One `[[sites]]` entry: a `[site]`'s keys, which shared metrics and
    /// rules it takes (default: every metric, and every rule on a metric
    /// it has), and its own `[[sites.metric]]`, `[[sites.alert]]` and
    /// `[[sites.receiver]]` tables.
    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawSiteEntry {
        name: Option<Spanned<String>>,
        hosts: Option<Spanned<Vec<String>>>,
        prefix: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        url: Option<Spanned<String>>,
        metrics: Option<Spanned<Vec<String>>>,
        alerts: Option<Spanned<Vec<String>>>,
        #[serde(default, rename = "metric")]
        own_metrics: Vec<Spanned<metric::RawMetric>>,
        #[serde(default, rename = "receiver")]
        own_receivers: Vec<Spanned<rules::RawReceiver>>,
        #[serde(default, rename = "alert")]
        own_alerts: Vec<Spanned<rules::RawRule>>,
    }

    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawSite {
        name: Option<Spanned<String>>,
        hosts: Option<Spanned<Vec<String>>>,
        prefix: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        url: Option<Spanned<String>>,
    }

    #[derive(Clone, Deserialize)]
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

    /// Parses and validates a one-site `text`; `file` names it in error
    /// messages. A `[[sites]]` file is refused here (see
    /// [`parse_deployment`]).
    pub fn parse_toml(text: &str, file: &str) -> Result<Config, ConfigErrors> {
        let d = parse_deployment(text, file)?;
        let several = d.by_host;
        match d.sites.into_iter().next() {
            Some(c) if !several => Ok(c),
            _ => Err(ConfigErrors {
                file: file.to_string(),
                errors: vec![ConfigError {
                    line: 1,
                    column: 1,
                    field: "sites".into(),
                    message: "this file declares several sites ([[sites]]); this command takes one [site] for now (the workers serve them all)"
                        .into(),
                }],
            }),
        }
    }

    /// Parses and validates `text`, a `[site]` file or a `[[sites]]` one;
    /// `file` names it in error messages.
    pub fn parse_deployment(text: &str, file: &str) -> Result<Deployment, ConfigErrors> {
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
        let deployment = if raw.sites.is_empty() {
            let one = check_config(
                &mut c,
                raw.site.as_ref(),
                &raw,
                &raw.metrics,
                &raw.receivers,
                &raw.alerts,
            );
            Deployment {
                sites: vec![one],
                by_host: false,
            }
        } else {
            if let Some(site) = &raw.site {
                c.error(
                    site.span(),
                    "site",
                    "a file declares one [site] or several [[sites]], not both",
                );
            }
            let sites = raw
                .sites
                .iter()
                .map(|entry| check_site_entry(&mut c, &raw, entry))
                .collect();
            check_hosts_apart(&mut c, &raw.sites);
            Deployment {
                sites,
                by_host: true,
            }
        };
        if c.errors.is_empty() {
            Ok(deployment)
        } else {
            c.errors.sort_by_key(|e| (e.line, e.column));
            // A shared table is checked once per site: one line per error.
            c.errors.dedup();
            Err(ConfigErrors {
                file: file.to_string(),
                errors: c.errors,
            })
        }
    }

    /// One site's [`Config`] from its `[site]` and its tables.
    fn check_config(
        c: &mut Checker,
        site: Option<&Spanned<RawSite>>,
        raw: &RawConfig,
        metrics: &[Spanned<metric::RawMetric>],
        receivers: &[Spanned<rules::RawReceiver>],
        alerts: &[Spanned<rules::RawRule>],
    ) -> Config {
        let site_model = check_site(c, site);
        let time = check_timezone(c, site);
        let storage = check_storage(c, raw.storage.as_ref());
        let metrics_model = metric::check_metrics(c, metrics);
        let alerting = rules::check_alerting(c, raw.alerting.as_ref());
        let receivers_model = rules::check_receivers(c, receivers);
        let alerts =
            rules::check_rules(c, alerts, &metrics_model, &receivers_model, receivers.len());
        let digest = digest::parse::check_digest(c, raw.digest.as_ref(), &receivers_model);
        Config {
            site: site_model,
            time,
            storage,
            metrics: metrics_model,
            alerting,
            receivers: receivers_model,
            alerts,
            digest,
        }
    }

    fn table_name<T>(
        t: &Spanned<T>,
        name: impl Fn(&T) -> Option<&Spanned<String>>,
    ) -> Option<&str> {
        name(t.get_ref()).map(|n| n.get_ref().as_str())
    }

    /// The names a site's `metrics` or `alerts` list takes from `shared`
    /// (all of them when the list is absent; unknown names are errors).
    fn selected<T: Clone>(
        c: &mut Checker,
        list: Option<&Spanned<Vec<String>>>,
        field: &str,
        shared: &[Spanned<T>],
        name: impl Fn(&T) -> Option<&Spanned<String>>,
        default: impl Fn(&T) -> bool,
    ) -> Vec<Spanned<T>> {
        let Some(list) = list else {
            return shared
                .iter()
                .filter(|t| default(t.get_ref()))
                .cloned()
                .collect();
        };
        for wanted in list.get_ref() {
            if !shared
                .iter()
                .any(|t| table_name(t, &name) == Some(wanted.as_str()))
            {
                c.error(
                    list.span(),
                    field,
                    format!("{wanted:?} is not a shared definition of this file"),
                );
            }
        }
        shared
            .iter()
            .filter(|t| table_name(t, &name).is_some_and(|n| list.get_ref().iter().any(|w| w == n)))
            .cloned()
            .collect()
    }

    /// One `[[sites]]` entry's [`Config`]: the shared tables it takes and
    /// its own, checked as one `[site]` file with them would be.
    fn check_site_entry(c: &mut Checker, raw: &RawConfig, entry: &Spanned<RawSiteEntry>) -> Config {
        let e = entry.get_ref();
        let mut metrics = selected(
            c,
            e.metrics.as_ref(),
            "sites.metrics",
            &raw.metrics,
            |m| m.name.as_ref(),
            |_| true,
        );
        metrics.extend(e.own_metrics.iter().cloned());
        let names: Vec<String> = metrics
            .iter()
            .filter_map(|m| m.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
            .collect();
        let mut alerts = selected(
            c,
            e.alerts.as_ref(),
            "sites.alerts",
            &raw.alerts,
            |r| r.name.as_ref(),
            |r| {
                r.metric
                    .as_ref()
                    .is_some_and(|m| names.contains(m.get_ref()))
            },
        );
        // A rule listed for a site whose metric the site does not take.
        alerts.retain(|r| {
            let (rule, metric) = (r.get_ref().name.as_ref(), r.get_ref().metric.as_ref());
            let Some(metric) = metric.filter(|m| !names.contains(m.get_ref())) else {
                return true;
            };
            if let Some(list) = &e.alerts {
                c.error(
                    list.span(),
                    "sites.alerts",
                    format!(
                        "{:?} watches {:?}, which this site does not take (its `metrics`)",
                        rule.map_or("", |n| n.get_ref().as_str()),
                        metric.get_ref()
                    ),
                );
            }
            false
        });
        alerts.extend(e.own_alerts.iter().cloned());
        let mut receivers = raw.receivers.clone();
        receivers.extend(e.own_receivers.iter().cloned());
        if e.hosts.as_ref().is_none_or(|h| h.get_ref().is_empty()) {
            c.error(
                entry.span(),
                "sites.hosts",
                "each of several sites names its hosts: a request is counted in the site of its Host",
            );
        }
        let site = Spanned::new(
            entry.span(),
            RawSite {
                name: e.name.clone(),
                hosts: e.hosts.clone(),
                prefix: e.prefix.clone(),
                timezone: e.timezone.clone(),
                url: e.url.clone(),
            },
        );
        check_config(c, Some(&site), raw, &metrics, &receivers, &alerts)
    }

    /// A `[[sites]]` entry's prefix: its own, or the default.
    fn prefix_of(e: &RawSiteEntry) -> &str {
        e.prefix.as_ref().map_or("/_bpm", |p| p.get_ref().as_str())
    }

    /// Site names and host patterns are each one site's; the reserved
    /// prefix is every site's (the dashboard and API answer under it on
    /// each site's hosts).
    fn check_hosts_apart(c: &mut Checker, sites: &[Spanned<RawSiteEntry>]) {
        let mut names: Vec<&str> = Vec::new();
        let mut hosts: Vec<(String, &str)> = Vec::new();
        let first_prefix = sites.first().map_or("/_bpm", |e| prefix_of(e.get_ref()));
        for entry in sites {
            let e = entry.get_ref();
            if prefix_of(e) != first_prefix {
                let span = e.prefix.as_ref().map_or(entry.span(), |p| p.span());
                c.error(
                    span,
                    "sites.prefix",
                    format!(
                        "{:?} differs from {first_prefix:?}: all sites share one prefix",
                        prefix_of(e)
                    ),
                );
            }
            let name = e.name.as_ref().map_or("", |n| n.get_ref().as_str());
            if let Some(n) = &e.name {
                if names.contains(&name) {
                    c.error(n.span(), "sites.name", format!("{name:?} names two sites"));
                }
                names.push(name);
            }
            let Some(list) = &e.hosts else { continue };
            for h in list.get_ref() {
                let key = h.trim().to_ascii_lowercase();
                if let Some((_, other)) = hosts.iter().find(|(k, o)| *k == key && *o != name) {
                    c.error(
                        list.span(),
                        "sites.hosts",
                        format!(
                            "{h:?} is also a host of site {other:?}: a host belongs to one site"
                        ),
                    );
                }
                hosts.push((key, name));
            }
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
                if valid_host(lower.strip_prefix("*.").unwrap_or(&lower)) {
                    site.hosts.push(lower);
                } else {
                    c.error(
                        hosts.span(),
                        "site.hosts",
                        format!(
                            "{h:?} is not a host name or a *. suffix (no scheme, port or path)"
                        ),
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
            let ok = url_text::parse_url(u.get_ref())
                .map(|p| {
                    matches!(p.scheme().as_str(), "http" | "https")
                        && p.host_str().is_some()
                        && !p.has_query()
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_fixtures::{errors, one_error, MINIMAL};
    use crate::count::agent::AgentKind;

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
}
