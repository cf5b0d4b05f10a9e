//! Property-based tests ("fuzzing at scale") of the core's parsers and
//! renderers with proptest: every input a visitor, an operator or storage
//! can hand the core is generated, both at random and shaped like the real
//! thing (valid values with hostile pieces), and the documented invariants
//! are checked on the answer.
//!
//! Targets (one module each, so `cargo test --test properties classify::`
//! runs one): `classify` (the request classifier and the tally), `config`
//! (`parse_toml`), `backfill` (the CSV import), `accesslog` (log lines and
//! replay), `payload` (the four webhook formats), `auth` (session cookies
//! and bearer tokens), `access` (Cloudflare Access assertions), `sketch`
//! (the visitor sketch), `bucket_counts` (a stored bucket) and `explain`
//! (where a drop happened).
//!
//! Each property runs a few dozen to a few hundred cases by default so the
//! whole file stays well under 30 s in a debug `cargo test`; a long run sets
//! the count for every property:
//! `PROPTEST_CASES=1000000 cargo test --release --test properties`.
//! A failure prints the shrunk input; a bug it finds gets a named
//! regression test next to the code it fixes.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config as ProptestConfig;

/// `n` cases for a `proptest!` block (which lets `PROPTEST_CASES` override
/// it); failures are printed, nothing is written to the tree.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Exactly `n` cases, for a runner of our own (no `PROPTEST_CASES`).
fn fixed_cases(n: u32) -> ProptestConfig {
    cases(n)
}

// ---------------------------------------------------------------------------
// Shared generators

/// Strings that have broken parsers and renderers before.
const NASTY: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\0",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{200b}",
    "\u{202e}",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "É",
    "éx",
    "İ",
    "ß",
    "Σ",
    "ǅ",
    "ﬃ",
    "🚨",
    "👩‍👩‍👧",
    "日本",
    "\"",
    "\\",
    "\\\"",
    "'",
    "`",
    "<",
    ">",
    "&",
    "|",
    "<!channel>",
    "<https://evil.example|click>",
    "&amp;",
    "*bold*",
    "%",
    "%00",
    "%2F",
    "%zz",
    "%C3%A9",
    "%ff",
    "+",
    "=",
    "?",
    "#",
    ".",
    "..",
    "/",
    "//",
    ":",
    ",",
    ";",
    "[",
    "]",
    "{",
    "}",
    "-",
    "other",
    "direct",
    "(none)",
    "NaN",
    "inf",
    "-0",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
];

