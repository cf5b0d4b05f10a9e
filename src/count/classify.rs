//! Classification: from what a request asked and what the origin answered,
//! the metrics it hits and the dimension values to count for each.
//!
//! The classifier is built once from the [`Config`] and is pure: the same
//! facts always give the same hits. It looks at the request line, the
//! `Host`, `Referer` and `User-Agent` headers, Cloudflare's bot signals, the
//! response status and `Location`, and the latency; it keeps none of them
//! beyond the returned agent kind and dimension values, which are bounded in
//! length (see `referral`). Each hit says whether the metric counts the
//! request's agent kind (`count` in the config); a hit that is not counted
//! carries no dimension values.

use crate::config::pattern::NormalizedPath;
use crate::config::url_text::parse_url;
use crate::config::{Config, MatchRule, MetricKind, QueryCondition, ReferralDimension};
use crate::count::agent::{self, AgentKind, CfSignals};
use crate::count::latency;
use crate::count::referral;

/// What the classifier needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The request target: path and optional `?query`, as sent (raw bytes).
    pub target: &'a [u8],
    /// The Host the visitor asked for (may include a port).
    pub host: &'a str,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// Cloudflare's bot signals (`request.cf`), when the zone has them.
    pub cf: CfSignals,
}

/// What the classifier needs to know about the response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub location: Option<&'a str>,
    pub latency_ms: f64,
}

/// One metric hit by one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index into [`Config::metrics`].
    pub metric: usize,
    /// Who sent the request.
    pub kind: AgentKind,
    /// Whether the metric counts `kind`; hits it does not count are tallied
    /// apart per kind and carry no other dimension.
    pub counted: bool,
    /// 1..=5 (`0` for a status outside 100..=599).
    pub status_class: u8,
    pub latency_bucket: u8,
    pub dimensions: Vec<(ReferralDimension, String)>,
}

/// Classifies requests against one configuration.
#[derive(Debug, Clone)]
pub struct Classifier {
    config: Config,
    /// Indices of counted metrics, in config order.
    counted: Vec<usize>,
    needs_query: bool,
}

impl Classifier {
    pub fn new(config: Config) -> Self {
        let counted: Vec<usize> = config
            .metrics
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m.kind, MetricKind::Counted { .. }))
            .map(|(i, _)| i)
            .collect();
        let needs_query = config.metrics.iter().any(|m| match &m.kind {
            MetricKind::Counted {
                rule, dimensions, ..
            } => {
                !rule.query.is_empty()
                    || dimensions.iter().any(|d| {
                        matches!(
                            d,
                            ReferralDimension::UtmSource
                                | ReferralDimension::UtmMedium
                                | ReferralDimension::UtmCampaign
                        )
                    })
            }
            MetricKind::Ratio(_) => false,
        });
        Classifier {
            config,
            counted,
            needs_query,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Appends the hits of one request/response to `out`.
    pub fn classify(&self, req: &RequestFacts, resp: &ResponseFacts, out: &mut Vec<Hit>) {
        let Some(path) = NormalizedPath::parse(req.target) else {
            return;
        };
        let query = query_of(req.target);
        let mut lazy = LazyFacts::default();
        let kind = agent::classify(req.user_agent, req.cf);
        let status_class = if (100..=599).contains(&resp.status) {
            (resp.status / 100) as u8
        } else {
            0
        };
        let latency_bucket = latency::bucket(resp.latency_ms);
        for &idx in &self.counted {
            let Some(metric) = self.config.metrics.get(idx) else {
                continue;
            };
            let MetricKind::Counted {
                rule,
                dimensions,
                count,
            } = &metric.kind
            else {
                continue;
            };
            let Some(landing) = self.rule_matches(rule, req, resp, &path, query, &mut lazy) else {
                continue;
            };
            let counted = count.contains(&kind);
            let mut dims = Vec::new();
            if counted {
                for d in dimensions {
                    let value = match d {
                        ReferralDimension::Source => {
                            lazy.source(req, &self.config.site.hosts).to_string()
                        }
                        ReferralDimension::Landing => landing.to_string(),
                        ReferralDimension::UtmSource => lazy.utm(query, self.needs_query).source,
                        ReferralDimension::UtmMedium => lazy.utm(query, self.needs_query).medium,
                        ReferralDimension::UtmCampaign => {
                            lazy.utm(query, self.needs_query).campaign
                        }
                    };
                    dims.push((*d, value));
                }
            }
            out.push(Hit {
                metric: idx,
                kind,
                counted,
                status_class,
                latency_bucket,
                dimensions: dims,
            });
        }
    }

    /// `Some(matched path pattern)` when every condition of `rule` holds.
    fn rule_matches<'r>(
        &self,
        rule: &'r MatchRule,
        req: &RequestFacts,
        resp: &ResponseFacts,
        path: &NormalizedPath,
        query: &str,
        lazy: &mut LazyFacts,
    ) -> Option<&'r str> {
        if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == req.method) {
            return None;
        }
        if !rule.statuses.is_empty() && !rule.statuses.iter().any(|s| s.matches(resp.status)) {
            return None;
        }
        let landing = rule.paths.iter().find(|p| p.matches(path))?;
        if let Some(loc_pattern) = &rule.location {
            let loc = resp
                .location
                .and_then(|l| location_path(l, req.host, &self.config.site.hosts))?;
            if !loc_pattern.matches(&loc) {
                return None;
            }
        }
        if !rule.query.is_empty() {
            let pairs = lazy.pairs(query);
            let ok = rule.query.iter().all(|(name, cond)| {
                pairs.iter().any(|(k, v)| {
                    k == name
                        && match cond {
                            QueryCondition::Present => true,
                            QueryCondition::Equals(want) => v == want,
                        }
                })
            });
            if !ok {
                return None;
            }
        }
        if !rule.referrer_hosts.is_empty() {
            let host = lazy.referrer_host(req.referer)?;
            if !rule.referrer_hosts.iter().any(|h| h.matches(host)) {
                return None;
            }
        }
        Some(landing.source.as_str())
    }
}

/// Per-request facts computed at most once, and only when a rule needs them.
#[derive(Default)]
struct LazyFacts {
    source: Option<String>,
    utm: Option<referral::Utm>,
    pairs: Option<Vec<(String, String)>>,
    referrer_host: Option<Option<String>>,
}

/// Most query pairs a rule looks at (the rest of a hostile query is ignored).
const MAX_RULE_QUERY_PAIRS: usize = 256;

impl LazyFacts {
    fn source(&mut self, req: &RequestFacts, own_hosts: &[String]) -> &str {
        self.source
            .get_or_insert_with(|| referral::source(req.referer, own_hosts, req.host))
    }

    fn utm(&mut self, query: &str, enabled: bool) -> UtmValues {
        let utm = self.utm.get_or_insert_with(|| {
            if enabled {
                referral::utm(query)
            } else {
                referral::Utm::default()
            }
        });
        UtmValues {
            source: utm.source.clone().unwrap_or_else(|| referral::NONE.into()),
            medium: utm.medium.clone().unwrap_or_else(|| referral::NONE.into()),
            campaign: utm
                .campaign
                .clone()
                .unwrap_or_else(|| referral::NONE.into()),
        }
    }

    fn pairs(&mut self, query: &str) -> &[(String, String)] {
        self.pairs.get_or_insert_with(|| {
            form_urlencoded::parse(query.as_bytes())
                .take(MAX_RULE_QUERY_PAIRS)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
    }

    fn referrer_host(&mut self, referer: Option<&[u8]>) -> Option<&str> {
        self.referrer_host
            .get_or_insert_with(|| {
                let text = std::str::from_utf8(referer?).ok()?;
                referral::url_host(&parse_url(text.trim())?)
            })
            .as_deref()
    }
}

struct UtmValues {
    source: String,
    medium: String,
    campaign: String,
}

/// The raw query string (without `?`), or "" when there is none or it is
/// not UTF-8.
fn query_of(target: &[u8]) -> &str {
    let Some(q) = target.iter().position(|b| *b == b'?') else {
        return "";
    };
    let rest = target.get(q + 1..).unwrap_or(&[]);
    let end = rest.iter().position(|b| *b == b'#').unwrap_or(rest.len());
    std::str::from_utf8(rest.get(..end).unwrap_or(&[])).unwrap_or("")
}

/// The path a `Location` header points to, if it stays on this site.
fn location_path(
    location: &str,
    request_host: &str,
    own_hosts: &[String],
) -> Option<NormalizedPath> {
    let loc = location.trim();
    if loc.starts_with('/') && !loc.starts_with("//") {
        return NormalizedPath::parse(loc.as_bytes());
    }
    let url = parse_url(loc)?;
    if !referral::is_own_host(&referral::url_host(&url)?, request_host, own_hosts) {
        return None;
    }
    NormalizedPath::parse(url.path().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    const BROWSER: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";

    fn example() -> Classifier {
        // The shipped metrics without the catch-all `traffic`, which every
        // page view also counts towards.
        let mut cfg = parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        cfg.metrics.retain(|m| m.name != "traffic");
        Classifier::new(cfg)
    }

    fn req<'a>(method: &'a str, target: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            method,
            target: target.as_bytes(),
            host: "shop.test",
            referer: None,
            user_agent: Some(BROWSER),
            cf: CfSignals::default(),
        }
    }

    fn resp(status: u16, location: Option<&str>) -> ResponseFacts<'_> {
        ResponseFacts {
            status,
            location,
            latency_ms: 12.0,
        }
    }