fn chars(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

fn piece() -> impl Strategy<Value = String> {
    let s = {
        prop_oneof![
            3 => select(NASTY).prop_map(str::to_string),
            3 => "[a-zA-Z0-9_./:-]{0,12}",
            2 => chars(8),
        ]
    };
    s.boxed()
}

/// A string of up to `n` hostile pieces; now and then thousands of
/// characters long.
fn hostile(n: usize) -> impl Strategy<Value = String> {
    let s = {
        prop_oneof![
            12 => vec(piece(), 0..n).prop_map(|v| v.concat()),
            1 => (piece(), 50usize..400).prop_map(|(p, k)| format!("{p}x").repeat(k)),
        ]
    };
    s.boxed()
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Unix seconds around now, minute-aligned or not.
fn recent_secs() -> impl Strategy<Value = i64> {
    1_700_000_000i64..1_900_000_000
}

// ---------------------------------------------------------------------------
// classify: the request classifier and the tally it feeds

mod classify {
    use super::*;
    use bpm_edge::config::pattern::NormalizedPath;
    use bpm_edge::config::{parse_toml, Config, MetricKind, ReferralDimension};
    use bpm_edge::count::agent;
    use bpm_edge::count::classify::{Classifier, Hit, RequestFacts, ResponseFacts};
    use bpm_edge::count::latency;
    use bpm_edge::count::referral::{self, MAX_VALUE_CHARS};
    use bpm_edge::count::tally::{Tally, OTHER};
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::sync::OnceLock;

    pub fn shipped() -> &'static Classifier {
        static C: OnceLock<Classifier> = OnceLock::new();
        C.get_or_init(|| {
            Classifier::new(parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap())
        })
    }

    /// The rule features the shipped file does not use: query conditions,
    /// referrer hosts, `:name` and `**` in the middle, case-insensitive and
    /// strict paths, `location`, dimensions on a non-referral metric, K = 3.
    pub const EXERCISE: &str = r#"
[site]
name = "props"
hosts = ["www.example.com", "example.com"]

[storage]
max_dimension_values = 3

[[metric]]
name = "pro_signups"
stage = "revenue"
description = "Pro plan signups with a referral code."
dimensions = ["source", "utm_source", "utm_medium", "utm_campaign", "landing"]
match = { method = ["POST", "PUT"], path = ["/signup/:plan", "/Billing/**/done"], status = ["2xx", 302], query = { plan = "pro", ref = "*" }, case_insensitive = true }

[[metric]]
name = "search_visits"
stage = "referral"
description = "Blog posts reached from Hacker News or Google."
match = { path = "/blog/*/", referrer_host = ["news.ycombinator.com", "*.google.com"], trailing_slash = "strict" }

[[metric]]
name = "redirects"
stage = "other"
description = "Redirects into the dashboard."
dimensions = ["landing", "source"]
match = { path = "/**", status = "3xx", location = "/dashboard/**" }

[[metric]]
name = "redirect_share"
stage = "other"
description = "Redirects per pro signup."
numerator = "redirects"
denominator = "pro_signups"
"#;

    pub fn exercise() -> &'static Classifier {
        static C: OnceLock<Classifier> = OnceLock::new();
        C.get_or_init(|| Classifier::new(parse_toml(EXERCISE, "exercise.toml").unwrap()))
    }

    /// Everything a request and its response tell the classifier, owned.
    #[derive(Debug, Clone)]
    pub struct Req {
        pub method: String,
        pub target: Vec<u8>,
        pub host: String,
        pub referer: Option<Vec<u8>>,
        pub user_agent: Option<Vec<u8>>,
        pub status: u16,
        pub location: Option<String>,
        pub latency_ms: f64,
    }

    impl Req {
        pub fn facts(&self) -> (RequestFacts<'_>, ResponseFacts<'_>) {
            (
                RequestFacts {
                    method: &self.method,
                    target: &self.target,
                    host: &self.host,
                    referer: self.referer.as_deref(),
                    user_agent: self.user_agent.as_deref(),
                    cf: Default::default(),
                },
                ResponseFacts {
                    status: self.status,
                    location: self.location.as_deref(),
                    latency_ms: self.latency_ms,
                },
            )
        }
    }

    const SEGMENTS: &[&str] = &[
        "login",
        "LOGIN",
        "%6Cogin",
        "dashboard",
        "signup",
        "pro",
        "billing",
        "Billing",
        "done",
        "subscribe",
        "pricing",
        "blog",
        "2026",
        "launch",
        "_bpm",
        "api",
        "",
        ".",
        "..",
        "%2e%2e",
        "%2F",
        "%",
        "%zz",
        "%ff",
        "%C3%A9",
        "é",
        "*",
        "**",
        ":id",
        " ",
        "\u{fffd}",
    ];

    fn segment() -> impl Strategy<Value = Vec<u8>> {
        let s = {
            prop_oneof![
                6 => select(SEGMENTS).prop_map(|s| s.as_bytes().to_vec()),
                1 => bytes(6),
                1 => super::piece().prop_map(String::into_bytes),
            ]
        };
        s.boxed()
    }

    fn path() -> impl Strategy<Value = Vec<u8>> {
        let s = {
            prop_oneof![
                10 => (vec(segment(), 0..7), any::<bool>(), any::<bool>()).prop_map(
                    |(segs, trailing, double)| {
                        let sep: &[u8] = if double { b"//" } else { b"/" };
                        let mut out = Vec::new();
                        for s in segs {
                            out.extend_from_slice(sep);
                            out.extend(s);
                        }
                        if trailing || out.is_empty() {
                            out.push(b'/');
                        }
                        out
                    }
                ),
                // Past the size limits: 4,096 bytes or 128 segments.
                1 => (select(&["/a", "/blog", "/..", "/x%2F"][..]), 100usize..2100)
                    .prop_map(|(s, n)| s.repeat(n).into_bytes()),
                1 => bytes(64),
            ]
        };
        s.boxed()
    }

    const QUERY_KEYS: &[&str] = &[
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "UTM_SOURCE",
        "utm%5Fsource",
        "plan",
        "ref",
        "q",
        "",
    ];

    fn query() -> impl Strategy<Value = Vec<u8>> {
        let s = {
            let pair = (
                prop_oneof![select(QUERY_KEYS).prop_map(str::to_string), super::piece()],
                prop_oneof![
                    select(
                        &[
                            "pro",
                            "Pro",
                            "google",
                            "  Spring   Launch ",
                            "x+y",
                            "%20a%09b"
                        ][..]
                    )
                    .prop_map(str::to_string),
                    super::hostile(5),
                ],
                any::<bool>(),
            )
                .prop_map(|(k, v, encode)| {
                    if encode {
                        form_encode(&k, &v)
                    } else {
                        format!("{k}={v}")
                    }
                });
            prop_oneof![
                8 => vec(pair, 0..6).prop_map(|p| p.join("&").into_bytes()),
                1 => bytes(40),
                1 => ("utm_source=a&", 100usize..400).prop_map(|(p, n)| p.repeat(n).into_bytes()),
            ]
        };
        s.boxed()
    }

    fn form_encode(k: &str, v: &str) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        format!("{}={}", enc(k), enc(v))
    }

    fn target() -> impl Strategy<Value = Vec<u8>> {
        let s = {
            (
                path(),
                prop::option::of(query()),
                prop::option::of(super::hostile(2)),
            )
                .prop_map(|(mut p, q, frag)| {
                    if let Some(q) = q {
                        p.push(b'?');
                        p.extend(q);
                    }
                    if let Some(f) = frag {
                        p.push(b'#');
                        p.extend(f.into_bytes());
                    }
                    p
                })
        };
        s.boxed()
    }

    const REF_HOSTS: &[&str] = &[
        "www.google.com",
        "google.co.uk",
        "news.google.com.au",
        "google.evil.example.net",
        "mail.google.com",
        "mail.yahoo.co.jp",
        "t.co",
        "x.com",
        "m.facebook.com",
        "notfacebook.com",
        "news.ycombinator.com",
        "webmail.example.org",
        "www.example.com",
        "example.com",
        "EXAMPLE.com.",
        "shop.test",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "xn--nxasmq6b.com",
        "bücher.de",
        "www.",
        "m.",
        "a..b",
        "",
    ];

    fn referer() -> impl Strategy<Value = Option<Vec<u8>>> {
        let s = {
            let url = (
                select(
                    &[
                        "https://",
                        "http://",
                        "HTTPS://",
                        "ftp://",
                        "android-app://",
                        "//",
                        "",
                    ][..],
                ),
                prop_oneof![
                    4 => select(REF_HOSTS).prop_map(str::to_string),
                    1 => super::hostile(3),
                    1 => ("[a-z]{1,10}\\.", 7usize..40).prop_map(|(l, n)| format!("{l}com").repeat(n)),
                ],
                select(&["", ":443", ":99999", ":x"][..]),
                prop::option::of(target()),
            )
                .prop_map(|(scheme, host, port, rest)| {
                    let mut out = format!("{scheme}{host}{port}").into_bytes();
                    if let Some(rest) = rest {
                        out.extend(rest);
                    }
                    out
                });
            prop_oneof![
                2 => Just(None),
                6 => url.prop_map(Some),
                1 => select(&[
                    "android-app://com.google.android.gm",
                    "android-app://COM.TWITTER.ANDROID/x",
                    "android-app://unknown.app",
                    "   ",
                ][..])
                .prop_map(|s| Some(s.as_bytes().to_vec())),
                1 => bytes(80).prop_map(Some),
                1 => (5000usize..6000).prop_map(|n| Some(format!("https://a.com/{}", "x".repeat(n)).into_bytes())),
            ]
        };
        s.boxed()
    }

    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
        "Mozilla/5.0 (Linux; Android 9; CUBOT X19) Chrome/99",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "python-requests/2.31",
        "UptimeRobot/2.0",
        "",
        " \t ",
    ];

    fn user_agent() -> impl Strategy<Value = Option<Vec<u8>>> {
        let s = {
            prop_oneof![
                1 => Just(None),
                6 => select(AGENTS).prop_map(|s| Some(s.as_bytes().to_vec())),
                2 => bytes(60).prop_map(Some),
                1 => super::hostile(6).prop_map(|s| Some(s.into_bytes())),
                1 => (600usize..2000).prop_map(|n| Some(format!("Mozilla/5.0 {}bot", "a".repeat(n)).into_bytes())),
            ]
        };
        s.boxed()
    }

    fn location() -> impl Strategy<Value = Option<String>> {
        let s = {
            prop_oneof![
                3 => Just(None),
                4 => select(&[
                    "/dashboard",
                    "/dashboard/",
                    "/dashboard/x/y",
                    " /dashboard ",
                    "/%64ashboard",
                    "/dashboard?next=1",
                    "/a/../dashboard",
                    "https://www.example.com/dashboard",
                    "http://shop.test/dashboard",
                    "https://shop.test:8787/dashboard/",
                    "//evil.example/dashboard",
                    "https://evil.example/dashboard",
                    "javascript:alert(1)",
                    "",
                ][..])
                .prop_map(|s| Some(s.to_string())),
                2 => super::hostile(4).prop_map(Some),
            ]
        };
        s.boxed()
    }

    pub fn request() -> impl Strategy<Value = Req> {
        let s = {
            (
                prop_oneof![
                    6 => select(&["GET", "POST", "HEAD", "PUT", "DELETE", "get", ""][..])
                        .prop_map(str::to_string),
                    1 => super::hostile(2),
                ],
                prop_oneof![10 => target(), 1 => bytes(120)],
                prop_oneof![
                    4 => select(&["shop.test", "shop.test:8787", "www.example.com", "EXAMPLE.COM", "", ":"][..])
                        .prop_map(str::to_string),
                    1 => super::hostile(2),
                ],
                referer(),
                user_agent(),
                prop_oneof![
                    4 => select(&[200u16, 204, 302, 304, 404, 500][..]),
                    3 => 0u16..=1000,
                ],
                location(),
                prop_oneof![3 => 0.0f64..100_000.0, 1 => any::<f64>()],
            )
                .prop_map(
                    |(method, target, host, referer, user_agent, status, location, latency_ms)| Req {
                        method,
                        target,
                        host,
                        referer,
                        user_agent,
                        status,
                        location,
                        latency_ms,
                    },
                )
        };
        s.boxed()
    }

    fn landing_sources(cfg: &Config, metric: usize) -> Vec<String> {
        match &cfg.metrics[metric].kind {
            MetricKind::Counted { rule, .. } => {
                rule.paths.iter().map(|p| p.source.clone()).collect()
            }
            MetricKind::Ratio(_) => Vec::new(),
        }
    }

    /// The documented invariants of one request's hits.
    pub fn check_hits(c: &Classifier, r: &Req, hits: &[Hit]) -> Result<(), TestCaseError> {
        let cfg = c.config();
        let mut seen = HashSet::new();
        let kind = agent::kind_of(r.user_agent.as_deref());
        for h in hits {
            prop_assert!(h.metric < cfg.metrics.len(), "metric index {}", h.metric);
            let MetricKind::Counted {
                dimensions, count, ..
            } = &cfg.metrics[h.metric].kind
            else {
                return Err(TestCaseError::fail(format!(
                    "hit on ratio {}",
                    cfg.metrics[h.metric].name
                )));
            };
            prop_assert!(seen.insert(h.metric), "metric hit twice: {}", h.metric);
            let class = if (100..=599).contains(&r.status) {
                (r.status / 100) as u8
            } else {
                0
            };
            prop_assert_eq!(h.status_class, class);
            prop_assert!(h.latency_bucket <= latency::MAX_BUCKET);
            prop_assert_eq!(h.latency_bucket, latency::bucket(r.latency_ms));
            prop_assert_eq!(h.kind, kind);
            prop_assert_eq!(h.counted, count.contains(&kind));
            if !h.counted {
                prop_assert!(
                    h.dimensions.is_empty(),
                    "a hit not counted carries dimensions"
                );
                continue;
            }
            let kinds: Vec<ReferralDimension> = h.dimensions.iter().map(|(d, _)| *d).collect();
            prop_assert_eq!(&kinds, dimensions);
            for (d, v) in &h.dimensions {
                match d {
                    ReferralDimension::Landing => {
                        prop_assert!(
                            landing_sources(cfg, h.metric).contains(v),
                            "landing {:?} is not a pattern of the rule",
                            v
                        );
                    }
                    _ => {
                        prop_assert!(!v.is_empty(), "{:?} is empty", d);
                        prop_assert!(
                            v.chars().count() <= MAX_VALUE_CHARS,
                            "{:?} value {:?} longer than {}",
                            d,
                            v,
                            MAX_VALUE_CHARS
                        );
                        prop_assert!(
                            !v.chars().any(char::is_control),
                            "{:?} value {:?} holds a control character",
                            d,
                            v
                        );
                        prop_assert!(!v.contains('\u{fffd}'), "{:?} value {:?}", d, v);
                        if *d != ReferralDimension::Source {
                            prop_assert!(
                                !v.chars().any(char::is_whitespace),
                                "{:?} value {:?} holds whitespace",
                                d,
                                v
                            );
                        }
                        if v != referral::NONE {
                            prop_assert_eq!(&v.to_lowercase(), v, "{:?} is not lower-case", d);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// Never panics; hits name counted metrics once each, with the
        /// status class, latency bucket and agent kind of the request, and
        /// dimension values within their caps. Classifying is pure.
        #[test]
        fn hits_are_valid(r in request()) {
            for c in [shipped(), exercise()] {
                let (req, resp) = r.facts();
                let mut hits = Vec::new();
                c.classify(&req, &resp, &mut hits);
                check_hits(c, &r, &hits)?;
                let mut again = Vec::new();
                c.classify(&req, &resp, &mut again);
                prop_assert_eq!(&hits, &again);
            }
        }

        /// The shipped `traffic` metric (`/**`, 2xx-4xx, any method) is hit
        /// exactly when the path is within the size limits and the status
        /// fits: an oracle for normalisation and status matching.
        #[test]
        fn traffic_counts_every_matchable_request(r in request()) {
            let c = shipped();
            let traffic = c.config().metrics.iter().position(|m| m.name == "traffic").unwrap();
            let (req, resp) = r.facts();
            let mut hits = Vec::new();
            c.classify(&req, &resp, &mut hits);
            let expected = NormalizedPath::parse(&r.target).is_some()
                && (200..=499).contains(&r.status);
            prop_assert_eq!(hits.iter().any(|h| h.metric == traffic), expected);
        }

    }

    proptest! {
        #![proptest_config(cases(128))]

        /// Tallying arbitrary requests keeps the tally's invariants: the
        /// count, bot, client and browser rows sum to the hits (per metric,
        /// too), status, latency and kind rows sum to the counted hits, and per metric and
        /// referral dimension at most K distinct values besides "other".
        #[test]
        fn tally_keeps_counts_and_caps(
            reqs in vec((request(), 0i64..900, any::<u64>()), 1..30),
            start in recent_secs(),
            k in select(&[1usize, 2, 3, 50][..]),
            exercise_config in any::<bool>(),
        ) {
            let c = if exercise_config { exercise() } else { shipped() };
            let names: Vec<String> = c.config().metrics.iter().map(|m| m.name.clone()).collect();
            let mut tally = Tally::new(k);
            let mut all: Vec<Hit> = Vec::new();
            let mut hits = Vec::new();
            for (r, dt, visitor) in &reqs {
                hits.clear();
                let (req, resp) = r.facts();
                c.classify(&req, &resp, &mut hits);
                tally.record(start + dt, &hits);
                tally.record_visitor(start + dt, &hits, *visitor);
                all.extend(hits.iter().cloned());
            }
            prop_assert_eq!(tally.requests(), reqs.len() as u64);
            let flush = tally.drain_flush("id".into(), &names);
            prop_assert!(tally.is_empty());
            prop_assert_eq!(flush.requests, reqs.len() as u64);
            let rows = &flush.rows;

            let sum = |metric: &str, dim: &str| -> u64 {
                rows.iter().filter(|r| r.1 == metric && r.2 == dim).map(|r| r.4).sum()
            };
            let counted: u64 = rows
                .iter()
                .filter(|r| matches!(r.2.as_str(), "count" | "bot" | "client" | "browser"))
                .map(|r| r.4)
                .sum();
            prop_assert_eq!(counted, all.len() as u64);
            for (i, name) in names.iter().enumerate() {
                let humans = all.iter().filter(|h| h.metric == i && h.counted).count() as u64;
                prop_assert_eq!(sum(name, "count"), humans);
                for kind in agent::AgentKind::ALL {
                    let not = all.iter().filter(|h| h.metric == i && !h.counted && h.kind == kind).count() as u64;
                    prop_assert_eq!(sum(name, kind.as_str()), not);
                }
                prop_assert_eq!(sum(name, "status"), humans);
                prop_assert_eq!(sum(name, "lat"), humans);
                prop_assert_eq!(sum(name, "kind"), humans);
                if let MetricKind::Counted { dimensions, .. } = &c.config().metrics[i].kind {
                    for d in ReferralDimension::ALL {
                        let want = if dimensions.contains(&d) { humans } else { 0 };
                        prop_assert_eq!(sum(name, d.as_str()), want, "{} {}", name, d.as_str());
                        let distinct: BTreeSet<&str> = rows
                            .iter()
                            .filter(|r| r.1 == *name && r.2 == d.as_str() && r.3 != OTHER)
                            .map(|r| r.3.as_str())
                            .collect();
                        prop_assert!(distinct.len() <= k, "{} {}: {:?}", name, d.as_str(), distinct);
                    }
                }
            }
            // Rows: positive, minute-aligned, sorted, one per key.
            let mut keys = BTreeMap::new();
            for r in rows {
                prop_assert!(r.4 > 0);
                prop_assert_eq!(r.0.rem_euclid(60), 0);
                prop_assert!(keys.insert((r.0, &r.1, &r.2, &r.3), ()).is_none(), "duplicate row {:?}", r);
            }
            prop_assert!(rows.windows(2).all(|w| (w[0].0, &w[0].1, &w[0].2, &w[0].3) < (w[1].0, &w[1].1, &w[1].2, &w[1].3)));
            // One sketch per (hour, metric), only for metrics with human hits.
            let mut sketch_keys = BTreeSet::new();
            for s in &flush.sketches {
                prop_assert_eq!(s.0.rem_euclid(3600), 0);
                prop_assert!(sketch_keys.insert((s.0, s.1.clone())));
                prop_assert!(!s.2.is_empty());
                prop_assert!(sum(&s.1, "count") > 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// config: parse_toml on arbitrary, mutated and generated files

mod config {
    use super::*;
    use bpm_edge::config::{parse_toml, Config, ConfigErrors};

    const SHIPPED: &str = include_str!("../bpm.toml");

    /// Errors carry a line and column inside the text, sorted; an accepted
    /// config survives the JSON the worker embeds and classifies requests.
    fn check(text: &str, result: &Result<Config, ConfigErrors>) -> Result<(), TestCaseError> {
        match result {
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                prop_assert_eq!(e.file.as_str(), "fuzz.toml");
                let last_line = text.matches('\n').count() + 1;
                for err in &e.errors {
                    prop_assert!(
                        (1..=last_line).contains(&err.line),
                        "line {} outside 1..={}: {:?}",
                        err.line,
                        last_line,
                        err
                    );
                    prop_assert!(err.column >= 1, "{:?}", err);
                    prop_assert!(!err.message.trim().is_empty(), "{:?}", err);
                    prop_assert!(!err.field.is_empty(), "{:?}", err);
                }
                prop_assert!(e
                    .errors
                    .windows(2)
                    .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)));
                let shown = e.to_string();
                prop_assert!(
                    shown.contains(&format!("fuzz.toml:{}:", e.errors[0].line)),
                    "{}",
                    shown
                );
            }
            Ok(cfg) => {
                let json = cfg.to_json();
                let back = Config::from_json(&json);
                prop_assert!(back.is_ok(), "{:?}", back.err());
                // The worker reads the config from this JSON. serde_json
                // (without its `float_roundtrip` feature) may read a float
                // back one ulp off (`scale = 932495880282264641`), so floats
                // are compared to within a few ulps, all else exactly.
                let (a, b) = (
                    serde_json::to_value(cfg).unwrap(),
                    serde_json::to_value(back.unwrap()).unwrap(),
                );
                prop_assert!(
                    json_close(&a, &b),
                    "JSON round trip changed the config:\n{}\n{}",
                    a,
                    b
                );
                let c = bpm_edge::count::classify::Classifier::new(cfg.clone());
                for r in sample_requests() {
                    let (req, resp) = r.facts();
                    let mut hits = Vec::new();
                    c.classify(&req, &resp, &mut hits);
                    super::classify::check_hits(&c, r, &hits)?;
                }
            }
        }
        Ok(())
    }

    /// Equal JSON, but for floats within 4 ulps.
    fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
            }
            _ => a == b,
        }
    }

    fn sample_requests() -> &'static [super::classify::Req] {
        use std::sync::OnceLock;
        static R: OnceLock<Vec<super::classify::Req>> = OnceLock::new();
        R.get_or_init(|| {
            let mk = |method: &str, target: &str, status: u16, referer: Option<&str>| {
                super::classify::Req {
                    method: method.into(),
                    target: target.as_bytes().to_vec(),
                    host: "shop.test".into(),
                    referer: referer.map(|r| r.as_bytes().to_vec()),
                    user_agent: Some(b"Mozilla/5.0 Chrome/130".to_vec()),
                    status,
                    location: Some("/dashboard".into()),
                    latency_ms: 12.0,
                }
            };
            vec![
                mk("GET", "/login", 200, None),
                mk("POST", "/login", 302, Some("https://www.google.com/")),
                mk(
                    "GET",
                    "/blog/a/?utm_source=News&utm_campaign=Spring%20Launch",
                    200,
                    Some("https://news.ycombinator.com/"),
                ),
                mk(
                    "GET",
                    "/%C3%A9/../pricing",
                    304,
                    Some("android-app://com.google.android.gm"),
                ),
                mk(
                    "PUT",
                    "/signup/pro?plan=pro&ref=1",
                    201,
                    Some("https://mail.google.com/"),
                ),
            ]
        })
    }

    /// A TOML basic string holding `s` exactly.
    fn toml_string(s: &str) -> String {
        let mut out = String::from("\"");
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Values valid and invalid for the keys of `bpm.toml`.
    const NEAR_VALID: &[&str] = &[
        "\"2xx\"",
        "\"6xx\"",
        "\"éx\"",
        "\"2XX\"",
        "\"x2x\"",
        "\"302\"",
        "302",
        "99",
        "600",
        "[\"2xx\", 304]",
        "[]",
        "\"GET\"",
        "[\"GET\", \"HEAD\"]",
        "\"G T\"",
        "\"/\"",
        "\"/**\"",
        "\"/a/**/b/**\"",
        "\"/a*b\"",
        "\"/:\"",
        "\"/a?b\"",
        "\"a\"",
        "\"*.\"",
        "\"*.example.com\"",
        "\"strict\"",
        "\"ignore\"",
        "true",
        "\"15m\"",
        "\"0\"",
        "\"99999999999999999999s\"",
        "\"1h\"",
        "\"-1m\"",
        "\"Europe/Berlin\"",
        "\"Mars/Olympus\"",
        "\"https://example.com\"",
        "\"https://example.com/x?y\"",
        "\"ftp://x\"",
        "\"referral\"",
        "\"retention\"",
        "[\"source\", \"landing\", \"bogus\"]",
        "\"login_views\"",
        "\"login_success\"",
        "\"nope\"",
        "[\"ops\"]",
        "[\"*\"]",
        "{ team = \"x\" }",
        "{ plan = \"*\" }",
        "{ \"\" = \"x\" }",
        "0",
        "-1",
        "1e308",
        "1.5",
        "inf",
        "nan",
        "-0.0",
        "9223372036854775807",
        "-9223372036854775808",
        "\"json\"",
        "\"slack\"",
        "\"smoke-signals\"",
        "\"critical\"",
        "\"OPS_URL\"",
        "\"bad var\"",
    ];

    fn scalar() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                6 => select(NEAR_VALID).prop_map(str::to_string),
                3 => super::hostile(3).prop_map(|s| toml_string(&s)),
                1 => any::<i64>().prop_map(|i| i.to_string()),
                1 => any::<f64>().prop_map(|x| {
                    if x.is_nan() {
                        "nan".to_string()
                    } else if x.is_infinite() {
                        if x > 0.0 { "inf".into() } else { "-inf".into() }
                    } else {
                        format!("{x:?}")
                    }
                }),
            ]
        };
        s.boxed()
    }

    /// A TOML value: a scalar, or an array or inline table of them.
    fn value() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                6 => scalar(),
                1 => vec(scalar(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
                1 => vec((select(&["plan", "ref", "team", "a b", "ü"][..]), scalar()), 0..3)
                    .prop_map(|kv| {
                        let body: Vec<String> = kv.iter().map(|(k, v)| format!("{} = {v}", toml_string(k))).collect();
                        format!("{{ {} }}", body.join(", "))
                    }),
            ]
        };
        s.boxed()
    }

    const TABLES: &[(&str, &[&str])] = &[
        (
            "[site]",
            &["name", "hosts", "prefix", "timezone", "url", "bogus"],
        ),
        (
            "[storage]",
            &[
                "shards",
                "minute_retention_days",
                "hour_retention_days",
                "day_retention_days",
                "max_dimension_values",
                "flush_interval_ms",
                "flush_max_events",
            ],
        ),
        (
            "[[metric]]",
            &[
                "name",
                "stage",
                "description",
                "owner",
                "runbook",
                "dimensions",
                "numerator",
                "denominator",
                "scale",
                "min_denominator",
                "match",
            ],
        ),
        ("[alerting]", &["group_wait", "history_limit"]),
        (
            "[[receiver]]",
            &["name", "format", "url", "url_var", "secret"],
        ),
        (
            "[[alert]]",
            &[
                "name",
                "metric",
                "severity",
                "receivers",
                "runbook",
                "labels",
                "windows",
                "delta",
                "z",
                "min_expected",
                "weeks",
                "for",
                "resolve_ratio",
                "resolve_for",
                "hold_off",
                "repeat_interval",
                "inhibits",
            ],
        ),
    ];

    /// The TOML type `bpm.toml` expects under a key: a value of the right
    /// type gets past deserialisation into the field's own validation.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Ty {
        Str,
        Int,
        Bool,
        Strs,
        Any,
        StrMap,
        Match,
    }

    fn key_type(k: &str) -> Ty {
        match k {
            "shards"
            | "minute_retention_days"
            | "hour_retention_days"
            | "day_retention_days"
            | "max_dimension_values"
            | "flush_interval_ms"
            | "flush_max_events"
            | "min_denominator"
            | "history_limit"
            | "weeks"
            | "for"
            | "resolve_for" => Ty::Int,
            "hosts" | "dimensions" | "receivers" | "windows" | "inhibits" => Ty::Strs,
            "scale" | "delta" | "z" | "min_expected" | "resolve_ratio" | "method" | "path"
            | "status" | "referrer_host" => Ty::Any,
            "case_insensitive" => Ty::Bool,
            "query" | "labels" => Ty::StrMap,
            "match" => Ty::Match,
            _ => Ty::Str,
        }
    }

    /// Strings that are, or are one step from, valid values of some key.
    const NEAR_STRINGS: &[&str] = &[
        "2xx",
        "6xx",
        "éx",
        "2XX",
        "x2x",
        "302",
        "GET",
        "G T",
        "get",
        "",
        "/",
        "/login",
        "/**",
        "/blog/**",
        "/a/**/b/**",
        "/a*b",
        "/:",
        "/:id",
        "/a?b",
        "a",
        "*.",
        "*.example.com",
        "example.com",
        "strict",
        "ignore",
        "15m",
        "0",
        "99999999999999999999s",
        "1h",
        "-1m",
        "2d",
        "31d",
        "Europe/Berlin",
        "Mars/Olympus",
        "UTC",
        "https://example.com",
        "https://example.com/x?y",
        "ftp://x",
        "referral",
        "retention",
        "other",
        "source",
        "landing",
        "utm_source",
        "bogus",
        "login_views",
        "logins",
        "login_success",
        "nope",
        "ops",
        "*",
        "json",
        "slack",
        "pagerduty",
        "smoke-signals",
        "critical",
        "warning",
        "OPS_URL",
        "bad var",
        "_bpm",
        "/_bpm",
        "/_bpm/",
        "demo",
        "a.b-c_d",
    ];

    const NEAR_INTS: &[i64] = &[
        -1, 0, 1, 2, 3, 4, 20, 31, 32, 49, 50, 64, 65, 1000, 1001, 3660, 3661, 36600, 20000, 20001,
        100000, 100001,
    ];

    fn str_value() -> impl Strategy<Value = String> {
        let s = prop_oneof![
            3 => select(NEAR_STRINGS).prop_map(toml_string),
            1 => super::hostile(3).prop_map(|s| toml_string(&s)),
        ];
        s.boxed()
    }

    fn int_value() -> impl Strategy<Value = String> {
        let s = prop_oneof![3 => select(NEAR_INTS), 1 => any::<i64>()].prop_map(|i| i.to_string());
        s.boxed()
    }

    /// One value of every type, picked by the key when the file is written.
    #[derive(Debug, Clone)]
    struct Typed {
        s: String,
        i: String,
        b: bool,
        strs: String,
        any: String,
        any2: String,
        map: String,
        match_keys: u8,
        /// Now and then a value of any type, valid or not.
        wrong: Option<String>,
    }

    impl Typed {
        fn for_key(&self, k: &str) -> String {
            if let Some(w) = &self.wrong {
                return w.clone();
            }
            match key_type(k) {
                Ty::Str => self.s.clone(),
                Ty::Int => self.i.clone(),
                Ty::Bool => self.b.to_string(),
                Ty::Strs => self.strs.clone(),
                Ty::Any => self.any.clone(),
                Ty::StrMap => self.map.clone(),
                Ty::Match => {
                    let parts = [
                        format!("path = {}", self.any),
                        format!("status = {}", self.any2),
                        format!("method = {}", self.strs),
                        format!("location = {}", self.s),
                        format!("query = {}", self.map),
                        format!("case_insensitive = {}", self.b),
                        format!("referrer_host = {}", self.any2),
                        format!("trailing_slash = {}", self.s),
                    ];
                    let chosen: Vec<&str> = parts
                        .iter()
                        .enumerate()
                        .filter(|(n, _)| *n == 0 || self.match_keys & (1 << n) != 0)
                        .map(|(_, p)| p.as_str())
                        .collect();
                    format!("{{ {} }}", chosen.join(", "))
                }
            }
        }
    }

    fn strs_value() -> impl Strategy<Value = String> {
        let s = vec(str_value(), 0..4).prop_map(|v| format!("[{}]", v.join(", ")));
        s.boxed()
    }

    fn any_value() -> impl Strategy<Value = String> {
        let s = prop_oneof![
            3 => str_value(),
            2 => int_value(),
            1 => scalar(),
            2 => strs_value(),
            1 => (str_value(), int_value()).prop_map(|(a, b)| format!("[{a}, {b}]")),
        ];
        s.boxed()
    }

    fn map_value() -> impl Strategy<Value = String> {
        let s = vec(
            (
                prop_oneof![
                    3 => select(&["plan", "ref", "team", "", "a b", "ü"][..]).prop_map(str::to_string),
                    1 => super::hostile(2),
                ],
                str_value(),
            ),
            0..3,
        )
        .prop_map(|kv| {
            let mut seen = std::collections::HashSet::new();
            let body: Vec<String> = kv
                .iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| format!("{} = {v}", toml_string(k)))
                .collect();
            format!("{{ {} }}", body.join(", "))
        });
        s.boxed()
    }

    fn typed() -> impl Strategy<Value = Typed> {
        let s = (
            (str_value(), int_value(), any::<bool>(), strs_value()),
            (any_value(), any_value(), map_value(), any::<u8>()),
            prop_oneof![12 => Just(None), 1 => value().prop_map(Some)],
        )
            .prop_map(
                |((s, i, b, strs), (any, any2, map, match_keys), wrong)| Typed {
                    s,
                    i,
                    b,
                    strs,
                    any,
                    any2,
                    map,
                    match_keys,
                    wrong,
                },
            );
        s.boxed()
    }

    /// A file of the real tables and keys, values mostly of the right type:
    /// it gets past the TOML syntax and types into every field's checks.
    fn generated_file() -> impl Strategy<Value = String> {
        let table = prop_oneof![
            1 => Just(0usize), 1 => Just(1), 4 => Just(2), 1 => Just(3), 1 => Just(4), 2 => Just(5),
        ]
        .prop_flat_map(|t| (Just(t), vec((select(TABLES[t].1), typed()), 0..9)));
        let s = vec(table, 0..7).prop_map(|tables| {
            let mut out = String::new();
            for (t, kvs) in tables {
                out.push_str(TABLES[t].0);
                out.push('\n');
                let mut used = std::collections::HashSet::new();
                for (k, v) in kvs {
                    if used.insert(k) {
                        out.push_str(&format!("{k} = {}\n", v.for_key(k)));
                    }
                }
            }
            out
        });
        s.boxed()
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Delete(prop::sample::Index, usize),
        Insert(prop::sample::Index, String),
        /// Replace the value after the n-th ` = ` (inline tables too) by
        /// one of the type its key expects, mostly.
        Value(prop::sample::Index, Box<Typed>),
        DupLine(prop::sample::Index),
        DropLine(prop::sample::Index),
        SwapLines(prop::sample::Index, prop::sample::Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let s = {
            let idx = any::<prop::sample::Index>;
            prop_oneof![
                2 => (idx(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
                2 => (idx(), prop_oneof![super::hostile(3), select(&["\n", "[", "]", "=", "\"", "'''", "[[metric]]\n", "#", "{", "}", ",", "\\"][..]).prop_map(str::to_string)])
                    .prop_map(|(i, s)| Edit::Insert(i, s)),
                8 => (idx(), typed()).prop_map(|(i, v)| Edit::Value(i, Box::new(v))),
                1 => idx().prop_map(Edit::DupLine),
                1 => idx().prop_map(Edit::DropLine),
                1 => (idx(), idx()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
            ]
        };
        s.boxed()
    }

    /// Where the TOML value starting at `start` ends (roughly: strings,
    /// brackets and braces are balanced; good enough to replace it).
    fn value_end(s: &str, start: usize) -> usize {
        let b = s.as_bytes();
        let mut depth = 0i32;
        let mut i = start;
        let mut in_str = false;
        while i < b.len() {
            let c = b[i];
            if in_str {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    in_str = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    b',' | b'}' | b']' | b'\n' | b'#' if depth == 0 => return i,
                    _ => {}
                }
            }
            i += 1;
        }
        b.len()
    }

    fn floor_boundary(s: &str, mut i: usize) -> usize {
        i = i.min(s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut s = text.to_string();
        for e in edits {
            match e {
                Edit::Delete(at, n) => {
                    let a = floor_boundary(&s, at.index(s.len() + 1));
                    let b = floor_boundary(&s, a + n);
                    s.replace_range(a..b, "");
                }
                Edit::Insert(at, t) => {
                    let a = floor_boundary(&s, at.index(s.len() + 1));
                    s.insert_str(a, t);
                }
                Edit::Value(nth, v) => {
                    let spots: Vec<usize> = s
                        .match_indices(" = ")
                        .map(|(i, _)| i)
                        .filter(|i| {
                            let line_start = s[..*i].rfind('\n').map_or(0, |n| n + 1);
                            !s[line_start..*i].contains('#')
                        })
                        .collect();
                    if spots.is_empty() {
                        continue;
                    }
                    let at = spots[nth.index(spots.len())];
                    let key_start = s[..at]
                        .char_indices()
                        .rev()
                        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
                        .map_or(0, |(n, c)| n + c.len_utf8());
                    let key = s[key_start..at].to_string();
                    let start = at + 3;
                    let end = value_end(&s, start).max(start);
                    s.replace_range(start..end, &v.for_key(&key));
                }
                Edit::DupLine(at) | Edit::DropLine(at) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let i = at.index(lines.len());
                    if matches!(e, Edit::DupLine(_)) {
                        lines.insert(i, lines[i]);
                    } else {
                        lines.remove(i);
                    }
                    s = lines.join("\n");
                }
                Edit::SwapLines(a, b) => {
                    let mut lines: Vec<&str> = s.lines().collect();
                    if lines.is_empty() {
                        continue;
                    }
                    let (i, j) = (a.index(lines.len()), b.index(lines.len()));
                    lines.swap(i, j);
                    s = lines.join("\n");
                }
            }
        }
        s
    }

    proptest! {
        #![proptest_config(cases(96))]

        /// Random text and random bytes: never a panic, errors located.
        #[test]
        fn arbitrary_text(text in prop_oneof![
            any::<String>(),
            super::hostile(30),
            super::bytes(300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]) {
            let r = parse_toml(&text, "fuzz.toml");
            check(&text, &r)?;
        }

    }

    proptest! {
        #![proptest_config(cases(40))]

        /// The shipped file (or the exercise file) with a few random edits.
        #[test]
        fn mutated_valid_file(
            exercise in any::<bool>(),
            edits in vec(edit(), 1..5),
        ) {
            let base = if exercise { super::classify::EXERCISE } else { SHIPPED };
            let text = apply(base, &edits);
            let r = parse_toml(&text, "fuzz.toml");
            check(&text, &r)?;
        }

        /// Files of the real tables and keys with random values.
        #[test]
        fn generated_file_with_random_values(text in generated_file()) {
            let r = parse_toml(&text, "fuzz.toml");
            check(&text, &r)?;
        }
    }
}

// ---------------------------------------------------------------------------
// backfill: the CSV import

mod backfill {
    use super::*;
    use bpm_edge::config::{parse_toml, Config};
    use bpm_edge::count::tally::Row;
    use bpm_edge::history::backfill::{parse, Counts, BATCH_ROWS, MAX_EXACT_COUNT};
    use bpm_edge::time::format_time;
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    pub fn config() -> &'static Config {
        static C: OnceLock<Config> = OnceLock::new();
        C.get_or_init(|| parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap())
    }

    /// Seconds chrono can write as RFC 3339 with a four-digit year.
    fn any_time() -> impl Strategy<Value = i64> {
        let s = {
            prop_oneof![
                3 => super::recent_secs(),
                1 => -62_135_596_800i64..253_402_300_799,
            ]
        };
        s.boxed()
    }

    fn timestamp() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                6 => any_time().prop_map(format_time),
                2 => (any_time(), -86_399i32..86_400).prop_map(|(t, off)| {
                    let off = chrono::FixedOffset::east_opt(off).unwrap();
                    chrono::DateTime::from_timestamp(t, 0).unwrap().with_timezone(&off).to_rfc3339()
                }),
                1 => select(&["yesterday", "2026-11-01", "2026-11-01T10:05:00", "2026-13-01T00:00:00Z", "", "+275760-09-13T00:00:00Z"][..]).prop_map(str::to_string),
                1 => super::hostile(3),
            ]
        };
        s.boxed()
    }

    fn count() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                4 => (0u64..1000).prop_map(|n| n.to_string()),
                2 => any::<u64>().prop_map(|n| n.to_string()),
                2 => (u64::MAX - 3..=u64::MAX).prop_map(|n| n.to_string()),
                1 => select(&["-1", "1.5", " 7 ", "", "18446744073709551616", "+3", "0x10"][..]).prop_map(str::to_string),
            ]
        };
        s.boxed()
    }

    fn metric() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                6 => select(&["logins", "signups", "marketing_views", "login_views", "traffic"][..]).prop_map(str::to_string),
                1 => select(&["login_success", "nope", "", "LOGINS"][..]).prop_map(str::to_string),
                1 => super::hostile(2),
            ]
        };
        s.boxed()
    }

    fn split() -> impl Strategy<Value = Option<(String, String)>> {
        let s = {
            prop::option::of((
                prop_oneof![
                    4 => select(&["status", "source", "utm_source", "utm_medium", "utm_campaign", "landing"][..]).prop_map(str::to_string),
                    1 => select(&["lat", "count", "bot", "", "other"][..]).prop_map(str::to_string),
                ],
                prop_oneof![
                    3 => select(vec!["google".to_string(), "2xx".into(), "spring launch".into(), "/blog/**".into(), "(none)".into(), "x".repeat(64), "x".repeat(65)]),
                    2 => super::hostile(4),
                ],
            ))
        };
        s.boxed()
    }

    pub fn line() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                8 => (timestamp(), metric(), count(), split()).prop_map(|(t, m, n, s)| match s {
                    None => format!("{t},{m},{n}"),
                    Some((d, v)) => format!("{t},{m},{n},{d},{v}"),
                }),
                1 => Just("timestamp,metric,count".to_string()),
                1 => super::hostile(8),
            ]
        };
        s.boxed()
    }

    /// What an accepted import must satisfy.
    pub fn check_counts(text: &str, counts: &Counts) -> Result<(), TestCaseError> {
        let total = counts.total();
        let saturated = counts
            .minutes
            .values()
            .fold(0u64, |a, n| a.saturating_add(*n));
        prop_assert_eq!(total, saturated);
        for (t, _) in counts.minutes.keys() {
            prop_assert_eq!(t.rem_euclid(60), 0);
        }
        let mut expected: Vec<Row> = counts
            .minutes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((t, m), n)| Row(*t, m.clone(), "count".into(), String::new(), *n))
            .chain(
                counts
                    .splits
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|((t, m, d, v), n)| Row(*t, m.clone(), d.clone(), v.clone(), *n)),
            )
            .collect();
        Row::sort(&mut expected);
        for shards in [0u32, 1, 4, 64] {
            let batches = counts.batches(shards);
            prop_assert_eq!(&batches, &counts.batches(shards), "deterministic");
            let mut rows: Vec<Row> = Vec::new();
            for (shard, b) in &batches {
                prop_assert!(*shard < shards.max(1));
                prop_assert!(!b.rows.is_empty() && b.rows.len() <= BATCH_ROWS);
                prop_assert!(
                    b.id.starts_with("backfill-") && b.id.len() == 9 + 24,
                    "{}",
                    b.id
                );
                prop_assert_eq!(b.requests, 0);
                rows.extend(b.rows.iter().cloned());
            }
            Row::sort(&mut rows);
            prop_assert_eq!(&rows, &expected, "batches carry every row once");
        }
        let mut per_metric: BTreeMap<&str, i64> = BTreeMap::new();
        for ((_, m), n) in &counts.minutes {
            if *n > 0 {
                let slot = per_metric.entry(m.as_str()).or_insert(0);
                *slot = slot.saturating_add(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        let minute_counts = counts.minute_counts();
        let mut bucket_sums: BTreeMap<&str, i64> = BTreeMap::new();
        for (m, t, n) in &minute_counts {
            prop_assert_eq!(t.rem_euclid(60), 0);
            prop_assert!(*n > 0);
            let slot = bucket_sums.entry(m.as_str()).or_insert(0);
            *slot = slot.saturating_add(*n);
        }
        prop_assert_eq!(bucket_sums, per_metric);
        let again = parse(text, config());
        prop_assert_eq!(again.as_ref(), Ok(counts), "deterministic");
        Ok(())
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Arbitrary text: never a panic; refused lines are numbered in
        /// order and at most 20 are reported.
        #[test]
        fn arbitrary_text(text in prop_oneof![
            any::<String>(),
            super::hostile(20),
            vec(line(), 0..12).prop_map(|l| l.join("\n")),
            vec(line(), 0..12).prop_map(|l| l.join("\r\n")),
        ]) {
            match parse(&text, config()) {
                Ok(counts) => check_counts(&text, &counts)?,
                Err(errors) => {
                    prop_assert!(!errors.is_empty() && errors.len() <= 20, "{} errors", errors.len());
                    let lines = text.lines().count();
                    prop_assert!(errors.windows(2).all(|w| w[0].line < w[1].line));
                    for e in &errors {
                        prop_assert!((1..=lines).contains(&e.line), "{:?}", e);
                        prop_assert!(!e.message.is_empty());
                    }
                }
            }
        }

        /// Counts written as `timestamp,metric,count` (what replay writes)
        /// read back as the same counts, unless a metric's 5-minute bucket
        /// adds up to more than storage holds exactly: then the import is
        /// refused.
        #[test]
        fn written_counts_read_back(
            counts in prop::collection::btree_map(
                (any_time().prop_map(|t| t.div_euclid(60) * 60), select(&["logins", "signups", "marketing_views", "traffic"][..])),
                prop_oneof![4 => 1u64..1000, 1 => 0..=MAX_EXACT_COUNT, 1 => MAX_EXACT_COUNT / 2..=MAX_EXACT_COUNT / 2 + 2, 1 => any::<u64>()],
                0..20,
            ),
            header in any::<bool>(),
        ) {
            let mut text = String::new();
            if header {
                text.push_str("timestamp,metric,count\n");
            }
            for ((t, m), n) in &counts {
                text.push_str(&format!("{},{m},{n}\n", format_time(*t)));
            }
            let mut buckets: BTreeMap<(&str, i64), u64> = BTreeMap::new();
            for ((t, m), n) in &counts {
                let b = buckets.entry((*m, t.div_euclid(300))).or_insert(0);
                *b = b.saturating_add(*n);
            }
            let fits = buckets.values().all(|n| *n <= MAX_EXACT_COUNT);
            let parsed = parse(&text, config());
            prop_assert_eq!(parsed.is_ok(), fits, "{:?}", parsed);
            if let Ok(parsed) = parsed {
                let want: BTreeMap<(i64, String), u64> =
                    counts.iter().map(|((t, m), n)| ((*t, m.to_string()), *n)).collect();
                prop_assert_eq!(&parsed.minutes, &want);
                check_counts(&text, &parsed)?;
            }
        }
    }

    /// The largest import a request may carry in counts storage holds:
    /// thousands of minutes near 2^53 each. Its total is still a number.
    /// Each case is a 2,000-line import of the same shape, so a few say all
    /// there is: 8 cases, whatever PROPTEST_CASES says (the `proptest!`
    /// macro would apply it, a runner of our own does not).
    #[test]
    fn huge_imports_add_up() {
        let mut runner = proptest::test_runner::TestRunner::new(fixed_cases(8));
        let strategy = (
            2000usize..2200,
            super::recent_secs(),
            vec(0u64..1000, 1..50),
        );
        let result = runner.run(&strategy, |(n, start, below)| {
            let text: String = (0..n)
                .map(|i| {
                    let t = (start.div_euclid(300) + i as i64) * 300;
                    format!(
                        "{},logins,{}\n",
                        format_time(t),
                        MAX_EXACT_COUNT - below[i % below.len()]
                    )
                })
                .collect();
            let parsed = parse(&text, config());
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e[0].clone()));
            check_counts(&text, &parsed.unwrap())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// accesslog: log lines and replay

mod accesslog {
    use super::*;
    use bpm_edge::count::classify::Hit;
    use bpm_edge::history::accesslog::LogLine;
    use bpm_edge::history::replay::{log_time, LogFormat, Replay};
    use std::collections::BTreeMap;

    /// Text that may sit between quotes in a log: no `"` or `\` except as
    /// the escapes `\"` and `\\`, which are kept as written.
    fn quoted_text() -> impl Strategy<Value = String> {
        let s = {
            vec(
                prop_oneof![
                    6 => "[^\"\\\\]{0,6}",
                    1 => Just("\\\"".to_string()),
                    1 => Just("\\\\".to_string()),
                    1 => select(&["-", "", " ", "Mozilla/5.0 (X11) Chrome/130", "https://www.google.com/", "Googlebot/2.1"][..]).prop_map(str::to_string),
                ],
                0..5,
            )
            .prop_map(|v| v.concat())
        };
        s.boxed()
    }

    fn log_timestamp() -> impl Strategy<Value = (i64, String)> {
        let s = {
            (-62_135_596_800i64..253_402_300_799, -86_340i32..=86_340).prop_map(|(t, off)| {
                let off = chrono::FixedOffset::east_opt(off / 60 * 60).unwrap();
                let d = chrono::DateTime::from_timestamp(t, 0)
                    .unwrap()
                    .with_timezone(&off);
                (t, d.format("%d/%b/%Y:%H:%M:%S %z").to_string())
            })
        };
        s.boxed()
    }

    #[derive(Debug, Clone)]
    struct Fields {
        time: String,
        method: String,
        target: String,
        status: u16,
        size: String,
        referer: String,
        agent: String,
        combined: bool,
    }

    impl Fields {
        fn line(&self) -> String {
            let mut l = format!(
                "203.0.113.9 - frank [{}] \"{} {} HTTP/1.1\" {} {}",
                self.time, self.method, self.target, self.status, self.size
            );
            if self.combined {
                l.push_str(&format!(" \"{}\" \"{}\"", self.referer, self.agent));
            }
            l
        }
    }

    fn fields() -> impl Strategy<Value = Fields> {
        let s = {
            (
                prop_oneof![3 => log_timestamp().prop_map(|(_, s)| s), 1 => "[^\\]]{0,30}"],
                prop_oneof![3 => select(&["GET", "POST", "HEAD"][..]).prop_map(str::to_string), 1 => "[^ \"\\\\]{1,10}"],
                prop_oneof![
                    3 => select(&["/", "/login", "/pricing?utm_source=x", "/blog/a%20b", "*"][..]).prop_map(str::to_string),
                    1 => "[^ \"\\\\]{0,30}",
                ],
                any::<u16>(),
                select(&["-", "0", "5123"][..]).prop_map(str::to_string),
                quoted_text(),
                quoted_text(),
                any::<bool>(),
            )
                .prop_map(|(time, method, target, status, size, referer, agent, combined)| Fields {
                    time,
                    method,
                    target,
                    status,
                    size,
                    referer,
                    agent,
                    combined,
                })
        };
        s.boxed()
    }

    fn dash_none(s: &str) -> Option<&str> {
        (!s.is_empty() && s != "-").then_some(s)
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// Arbitrary lines: never a panic; what is parsed comes from the
        /// line and has the documented shape.
        #[test]
        fn arbitrary_lines(line in prop_oneof![
            any::<String>(),
            super::hostile(12),
            fields().prop_map(|f| f.line()),
            (fields(), any::<prop::sample::Index>(), 1usize..8).prop_map(|(f, at, n)| {
                let l = f.line();
                let mut a = at.index(l.len() + 1);
                while !l.is_char_boundary(a) { a -= 1; }
                let mut b = (a + n).min(l.len());
                while !l.is_char_boundary(b) { b -= 1; }
                format!("{}{}", &l[..a], &l[b..])
            }),
        ]) {
            if let Some(p) = LogLine::parse(&line) {
                prop_assert!(!p.method.is_empty() && !p.method.contains(' '));
                prop_assert!(!p.target.contains(' '));
                prop_assert!(!p.time.contains(']'));
                for part in [p.time, p.method, p.target] {
                    prop_assert!(line.contains(part));
                }
                for part in [p.referer, p.user_agent].into_iter().flatten() {
                    prop_assert!(line.contains(part) && part != "-" && !part.is_empty());
                }
            }
            let _ = log_time(&line);
        }

        /// A line written in the combined or common format parses back to
        /// its fields.
        #[test]
        fn written_lines_parse_back(f in fields()) {
            let line = f.line();
            let p = LogLine::parse(&line);
            prop_assert!(p.is_some(), "{:?} did not parse", line);
            let p = p.unwrap();
            prop_assert_eq!(p.time, f.time.as_str());
            prop_assert_eq!(p.method, f.method.as_str());
            prop_assert_eq!(p.target, f.target.as_str());
            prop_assert_eq!(p.status, f.status);
            if f.combined {
                prop_assert_eq!(p.referer, dash_none(&f.referer));
                prop_assert_eq!(p.user_agent, dash_none(&f.agent));
            } else {
                prop_assert_eq!((p.referer, p.user_agent), (None, None));
            }
        }

        /// Log times in any offset read back as the instant written.
        #[test]
        fn log_times_read_back((t, text) in log_timestamp()) {
            prop_assert_eq!(log_time(&text), Some(t));
        }

    }

    proptest! {
        #![proptest_config(cases(128))]

        /// Replay counts what the classifier counts for the logged facts,
        /// per minute; garbage lines are counted as malformed; the CSV it
        /// writes imports as the same counts.
        #[test]
        fn replay_counts_and_round_trips(
            lines in vec(prop_oneof![
                6 => (fields(), log_timestamp()).prop_map(|(mut f, (t, s))| { f.time = s; (Some(t), f.line()) }),
                1 => super::hostile(6).prop_map(|l| (None, l)),
            ], 0..25),
            common in any::<bool>(),
        ) {
            let c = super::classify::shipped();
            let format = if common { LogFormat::Common } else { LogFormat::Combined };
            let mut replay = Replay::default();
            let mut hits: Vec<Hit> = Vec::new();
            let mut want: BTreeMap<(i64, String), u64> = BTreeMap::new();
            let mut bots = 0;
            let mut parsed_lines = 0;
            for (i, (t, line)) in lines.iter().enumerate() {
                replay.add_line(c, format, "www.example.com", i as u64 + 1, line, &mut hits);
                if let (Some(t), Some(p)) = (t, LogLine::parse(line)) {
                    parsed_lines += 1;
                    let mut facts = p.request_facts("www.example.com");
                    if common {
                        facts.referer = None;
                        facts.user_agent = Some(b"(not logged)");
                    }
                    let mut mine = Vec::new();
                    c.classify(&facts, &p.response_facts(), &mut mine);
                    for h in mine {
                        if !h.counted {
                            bots += 1;
                        } else {
                            *want.entry((t.div_euclid(60) * 60, c.config().metrics[h.metric].name.clone())).or_insert(0) += 1;
                        }
                    }
                }
            }
            prop_assert_eq!(replay.lines, lines.len() as u64);
            prop_assert!(replay.malformed <= lines.len() as u64 - parsed_lines);
            prop_assert!(replay.malformed_examples.len() <= 5);
            prop_assert!(replay.malformed_examples.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(&replay.counts, &want);
            prop_assert_eq!(replay.not_counted, bots);
            if common {
                // Unlogged agents are taken for browsers, which every
                // shipped metric counts.
                prop_assert_eq!(replay.not_counted, 0);
            }
            let csv = replay.to_csv();
            let back = bpm_edge::history::backfill::parse(&csv, super::backfill::config());
            prop_assert!(back.is_ok(), "{:?}\n{}", back, csv);
            let back = back.unwrap();
            prop_assert_eq!(&back.minutes, &replay.counts);
            super::backfill::check_counts(&csv, &back)?;
        }
    }
}

// ---------------------------------------------------------------------------
// payload: the webhook bodies

mod payload {
    use super::*;
    use bpm_edge::alert::event::{
        AlertEvent, EventStatus, HealthChange, MetricInfo, OtherBpm, Scope, Severity, StatusShare,
    };
    use bpm_edge::alert::payload::{elapsed_label, render, summary, Destination, WebhookFormat};
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn num() -> impl Strategy<Value = f64> {
        let s = {
            prop_oneof![
                4 => -1000.0f64..1000.0,
                1 => any::<f64>(),
                1 => select(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, -0.0, 1e-300][..]),
            ]
        };
        s.boxed()
    }

    fn secs() -> impl Strategy<Value = i64> {
        let s = {
            prop_oneof![
                4 => super::recent_secs(),
                2 => -100_000i64..100_000_000,
                1 => any::<i64>(),
                1 => select(&[i64::MIN, i64::MAX, 0, -1][..]),
            ]
        };
        s.boxed()
    }

    fn text() -> impl Strategy<Value = String> {
        let s = { super::hostile(6) };
        s.boxed()
    }

    fn metric() -> impl Strategy<Value = MetricInfo> {
        let s = {
            (text(), text(), text(), text(), text()).prop_map(
                |(name, stage, description, owner, runbook)| MetricInfo {
                    name,
                    stage,
                    description,
                    owner,
                    runbook,
                },
            )
        };
        s.boxed()
    }

    fn others() -> impl Strategy<Value = Vec<OtherBpm>> {
        let s = {
            vec(
                (text(), text(), text(), prop::option::of(num())).prop_map(
                    |(metric, rule, state, ratio)| OtherBpm {
                        metric,
                        rule,
                        state,
                        ratio,
                    },
                ),
                0..4,
            )
        };
        s.boxed()
    }

    fn health() -> impl Strategy<Value = Option<HealthChange>> {
        let s = {
            prop::option::of(
                (
                    vec(
                        (text(), num(), prop::option::of(num())).prop_map(
                            |(class, now_pct, before_pct)| StatusShare {
                                class,
                                now_pct,
                                before_pct,
                            },
                        ),
                        0..5,
                    ),
                    prop::option::of(num()),
                    prop::option::of(num()),
                )
                    .prop_map(|(status, p95_ms_now, p95_ms_before)| HealthChange {
                        status,
                        p95_ms_now,
                        p95_ms_before,
                    }),
            )
        };
        s.boxed()
    }

    /// Where a drop happened, with hostile values and text (the formats
    /// put the text into Slack lines, PagerDuty's summary and an
    /// Alertmanager annotation).
    fn explanation() -> impl Strategy<Value = Option<bpm_edge::alert::explain::Explanation>> {
        use bpm_edge::alert::explain::{Explanation, Finding};
        let finding = prop_oneof![
            (text(), text(), num(), num(), num(), num()).prop_map(
                |(dimension, value, observed, expected, change, change_pct)| Finding::Lost {
                    dimension,
                    value,
                    observed,
                    expected,
                    change,
                    change_pct,
                }
            ),
            (text(), text(), num(), num()).prop_map(|(dimension, value, share, baseline_share)| {
                Finding::ShareRose {
                    dimension,
                    value,
                    share,
                    baseline_share,
                }
            }),
        ];
        let s = prop::option::of(
            (text(), vec(finding, 0..4))
                .prop_map(|(text, findings)| Explanation { text, findings }),
        );
        s.boxed()
    }

    fn event() -> impl Strategy<Value = AlertEvent> {
        let s = {
            let ids = (
                text(),
                text(),
                text(),
                any::<u64>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                text(),
                text(),
            );
            let labels = prop::collection::btree_map(text(), text(), 0..4);
            let numbers = (
                secs(),
                secs(),
                num(),
                num(),
                num(),
                num(),
                num(),
                secs(),
                prop::option::of(secs()),
                secs(),
                prop::option::of(num()),
            );
            (ids, labels, metric(), numbers, text(), others(), health()).prop_map(
                |(
                    (id, fingerprint, incident, sequence, firing, repeat, critical, site, rule),
                    labels,
                    metric,
                    (
                        at,
                        window,
                        observed,
                        expected,
                        drop_pct,
                        z,
                        p_value,
                        started_at,
                        resolved_at,
                        duration_s,
                        lowest_ratio,
                    ),
                    dashboard_url,
                    other_bpms,
                    health,
                )| AlertEvent {
                    id,
                    fingerprint,
                    incident,
                    sequence,
                    status: if firing {
                        EventStatus::Firing
                    } else {
                        EventStatus::Resolved
                    },
                    repeat,
                    severity: if critical {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    site,
                    rule,
                    scope: None,
                    labels,
                    metric,
                    at,
                    window,
                    observed,
                    expected,
                    drop_pct,
                    z,
                    p_value,
                    started_at,
                    resolved_at,
                    duration_s,
                    lowest_ratio,
                    dashboard_url,
                    other_bpms,
                    health,
                    explanation: None,
                    after_deploy: None,
                },
            )
        };
        // A `by` rule's event names a dimension value, hostile like any
        // other text.
        let scope = prop::option::of(
            (text(), text()).prop_map(|(dimension, value)| Scope { dimension, value }),
        );
        (s, explanation(), scope)
            .prop_map(|(event, explanation, scope)| AlertEvent {
                explanation,
                scope,
                ..event
            })
            .boxed()
    }

    fn events() -> impl Strategy<Value = Vec<AlertEvent>> {
        let s = {
            prop_oneof![
                8 => vec(event(), 0..4),
                1 => vec(event(), 45..52),
            ]
        };
        s.boxed()
    }

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }

    fn check_slack(body: &Value) -> Result<(), TestCaseError> {
        // The limits Slack documents, counted in characters.
        prop_assert!(
            chars(&body["text"]) <= 3000,
            "text {}",
            chars(&body["text"])
        );
        let blocks = body["blocks"].as_array().unwrap();
        prop_assert!(
            !blocks.is_empty() && blocks.len() <= 50,
            "{} blocks",
            blocks.len()
        );
        prop_assert_eq!(blocks[0]["type"].as_str(), Some("header"));
        for b in blocks {
            let texts: Vec<&Value> = match b["type"].as_str() {
                Some("header") => {
                    prop_assert!(
                        chars(&b["text"]["text"]) <= 150,
                        "header {}",
                        chars(&b["text"]["text"])
                    );
                    prop_assert_eq!(b["text"]["type"].as_str(), Some("plain_text"));
                    vec![&b["text"]]
                }
                Some("section") => vec![&b["text"]],
                Some("context") => b["elements"].as_array().unwrap().iter().collect(),
                other => return Err(TestCaseError::fail(format!("block type {other:?}"))),
            };
            for t in texts {
                let n = chars(&t["text"]);
                prop_assert!((1..=3000).contains(&n), "text object of {} characters", n);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(cases(48))]

        /// Every format: never a panic, bodies are JSON, ids as documented,
        /// Slack and PagerDuty within their documented limits, rendering
        /// is pure and the grouped id ignores event order.
        #[test]
        fn every_format_renders_valid_json(
            evs in events(),
            routing_key in prop::option::of(text()),
            external_url in text(),
            receiver in text(),
        ) {
            for format in WebhookFormat::ALL {
                let dest = Destination {
                    receiver: &receiver,
                    format,
                    routing_key: routing_key.as_deref(),
                    external_url: &external_url,
                };
                let msgs = render(&dest, &evs);
                prop_assert_eq!(&msgs, &render(&dest, &evs), "pure");
                if evs.is_empty() {
                    prop_assert!(msgs.is_empty());
                    continue;
                }
                let bodies: Vec<Value> = msgs
                    .iter()
                    .map(|m| serde_json::from_str::<Value>(&m.body))
                    .collect::<Result<_, _>>()
                    .map_err(|e| TestCaseError::fail(format!("{format:?} body is not JSON: {e}")))?;
                match format {
                    WebhookFormat::Json | WebhookFormat::Pagerduty => {
                        prop_assert_eq!(msgs.len(), evs.len());
                        for (m, e) in msgs.iter().zip(&evs) {
                            prop_assert_eq!(&m.id, &e.id);
                        }
                    }
                    WebhookFormat::Slack | WebhookFormat::Alertmanager => {
                        prop_assert_eq!(msgs.len(), 1);
                        let id = &msgs[0].id;
                        prop_assert!(id.len() == 20 && id.starts_with("grp_"), "{}", id);
                        let mut reversed = evs.clone();
                        reversed.reverse();
                        prop_assert_eq!(&render(&dest, &reversed)[0].id, id);
                    }
                }
                for (body, e) in bodies.iter().zip(&evs) {
                    match format {
                        WebhookFormat::Json => {
                            prop_assert_eq!(body["id"].as_str(), Some(e.id.as_str()));
                            prop_assert_eq!(body["labels"].as_object().map(|l| l.len()), Some(e.labels.len()));
                        }
                        WebhookFormat::Pagerduty => {
                            prop_assert_eq!(body["dedup_key"].as_str(), Some(e.fingerprint.as_str()));
                            prop_assert_eq!(body["routing_key"].as_str(), Some(routing_key.as_deref().unwrap_or("")));
                            if e.status == EventStatus::Firing {
                                let s = &body["payload"]["summary"];
                                prop_assert!(chars(s) <= 1024, "summary of {} characters", chars(s));
                                prop_assert!(!body["payload"]["source"].as_str().unwrap_or("").is_empty());
                            } else {
                                prop_assert_eq!(body.as_object().unwrap().len(), 3);
                            }
                        }
                        _ => {}
                    }
                }
                match format {
                    WebhookFormat::Slack => check_slack(&bodies[0])?,
                    WebhookFormat::Alertmanager => {
                        let b = &bodies[0];
                        let alerts = b["alerts"].as_array().unwrap();
                        prop_assert_eq!(alerts.len(), evs.len());
                        let firing = evs.iter().any(|e| e.status == EventStatus::Firing);
                        prop_assert_eq!(b["status"].as_str(), Some(if firing { "firing" } else { "resolved" }));
                        for a in alerts {
                            for map in ["labels", "annotations"] {
                                for (k, v) in a[map].as_object().unwrap() {
                                    prop_assert!(!v.as_str().unwrap_or("").is_empty(), "empty {} {:?}", map, k);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        /// The shared labels never panic, whatever the numbers.
        #[test]
        fn labels_never_panic(e in event(), s in any::<i64>()) {
            let line = summary(&e);
            prop_assert!(line.starts_with(e.metric.name.as_str()));
            prop_assert!(!bpm_edge::time::duration_label(s).is_empty());
            prop_assert!(!elapsed_label(s).is_empty());
            let _ = BTreeMap::<String, String>::new();
        }
    }
}

// ---------------------------------------------------------------------------
// auth: the API token and the dashboard's session cookie

mod auth {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use bpm_edge::auth::{
        authorise, check_session, check_token, cookie_value, is_loopback, issue_session,
        screen_token, session_cookie, without_session_cookie, AuthError, Authorised, Credentials,
        DEMO_TOKEN, MIN_TOKEN_LEN, SESSION_COOKIE, SESSION_SECS,
    };

    fn token() -> impl Strategy<Value = String> {
        let s = {
            prop_oneof![
                3 => "[A-Za-z0-9_-]{16,40}",
                1 => super::hostile(6),
            ]
        };
        s.boxed()
    }

    fn now() -> impl Strategy<Value = i64> {
        let s = {
            prop_oneof![3 => super::recent_secs(), 1 => -4_000_000_000_000i64..4_000_000_000_000]
        };
        s.boxed()
    }

    #[derive(Debug, Clone)]
    enum Tamper {
        Char(prop::sample::Index, char),
        Remove(prop::sample::Index),
        Insert(prop::sample::Index, char),
        Expires(i64),
        Mac(Vec<u8>),
        Append(String),
        Truncate(prop::sample::Index),
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        let s = {
            let idx = any::<prop::sample::Index>;
            let ch = || {
                prop_oneof![
                    any::<char>(),
                    select(&['.', '0', '1', '9', '-', '+', ' ', '=', 'A', '_', 'a'][..])
                ]
            };
            prop_oneof![
                (idx(), ch()).prop_map(|(i, c)| Tamper::Char(i, c)),
                idx().prop_map(Tamper::Remove),
                (idx(), ch()).prop_map(|(i, c)| Tamper::Insert(i, c)),
                any::<i64>().prop_map(Tamper::Expires),
                super::bytes(40).prop_map(Tamper::Mac),
                super::hostile(2).prop_map(Tamper::Append),
                idx().prop_map(Tamper::Truncate),
            ]
        };
        s.boxed()
    }

    fn apply(value: &str, t: &Tamper) -> String {
        let mut out: Vec<char> = value.chars().collect();
        if out.is_empty() {
            return value.to_string();
        }
        match t {
            Tamper::Char(i, c) => {
                let i = i.index(out.len());
                out[i] = *c;
            }
            Tamper::Remove(i) => {
                out.remove(i.index(out.len()));
            }
            Tamper::Insert(i, c) => out.insert(i.index(out.len() + 1), *c),
            Tamper::Expires(e) => {
                let mut parts = value.splitn(3, '.');
                let (v, _, mac) = (
                    parts.next().unwrap_or(""),
                    parts.next(),
                    parts.next().unwrap_or(""),
                );
                return format!("{v}.{e}.{mac}");
            }
            Tamper::Mac(m) => {
                let mut parts = value.splitn(3, '.');
                let (v, e) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                return format!("{v}.{e}.{}", URL_SAFE_NO_PAD.encode(m));
            }
            Tamper::Append(s) => return format!("{value}{s}"),
            Tamper::Truncate(i) => out.truncate(i.index(out.len())),
        }
        out.into_iter().collect()
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// A session value no one with the token issued is never accepted.
        #[test]
        fn arbitrary_sessions_are_refused(
            value in prop_oneof![
                super::hostile(8),
                (any::<i64>(), super::bytes(40)).prop_map(|(e, m)| format!("v1.{e}.{}", URL_SAFE_NO_PAD.encode(m))),
            ],
            configured in prop::option::of(token()),
            now in now(),
        ) {
            let r = check_session(&value, configured.as_deref(), now);
            prop_assert!(r.is_err(), "forged session {:?} accepted", value);
        }

        /// An issued session verifies until it expires; tampering with it
        /// (or presenting it under another token) never yields a session,
        /// except a rewriting that keeps its expiry (surrounding
        /// whitespace, a `+` or leading zeros in the number).
        #[test]
        fn tampered_sessions_are_refused(
            configured in token(),
            other in token(),
            now in now(),
            age in 0i64..SESSION_SECS + 10,
            tampers in vec(tamper(), 1..4),
        ) {
            let issued = issue_session(Some(&configured), now);
            if configured.trim().chars().count() < MIN_TOKEN_LEN {
                prop_assert!(matches!(issued, Err(AuthError::NotConfigured | AuthError::TooShort)), "{:?}", issued);
                return Ok(());
            }
            let (value, expires) = issued.unwrap();
            prop_assert_eq!(expires, now + SESSION_SECS);
            let at = now + age;
            let fresh = check_session(&value, Some(&configured), at);
            if at < expires {
                prop_assert_eq!(fresh, Ok(expires));
            } else {
                prop_assert_eq!(fresh, Err(AuthError::SessionExpired));
            }
            if other.trim() != configured.trim() {
                prop_assert!(check_session(&value, Some(&other), now).is_err(), "valid under another token");
            }
            let mut forged = value.clone();
            for t in &tampers {
                forged = apply(&forged, t);
            }
            if let Ok(e) = check_session(&forged, Some(&configured), now) {
                prop_assert_eq!(e, expires, "{:?} accepted with another expiry", forged);
            }
        }

        /// Bearer tokens, logins, cookies and the whole decision never
        /// panic; a grant always rests on the configured token or a session
        /// issued with it, a cookie-authorised change on the CSRF header;
        /// and the right credential is accepted.
        #[test]
        fn authorise_grants_only_with_a_credential(
            configured in prop::option::of(token()),
            header_mode in 0u8..4,
            scheme in select(&["Bearer", "bearer", "BEARER", "Basic", "", "Bearer\t"][..]),
            pad in select(&["", " ", "  "][..]),
            stray in super::hostile(4),
            cookie_mode in 0u8..4,
            age in -10i64..SESSION_SECS + 10,
            tampers in vec(tamper(), 1..3),
            csrf in prop::option::of(select(&["1", " 1 ", "0", "", "true"][..])),
            changes_state in any::<bool>(),
            now in now(),
            host in prop_oneof![select(&["localhost", "127.0.0.1:8787", "[::1]:1", "LOCALHOST", "127.1.2.3", "example.com", "localhost.example.com", "::1", ""][..]).prop_map(str::to_string), super::hostile(3)],
        ) {
            let conf = configured.as_deref();
            let conf_ok = conf.is_some_and(|c| c.trim().chars().count() >= MIN_TOKEN_LEN);
            let authorization = match header_mode {
                0 => None,
                1 => Some(stray.clone()),
                2 => Some(format!("{scheme} {pad}{}{pad}", conf.unwrap_or(""))),
                _ => Some(format!("{scheme} {pad}{stray}")),
            };
            let issued = issue_session(conf, now - age).ok();
            let cookie = match (cookie_mode, &issued) {
                (0, _) => None,
                (2, Some((v, _))) => Some(format!("theme=dark; {SESSION_COOKIE}={v}; x=\"y\"")),
                (3, Some((v, _))) => {
                    let mut t = v.clone();
                    for x in &tampers {
                        t = apply(&t, x);
                    }
                    Some(format!("{SESSION_COOKIE}={t}"))
                }
                _ => Some(stray.clone()),
            };
            let _ = check_token(&stray, conf);
            if let Some(c) = &cookie {
                let _ = cookie_value(c, SESSION_COOKIE);
                if let Some(rest) = without_session_cookie(c) {
                    prop_assert!(rest.split(';').all(|p| p.split('=').next().map(str::trim) != Some(SESSION_COOKIE)), "{:?}", rest);
                }
            }
            let _ = session_cookie(&stray, age, "/_bpm", age > 0);
            if let Ok(t) = screen_token(conf, &host) {
                prop_assert!(t != DEMO_TOKEN || is_loopback(&host), "demo token on {:?}", host);
            }
            let creds = Credentials {
                authorization: authorization.as_deref(),
                cookie: cookie.as_deref(),
                csrf,
                changes_state,
            };
            let got = authorise(creds, conf, now);
            if !conf_ok {
                prop_assert!(matches!(got, Err(AuthError::NotConfigured | AuthError::TooShort)), "{:?}", got);
                return Ok(());
            }
            let conf = conf.unwrap();
            match got {
                Ok(Authorised::Bearer) => {
                    let header = authorization.as_deref().unwrap().trim();
                    let (sch, tok) = header.split_once(' ').unwrap();
                    prop_assert!(sch.eq_ignore_ascii_case("bearer"));
                    prop_assert_eq!(tok.trim(), conf.trim());
                }
                Ok(Authorised::Session { expires }) => {
                    prop_assert!(authorization.is_none());
                    prop_assert!(matches!(cookie_mode, 2 | 3), "a session from {:?}", cookie);
                    prop_assert_eq!(Some(expires), issued.as_ref().map(|(_, e)| *e));
                    prop_assert!(now < expires);
                    prop_assert!(!changes_state || csrf.map(str::trim) == Some("1"));
                }
                Err(_) => {}
            }
            // The right credential gets in.
            let plain = conf.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if header_mode == 2 && plain && scheme.eq_ignore_ascii_case("bearer") {
                prop_assert_eq!(got, Ok(Authorised::Bearer));
            }
            if header_mode == 0 && cookie_mode == 2 && (0..SESSION_SECS).contains(&age)
                && (!changes_state || csrf.map(str::trim) == Some("1"))
            {
                prop_assert_eq!(got, Ok(Authorised::Session { expires: now - age + SESSION_SECS }));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// access: Cloudflare Access assertions, certs and policy

mod access {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use bpm_edge::auth::access::{
        assertion_from, keys_still_usable, parse_assertion, parse_certs, should_fetch_keys,
        AccessError, AccessPolicy, LEEWAY_SECS, MAX_ASSERTION_LEN,
    };
    use serde_json::{json, Value};

    const TEAM: &str = "https://props.cloudflareaccess.com";
    const AUD: &str = "aud-one";

    fn policy() -> AccessPolicy {
        AccessPolicy::from_vars(Some("props.cloudflareaccess.com"), Some("aud-one, aud-two"))
            .unwrap()
            .unwrap()
    }

    fn json_scalar() -> impl Strategy<Value = Value> {
        let s = {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
                ),
                super::hostile(3).prop_map(Value::from),
            ]
        };
        s.boxed()
    }

    fn time_claim() -> impl Strategy<Value = Value> {
        let s = {
            prop_oneof![
                4 => (-200i64..200).prop_map(|d| json!(1_800_000_000 + d)),
                1 => (-200.0f64..200.0).prop_map(|d| json!(1_800_000_000.0 + d)),
                1 => json_scalar(),
                1 => select(&[1e300, -1e300, 9.3e18, -9.3e18][..]).prop_map(|x| json!(x)),
            ]
        };
        s.boxed()
    }

    fn header() -> impl Strategy<Value = Value> {
        let s = {
            (
                prop_oneof![4 => Just(json!("RS256")), 1 => select(&["none", "HS256", "rs256", "RS256 ", ""][..]).prop_map(Value::from), 1 => json_scalar()],
                prop_oneof![4 => select(&["k1", "k2"][..]).prop_map(Value::from), 1 => json_scalar()],
                any::<bool>(),
            )
                .prop_map(|(alg, kid, typ)| {
                    let mut h = json!({ "alg": alg, "kid": kid });
                    if typ {
                        h["typ"] = json!("JWT");
                    }
                    h
                })
        };
        s.boxed()
    }

    fn claims() -> impl Strategy<Value = Value> {
        let s = {
            (
                prop_oneof![4 => select(&[TEAM, "https://props.cloudflareaccess.com/", "https://props.cloudflareaccess.com//", "https://evil.cloudflareaccess.com", "http://props.cloudflareaccess.com", ""][..]).prop_map(Value::from), 1 => json_scalar()],
                prop_oneof![
                    2 => select(&[AUD, "aud-two", "aud-three", "", "aud-one, aud-two"][..]).prop_map(Value::from),
                    2 => vec(prop_oneof![select(&[AUD, "aud-x", ""][..]).prop_map(Value::from), json_scalar()], 0..3).prop_map(Value::from),
                    1 => json_scalar(),
                ],
                prop::option::of(time_claim()),
                prop::option::of(time_claim()),
                prop::option::of(prop_oneof![select(&["a@example.com", ""][..]).prop_map(Value::from), json_scalar()]),
                prop::option::of(json_scalar()),
            )
                .prop_map(|(iss, aud, exp, nbf, email, common)| {
                    let mut c = json!({ "iss": iss, "aud": aud });
                    if let Some(exp) = exp {
                        c["exp"] = exp;
                    }
                    if let Some(nbf) = nbf {
                        c["nbf"] = nbf;
                    }
                    if let Some(e) = email {
                        c["email"] = e;
                    }
                    if let Some(n) = common {
                        c["common_name"] = n;
                    }
                    c
                })
        };
        s.boxed()
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn jwt() -> impl Strategy<Value = String> {
        let s = {
            (header(), claims(), super::bytes(300)).prop_map(|(h, c, sig)| {
                format!("{}.{}.{}", b64(&h), b64(&c), URL_SAFE_NO_PAD.encode(sig))
            })
        };
        s.boxed()
    }

    /// What the policy demands of the claims, checked independently.
    fn claims_ok(c: &Value, now: i64) -> bool {
        let iss = c["iss"].as_str().unwrap_or("");
        let aud = match &c["aud"] {
            Value::String(a) => a == "aud-one" || a == "aud-two",
            Value::Array(l) => l.iter().any(|a| a == "aud-one" || a == "aud-two"),
            _ => false,
        };
        let secs = |v: &Value| v.as_f64().filter(|t| t.is_finite()).map(|t| t as i64);
        let Some(exp) = secs(&c["exp"]) else {
            return false;
        };
        let nbf_ok = secs(&c["nbf"]).is_none_or(|nbf| now >= nbf.saturating_sub(LEEWAY_SECS));
        !iss.is_empty()
            && iss.trim_end_matches('/') == TEAM
            && aud
            && now < exp.saturating_add(LEEWAY_SECS)
            && nbf_ok
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// Arbitrary assertions: never a panic; an accepted shape is three
        /// parts, RS256, a kid, a non-empty signature, and `signing_input`
        /// is exactly the first two parts.
        #[test]
        fn arbitrary_assertions(jwt in prop_oneof![
            super::hostile(10),
            jwt(),
            (jwt(), any::<prop::sample::Index>(), any::<char>()).prop_map(|(j, i, c)| {
                let mut v: Vec<char> = j.chars().collect();
                let i = i.index(v.len());
                v[i] = c;
                v.into_iter().collect()
            }),
            (8100usize..8300).prop_map(|n| format!("{}.{}.{}", "e".repeat(n / 3), "e".repeat(n / 3), "e".repeat(n / 3))),
        ], now in super::recent_secs()) {
            if jwt.len() > MAX_ASSERTION_LEN {
                prop_assert_eq!(parse_assertion(&jwt).err(), Some(AccessError::Malformed("longer than 8 KiB")));
            }
            if let Ok(a) = parse_assertion(&jwt) {
                let parts: Vec<&str> = jwt.split('.').collect();
                prop_assert_eq!(parts.len(), 3);
                prop_assert_eq!(a.signing_input, format!("{}.{}", parts[0], parts[1]));
                prop_assert_eq!(&a.signature, &URL_SAFE_NO_PAD.decode(parts[2]).unwrap());
                prop_assert!(!a.signature.is_empty() && !a.kid.is_empty());
                let head: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
                prop_assert_eq!(head["alg"].as_str(), Some("RS256"));
                prop_assert_eq!(head["kid"].as_str(), Some(a.kid.as_str()));
                let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
                let id = a.identity(&policy(), now);
                prop_assert_eq!(id.is_ok(), claims_ok(&claims, now), "claims {} at {}", claims, now);
                if let Ok(id) = id {
                    prop_assert!(!id.name.is_empty());
                }
            }
        }

        /// The decision is a function of the signed bytes: two assertions
        /// with the same `signing_input` (whatever their signatures) get
        /// the same key and the same identity, so nothing outside what the
        /// signature covers can change who is let in.
        #[test]
        fn only_signed_bytes_decide(
            j in jwt(),
            sig in super::bytes(300),
            now in super::recent_secs(),
        ) {
            let Some(dot) = j.rfind('.') else { return Ok(()) };
            let other = format!("{}.{}", &j[..dot], URL_SAFE_NO_PAD.encode(&sig));
            // The length limit counts the signature too.
            if j.len() > MAX_ASSERTION_LEN || other.len() > MAX_ASSERTION_LEN {
                return Ok(());
            }
            match (parse_assertion(&j), parse_assertion(&other)) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.signing_input, b.signing_input);
                    prop_assert_eq!(&a.kid, &b.kid);
                    prop_assert_eq!(a.identity(&policy(), now), b.identity(&policy(), now));
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => {
                    // Only an empty signature can tell them apart.
                    let err = a.err().or(b.err());
                    prop_assert_eq!(err, Some(AccessError::Malformed("empty signature")));
                }
            }
        }

        /// Certs documents, policy vars, the key schedule and where the
        /// assertion is read from: never a panic, answers as documented.
        #[test]
        fn certs_policy_and_schedule(
            certs in prop_oneof![
                super::hostile(10),
                vec((
                    prop::option::of(select(&["RSA", "EC", ""][..])),
                    prop::option::of(select(&["RS256", "ES256"][..])),
                    prop::option::of(select(&["sig", "enc"][..])),
                    prop::option::of(super::hostile(2)),
                    prop::option::of(prop_oneof![super::bytes(300).prop_map(|b| URL_SAFE_NO_PAD.encode(b)), super::hostile(2)]),
                    prop::option::of(prop_oneof![Just("AQAB".to_string()), super::hostile(2)]),
                ), 0..4).prop_map(|keys| {
                    let keys: Vec<Value> = keys.into_iter().map(|(kty, alg, usage, kid, n, e)| {
                        let mut k = json!({});
                        for (name, v) in [("kty", kty.map(str::to_string)), ("alg", alg.map(str::to_string)), ("use", usage.map(str::to_string)), ("kid", kid), ("n", n), ("e", e)] {
                            if let Some(v) = v { k[name] = json!(v); }
                        }
                        k
                    }).collect();
                    json!({ "keys": keys }).to_string()
                }),
            ],
            team in prop::option::of(prop_oneof![
                select(&["props.cloudflareaccess.com", "https://props.cloudflareaccess.com/", "http://props.cloudflareaccess.com", "http://127.0.0.1:9999", "http://[::1]:1", "https://a/b", "https://a?b", "https://u@a", ""][..]).prop_map(str::to_string),
                super::hostile(3),
            ]),
            aud in prop::option::of(super::hostile(3)),
            times in (prop::option::of(any::<i64>()), prop::option::of(any::<i64>()), any::<bool>(), any::<i64>()),
            header in prop::option::of(super::hostile(3)),
            cookie in prop::option::of(super::hostile(5)),
        ) {
            if let Ok(keys) = parse_certs(&certs) {
                prop_assert!(!keys.is_empty());
                for k in &keys {
                    prop_assert!(!k.kid.is_empty());
                    prop_assert!(URL_SAFE_NO_PAD.decode(&k.n).unwrap().len() >= 256);
                    prop_assert!(!URL_SAFE_NO_PAD.decode(&k.e).unwrap().is_empty());
                }
            }
            if let Ok(Some(p)) = AccessPolicy::from_vars(team.as_deref(), aud.as_deref()) {
                let iss = p.issuer();
                prop_assert!(!iss.ends_with('/'));
                let url = url::Url::parse(iss).unwrap();
                let host = url.host_str().unwrap_or("");
                prop_assert!(url.scheme() == "https" || (url.scheme() == "http" && matches!(host, "127.0.0.1" | "localhost" | "[::1]")), "{}", iss);
                prop_assert!(p.certs_url().starts_with(iss));
            }
            let (fetched, tried, known, now) = times;
            let _ = should_fetch_keys(fetched, tried, known, now);
            if let Some(f) = fetched {
                let _ = keys_still_usable(f, now);
            }
            if let Some(a) = assertion_from(header.as_deref(), cookie.as_deref()) {
                prop_assert!(!a.is_empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// sketch: the visitor sketch

mod sketch {
    use super::*;
    use bpm_edge::windows::sketch::{VisitorSketch, SPARSE_MAX, STANDARD_ERROR};

    fn from_hashes(h: &[u64]) -> VisitorSketch {
        let mut s = VisitorSketch::new();
        for x in h {
            s.insert_hash(*x);
        }
        s
    }

    /// Hash sets that stay sparse, cross into dense, or are dense.
    fn hashes() -> impl Strategy<Value = Vec<u64>> {
        let s = {
            prop_oneof![
                6 => vec(any::<u64>(), 0..40),
                1 => vec(any::<u64>(), SPARSE_MAX - 20..SPARSE_MAX + 20),
                1 => vec(any::<u64>(), 1500..2500),
                1 => vec(prop_oneof![Just(0u64), Just(u64::MAX), 0u64..64, (0u64..64).prop_map(|x| x << 39)], 0..20),
            ]
        };
        s.boxed()
    }

    /// A sketch from hashes, or decoded from a valid or mutated encoding.
    fn sketch() -> impl Strategy<Value = VisitorSketch> {
        let s = {
            prop_oneof![
                4 => hashes().prop_map(|h| from_hashes(&h)),
                1 => (hashes(), vec((any::<prop::sample::Index>(), any::<u8>()), 0..3)).prop_map(|(h, flips)| {
                    let mut b = from_hashes(&h).to_bytes();
                    for (i, x) in flips {
                        let i = i.index(b.len());
                        b[i] ^= x;
                    }
                    VisitorSketch::from_bytes(&b).unwrap_or_else(|_| from_hashes(&h))
                }),
            ]
        };
        s.boxed()
    }

    fn merged(a: &VisitorSketch, b: &VisitorSketch) -> VisitorSketch {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #![proptest_config(cases(128))]

        /// Arbitrary and mutated bytes: never a panic; whatever decodes
        /// encodes back to the same bytes and gives a finite estimate.
        #[test]
        fn decoding_never_panics_and_is_canonical(b in prop_oneof![
            super::bytes(64),
            (select(&[1u8, 2][..]), super::bytes(3200)).prop_map(|(f, rest)| [vec![f, 12], rest].concat()),
            (hashes(), vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)).prop_map(|(h, flips)| {
                let mut b = from_hashes(&h).to_bytes();
                for (i, x) in flips {
                    let i = i.index(b.len());
                    b[i] ^= x;
                }
                b
            }),
            // A dense sketch with registers from a narrow range.
            vec(0u8..4, 3072).prop_map(|body| [vec![2u8, 12], body].concat()),
        ], text in super::hostile(4)) {
            if let Ok(s) = VisitorSketch::from_bytes(&b) {
                prop_assert_eq!(s.to_bytes(), b);
                let e = s.estimate();
                prop_assert!(e.is_finite() && e >= 0.0, "estimate {}", e);
                let _ = s.count();
                let back = VisitorSketch::from_base64(&s.to_base64());
                prop_assert_eq!(back.as_ref(), Ok(&s));
            }
            let _ = VisitorSketch::from_base64(&text);
        }

        /// Merging is commutative, associative and idempotent, the empty
        /// sketch is its identity, and the merge of two hash sets' sketches
        /// is the sketch of their union, whatever the insertion order.
        #[test]
        fn merge_is_a_union(a in sketch(), b in sketch(), c in sketch(), ha in hashes(), hb in hashes()) {
            prop_assert_eq!(merged(&a, &b).to_bytes(), merged(&b, &a).to_bytes(), "commutative");
            prop_assert_eq!(merged(&merged(&a, &b), &c).to_bytes(), merged(&a, &merged(&b, &c)).to_bytes(), "associative");
            prop_assert_eq!(merged(&a, &a).to_bytes(), a.to_bytes(), "idempotent");
            prop_assert_eq!(merged(&a, &VisitorSketch::new()).to_bytes(), a.to_bytes(), "identity");
            let union: Vec<u64> = ha.iter().chain(&hb).copied().collect();
            let mut reversed = union.clone();
            reversed.reverse();
            let of_union = from_hashes(&union).to_bytes();
            prop_assert_eq!(merged(&from_hashes(&ha), &from_hashes(&hb)).to_bytes(), of_union.clone());
            prop_assert_eq!(from_hashes(&reversed).to_bytes(), of_union);
            // Adding visitors never lowers the estimate by more than the
            // documented error (turning dense may move it within that).
            let (before, after) = (a.estimate(), merged(&a, &b).estimate());
            prop_assert!(after >= before * (1.0 - 6.0 * STANDARD_ERROR) - 1.0, "{} then {}", before, after);
        }
    }
}

// ---------------------------------------------------------------------------
// bucket_counts: one stored bucket's dimension counts

mod bucket_counts {
    use super::*;
    use bpm_edge::windows::schema::BucketCounts;

    fn counts() -> impl Strategy<Value = BucketCounts> {
        let s = {
            prop::collection::btree_map(
                (
                    prop_oneof![
                        select(&["count", "bot", "status", "lat", "source"][..])
                            .prop_map(str::to_string),
                        super::hostile(2)
                    ],
                    super::hostile(3),
                ),
                prop_oneof![1u64..100, any::<u64>()],
                0..8,
            )
            .prop_map(BucketCounts)
        };
        s.boxed()
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Arbitrary text: never a panic; what decodes encodes and decodes
        /// back to itself; duplicate entries add up, saturating.
        #[test]
        fn decode_never_panics(text in prop_oneof![
            any::<String>(),
            super::hostile(10),
            vec((super::hostile(2), super::hostile(2), prop_oneof![any::<u64>().prop_map(|n| n.to_string()), Just("-1".to_string()), Just("1.5".to_string()), Just("18446744073709551616".to_string())]), 0..6)
                .prop_map(|v| serde_json::to_string(&v.iter().map(|(d, val, n)| format!("[{},{},{n}]", serde_json::to_string(d).unwrap(), serde_json::to_string(val).unwrap())).collect::<Vec<_>>()).unwrap().replace("\"[", "[").replace("]\"", "]").replace("\\\"", "\"")),
            (1usize..200).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        ]) {
            if let Ok(b) = BucketCounts::decode(&text) {
                prop_assert_eq!(BucketCounts::decode(&b.encode()), Ok(b));
            }
        }

        /// Every bucket round-trips through its encoding; merging adds,
        /// saturating, in either order.
        #[test]
        fn encode_round_trips(a in counts(), b in counts()) {
            let back = BucketCounts::decode(&a.encode());
            prop_assert_eq!(back.as_ref(), Ok(&a));
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            for ((d, v), n) in &ab.0 {
                let key = (d.clone(), v.clone());
                let want = a.0.get(&key).copied().unwrap_or(0).saturating_add(b.0.get(&key).copied().unwrap_or(0));
                prop_assert_eq!(*n, want);
            }
            // The same entries listed twice decode to the doubled counts.
            let doubled = format!("[{},{}]", &a.encode()[1..a.encode().len() - 1], &a.encode()[1..a.encode().len() - 1]);
            if !a.0.is_empty() {
                let mut twice = a.clone();
                twice.merge(&a);
                prop_assert_eq!(BucketCounts::decode(&doubled), Ok(twice));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// explain: where a drop happened

mod explain {
    use super::*;
    use bpm_edge::alert::explain::{explain, DimensionCounts, DimensionRole, Finding};
    use std::collections::BTreeMap;

    fn counts() -> impl Strategy<Value = BTreeMap<String, f64>> {
        proptest::collection::btree_map(
            prop_oneof![
                select(vec![
                    "google", "direct", "bing", "other", "2xx", "4xx", "5xx"
                ])
                .prop_map(String::from),
                super::piece()
            ],
            prop_oneof![0u32..5_000, Just(0u32)].prop_map(f64::from),
            0..6,
        )
    }

    fn dimension() -> impl Strategy<Value = DimensionCounts> {
        (
            select(vec!["source", "utm_campaign", "landing", "status"]),
            counts(),
            vec(counts(), 0..8),
        )
            .prop_map(|(dim, now, before)| DimensionCounts {
                dimension: dim.to_string(),
                role: if dim == "status" {
                    DimensionRole::Status
                } else {
                    DimensionRole::Parts
                },
                now,
                before,
            })
    }

    proptest! {
        #![proptest_config(cases(300))]

        /// Only values that lost are named, each at most once per
        /// dimension, never more than the limits allow; the text is empty
        /// exactly when nothing is named, and is one line.
        #[test]
        fn names_only_losers_within_the_limits(dims in vec(dimension(), 0..5)) {
            let e = explain(&dims);
            prop_assert_eq!(e.text.is_empty(), e.findings.is_empty());
            prop_assert!(!e.text.contains('\n'));
            let mut seen = std::collections::BTreeSet::new();
            let mut lost_dims = std::collections::BTreeSet::new();
            for f in &e.findings {
                match f {
                    Finding::Lost { dimension, value, observed, expected, change, .. } => {
                        prop_assert!(observed < expected, "{f:?}");
                        prop_assert!(*change <= -bpm_edge::alert::explain::MIN_VALUE_LOSS + 0.01, "{f:?}");
                        prop_assert!(*observed <= bpm_edge::alert::explain::MAX_KEPT * expected + 1e-9, "{f:?}");
                        prop_assert!(seen.insert((dimension.clone(), value.clone())) || dims.iter().filter(|d| &d.dimension == dimension).count() > 1);
                        lost_dims.insert(dimension.clone());
                    }
                    Finding::ShareRose { share, baseline_share, value, .. } => {
                        prop_assert!(*share >= baseline_share + bpm_edge::alert::explain::MIN_SHARE_RISE - 1e-4, "{f:?}");
                        prop_assert!(value.starts_with('4') || value.starts_with('5'));
                    }
                }
            }
            prop_assert!(lost_dims.len() <= bpm_edge::alert::explain::MAX_LOSS_DIMENSIONS);
        }
    }
}