    fn names(c: &Classifier, r: &RequestFacts, s: &ResponseFacts) -> Vec<String> {
        let mut out = Vec::new();
        c.classify(r, s, &mut out);
        out.iter()
            .map(|h| c.config().metrics[h.metric].name.clone())
            .collect()
    }

    #[test]
    fn login_and_dashboard_views() {
        let c = example();
        assert_eq!(
            names(&c, &req("GET", "/login"), &resp(200, None)),
            ["login_views"]
        );
        assert_eq!(
            names(&c, &req("GET", "/login?next=/x"), &resp(304, None)),
            ["login_views"]
        );
        assert!(names(&c, &req("GET", "/login"), &resp(500, None)).is_empty());
        assert!(names(&c, &req("HEAD", "/login"), &resp(200, None)).is_empty());
        assert_eq!(
            names(&c, &req("GET", "/dashboard"), &resp(200, None)),
            ["dashboard_views"]
        );
    }

    #[test]
    fn logins_need_a_302_to_the_dashboard() {
        let c = example();
        let post = req("POST", "/login");
        assert_eq!(names(&c, &post, &resp(302, Some("/dashboard"))), ["logins"]);
        assert_eq!(
            names(&c, &post, &resp(302, Some("/dashboard?welcome=1"))),
            ["logins"]
        );
        assert_eq!(
            names(&c, &post, &resp(302, Some("https://shop.test/dashboard"))),
            ["logins"]
        );
        assert_eq!(
            names(
                &c,
                &post,
                &resp(302, Some("https://www.example.com/dashboard/"))
            ),
            ["logins"]
        );
        assert!(names(&c, &post, &resp(302, Some("https://evil.test/dashboard"))).is_empty());
        assert!(names(&c, &post, &resp(302, Some("/login?error=1"))).is_empty());
        assert!(names(&c, &post, &resp(200, None)).is_empty());
        assert!(names(&c, &post, &resp(302, None)).is_empty());
        assert!(names(&c, &post, &resp(301, Some("/dashboard"))).is_empty());
    }

    #[test]
    fn signups_and_subscriptions() {
        let c = example();
        assert_eq!(
            names(&c, &req("POST", "/signup"), &resp(201, None)),
            ["signups"]
        );
        assert_eq!(
            names(&c, &req("POST", "/signup"), &resp(303, Some("/welcome"))),
            ["signups"]
        );
        assert!(names(&c, &req("POST", "/signup"), &resp(422, None)).is_empty());
        assert_eq!(
            names(&c, &req("POST", "/billing/subscribe"), &resp(200, None)),
            ["subscriptions"]
        );
        assert!(names(&c, &req("POST", "/billing/subscribe"), &resp(402, None)).is_empty());
    }

    #[test]
    fn marketing_views_carry_referral_dimensions() {
        let c = example();
        let mut r = req(
            "GET",
            "/pricing?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring%20Launch",
        );
        r.referer = Some(b"https://www.google.com/search?q=bpm");
        let mut hits = Vec::new();
        c.classify(&r, &resp(200, None), &mut hits);
        assert_eq!(hits.len(), 1);
        let h = &hits[0];
        assert!(h.counted);
        assert_eq!(h.kind, AgentKind::Browser);
        assert_eq!(h.status_class, 2);
        assert_eq!(h.latency_bucket, latency::bucket(12.0));
        let dims: Vec<(&str, &str)> = h
            .dimensions
            .iter()
            .map(|(d, v)| (d.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            dims,
            vec![
                ("source", "google"),
                ("utm_source", "newsletter"),
                ("utm_medium", "email"),
                ("utm_campaign", "spring_launch"),
                ("landing", "/pricing"),
            ]
        );
        let mut blog = Vec::new();
        c.classify(&req("GET", "/blog/2026/hello"), &resp(200, None), &mut blog);
        let landing = blog[0]
            .dimensions
            .iter()
            .find(|(d, _)| *d == ReferralDimension::Landing);
        assert_eq!(landing.unwrap().1, "/blog/**");
        let utm = blog[0]
            .dimensions
            .iter()
            .find(|(d, _)| *d == ReferralDimension::UtmSource);
        assert_eq!(utm.unwrap().1, referral::NONE);
        assert_eq!(
            names(&c, &req("GET", "/"), &resp(200, None)),
            ["marketing_views"]
        );
        assert!(names(&c, &req("GET", "/about"), &resp(200, None)).is_empty());
    }

    #[test]
    fn bots_are_flagged_and_carry_no_dimensions() {
        let c = example();
        let mut r = req("GET", "/?utm_source=x");
        r.user_agent =
            Some(b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        let mut hits = Vec::new();
        c.classify(&r, &resp(200, None), &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, AgentKind::Bot);
        assert!(!hits[0].counted);
        assert!(hits[0].dimensions.is_empty());
    }

    #[test]
    fn each_metric_counts_its_kinds() {
        let c = example();
        let hit = |r: &RequestFacts, s: &ResponseFacts| {
            let mut out = Vec::new();
            c.classify(r, s, &mut out);
            assert_eq!(out.len(), 1);
            (out[0].kind, out[0].counted)
        };
        let found = resp(302, Some("/dashboard"));
        let mut login = req("POST", "/login");
        assert_eq!(hit(&login, &found), (AgentKind::Browser, true));
        login.user_agent = Some(b"okhttp/4.12.0");
        assert_eq!(hit(&login, &found), (AgentKind::Client, true));
        login.user_agent = Some(b"Googlebot/2.1 (+http://www.google.com/bot.html)");
        assert_eq!(hit(&login, &found), (AgentKind::Bot, false));
        // A referral metric counts browsers only: an app's view is shown apart.
        let mut home = req("GET", "/");
        home.user_agent = Some(b"python-requests/2.31.0");
        assert_eq!(hit(&home, &resp(200, None)), (AgentKind::Client, false));
        // Cloudflare's verified-bot flag makes a browser-looking agent a bot.
        home.user_agent = Some(BROWSER);
        home.cf.verified_bot = true;
        assert_eq!(hit(&home, &resp(200, None)), (AgentKind::Bot, false));
    }

    #[test]
    fn query_and_referrer_host_rules() {
        let text = r#"
[[metric]]
name = "pro_checkout"
stage = "revenue"
description = "d"
match = { path = "/checkout", query = { plan = "pro", coupon = "*" } }
[[metric]]
name = "hn_visits"
stage = "referral"
description = "d"
match = { path = "/**", referrer_host = "*.ycombinator.com" }
"#;
        let c = Classifier::new(parse_toml(text, "t").unwrap());
        assert_eq!(
            names(
                &c,
                &req("GET", "/checkout?plan=pro&coupon="),
                &resp(200, None)
            ),
            ["pro_checkout"]
        );
        assert!(names(&c, &req("GET", "/checkout?plan=pro"), &resp(200, None)).is_empty());
        assert!(names(
            &c,
            &req("GET", "/checkout?plan=basic&coupon=1"),
            &resp(200, None)
        )
        .is_empty());
        let mut r = req("GET", "/x");
        r.referer = Some(b"https://news.ycombinator.com/item?id=1");
        assert_eq!(names(&c, &r, &resp(200, None)), ["hn_visits"]);
        r.referer = Some(b"https://ycombinator.com.evil.test/");
        assert!(names(&c, &r, &resp(200, None)).is_empty());
        r.referer = None;
        assert!(names(&c, &r, &resp(200, None)).is_empty());
    }

    #[test]
    fn hostile_requests_do_not_panic() {
        let c = example();
        let long = format!("/{}", "a".repeat(8192));
        assert!(names(&c, &req("GET", &long), &resp(200, None)).is_empty());
        let many: String = (0..1000).map(|i| format!("p{i}=x&")).collect();
        let target = format!("/?{many}");
        assert_eq!(
            names(&c, &req("GET", &target), &resp(200, None)),
            ["marketing_views"]
        );
        let mut r = req("GET", "/");
        r.referer = Some(b"\xff\xfe\x00binary");
        r.host = "";
        let mut hits = Vec::new();
        c.classify(&r, &resp(0, Some("\u{0}")), &mut hits);
        c.classify(&r, &resp(200, None), &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].dimensions[0].1, referral::UNKNOWN);
        let bin = RequestFacts {
            method: "GET",
            target: b"/\xff\xfe?utm_source=%ff",
            host: "x",
            referer: None,
            user_agent: None,
            cf: CfSignals::default(),
        };
        c.classify(&bin, &resp(200, None), &mut hits);
    }

    #[test]
    fn two_hundred_rule_config_classifies() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "[[metric]]\nname = \"m{i}\"\nstage = \"other\"\ndescription = \"d\"\nmatch = {{ method = \"GET\", path = \"/section{i}/**\" }}\n"
            ));
        }
        let c = Classifier::new(parse_toml(&text, "t").unwrap());
        assert_eq!(
            names(&c, &req("GET", "/section199/a"), &resp(200, None)),
            ["m199"]
        );
    }
}
