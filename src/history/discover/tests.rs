use super::*;
use crate::count::agent::CfSignals;

/// 2026-11-16T00:00:00Z, a Monday.
const BASE: i64 = 1_763_251_200;
const DAY: i64 = 86_400;
const BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";
const APP: &str = "okhttp/4.12.0";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// One logged request.
#[derive(Clone)]
struct Req {
    at: i64,
    method: &'static str,
    target: String,
    status: u16,
    agent: &'static str,
    location: Option<&'static str>,
}

/// A small deterministic generator (no clock, no entropy).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// `days` days of a shop's traffic from [`BASE`], every minute: pages,
/// blog posts under many slugs, orders placed through an app and a
/// browser, logins redirected to the dashboard, assets, and a crawler.
/// During `outage` (if any) the orders API answers 503.
fn shop(days: i64, outage: Option<(i64, i64)>) -> Vec<Req> {
    let mut rng = Lcg(7);
    let mut jitter = Lcg(11);
    let mut out = Vec::new();
    for minute in 0..days * 1440 {
        let at = BASE + minute * 60;
        // Busier by day than by night.
        let hour = (minute / 60) % 24;
        let busy = if (8..22).contains(&hour) { 3 } else { 1 };
        let mut add = |method, target: String, status, agent, location| {
            out.push(Req {
                at: at + (jitter.next() % 60) as i64,
                method,
                target,
                status,
                agent,
                location,
            })
        };
        for _ in 0..busy {
            add("GET", "/".into(), 200, BROWSER, None);
            add("GET", "/style.css".into(), 200, BROWSER, None);
            add("GET", "/".into(), 200, BOT, None);
        }
        let r = rng.next();
        let id = 10_000 + rng.next() % 90_000;
        add("GET", format!("/blog/post-{}", r % 40), 200, BROWSER, None);
        if r.is_multiple_of(3) {
            add("GET", "/pricing".into(), 200, BROWSER, None);
        }
        if r.is_multiple_of(2) {
            let down = outage.is_some_and(|(a, b)| (a..b).contains(&at));
            let status = if down { 503 } else { 201 };
            let agent = if r.is_multiple_of(4) { APP } else { BROWSER };
            add(
                "POST",
                format!("/api/orders/{id}/confirm"),
                status,
                agent,
                None,
            );
        }
        if r % 5 == 1 {
            add("POST", "/login".into(), 302, BROWSER, Some("/dashboard"));
        }
    }
    out
}

fn reader(reqs: &[Req]) -> impl FnMut(&mut Visit<'_>) -> Result<(), String> + '_ {
    move |visit| {
        for r in reqs {
            let req = RequestFacts {
                method: r.method,
                target: r.target.as_bytes(),
                host: "shop.example",
                referer: None,
                user_agent: Some(r.agent.as_bytes()),
                cf: CfSignals::default(),
            };
            let resp = ResponseFacts {
                status: r.status,
                location: r.location,
                latency_ms: 0.0,
            };
            visit(r.at, &req, &resp);
        }
        Ok(())
    }
}

const CONFIG: &str = r#"
[site]
name = "shop"

[[receiver]]
name = "ops"
format = "json"
url = "http://127.0.0.1:9/hooks"

[[metric]]
name = "home_views"
stage = "referral"
description = "Views of the home page."
match = { method = "GET", path = "/", status = ["2xx", "304"] }

[[alert]]
name = "home_views_drop"
metric = "home_views"
severity = "critical"
receivers = ["ops"]
"#;

/// The last day's 10:00–12:00.
fn outage(days: i64) -> Incident {
    let from = BASE + (days - 1) * DAY + 10 * 3600;
    Incident {
        from,
        to: from + 2 * 3600,
    }
}

fn run(reqs: &[Req], incident: Incident) -> Result<Discovery, DiscoverError> {
    discover(
        CONFIG,
        "bpm.toml",
        "access.log",
        &mut reader(reqs),
        incident,
        &DiscoverOptions::default(),
    )
}

#[test]
fn an_api_outage_ranks_the_generalised_api_path_first() {
    let days = 5;
    let incident = outage(days);
    let got = run(&shop(days, Some((incident.from, incident.to))), incident).unwrap();
    assert_eq!(got.compared.len(), 4, "{:?}", got.compared);
    let best = &got.candidates[0];
    assert_eq!(
        best.signature, "POST /api/orders/:id/confirm 2xx",
        "{got:#?}"
    );
    assert_eq!(best.metric, "post_api_orders_id_confirm_2xx");
    assert_eq!(best.during, 0);
    assert!(best.usual > 50.0, "{best:?}");
    let fired = best.fired.expect("its rule fires during the outage");
    assert!(fired < incident.from + 3600, "fired at {fired}");
    assert!(best.false_alerts.is_empty(), "{:?}", best.false_alerts);
    assert!(best.toml.contains(
        r#"match = { method = "POST", path = "/api/orders/:id/confirm", status = "2xx" }"#
    ));
    assert!(
        best.toml.contains(r#"receivers = ["ops"]"#),
        "{}",
        best.toml
    );
    // The configured rule watches the home page, which did not drop.
    assert_eq!(got.configured, None);
    assert_eq!(got.configured_rules, 1);
    // Nothing that did not fall is proposed: no page, no bot, no asset.
    for c in &got.candidates {
        assert!(c.signature.starts_with("POST /api/orders/"), "{c:?}");
    }
}

#[test]
fn the_proposed_toml_pastes_into_the_operators_config() {
    let days = 5;
    let incident = outage(days);
    let got = run(&shop(days, Some((incident.from, incident.to))), incident).unwrap();
    let mut text = CONFIG.to_string();
    for c in &got.candidates {
        text.push('\n');
        text.push_str(&c.toml);
    }
    let config = parse_toml(&text, "bpm.toml").unwrap();
    let best = &got.candidates[0];
    let rule = config.alert(&best.rule).unwrap();
    assert_eq!(rule.metric, best.metric);
    assert_eq!(rule.severity, Severity::Critical);
    assert!(config.metric(&best.metric).is_some());
}

#[test]
fn without_an_incident_in_the_traffic_nothing_is_proposed() {
    let days = 5;
    let got = run(&shop(days, None), outage(days)).unwrap();
    assert!(got.candidates.is_empty(), "{:#?}", got.candidates);
    assert!(got.considered >= 3, "{got:?}");
}

#[test]
fn a_path_inside_a_wider_pattern_that_fell_as_much_is_not_proposed_apart() {
    let days = 5;
    let incident = outage(days);
    // Every blog post is gone: `/blog/**` tells it, not one post.
    let reqs: Vec<Req> = shop(days, None)
        .into_iter()
        .filter(|r| {
            !(r.target.starts_with("/blog/") && (incident.from..incident.to).contains(&r.at))
        })
        .collect();
    let got = run(&reqs, incident).unwrap();
    let signatures: Vec<&str> = got
        .candidates
        .iter()
        .map(|c| c.signature.as_str())
        .collect();
    assert_eq!(signatures, vec!["GET /blog/** 2xx"]);
}

#[test]
fn a_log_without_two_earlier_days_at_that_time_is_refused() {
    let reqs = shop(2, None);
    let err = run(&reqs, outage(2)).unwrap_err();
    assert_eq!(err, DiscoverError::TooLittleHistory { compared: 1 });
    let late = Incident {
        from: BASE + 10 * DAY,
        to: BASE + 10 * DAY + 3600,
    };
    assert!(matches!(
        run(&reqs, late),
        Err(DiscoverError::IncidentOutsideLog { .. })
    ));
    let backwards = Incident {
        from: BASE + DAY,
        to: BASE + DAY,
    };
    assert_eq!(run(&reqs, backwards), Err(DiscoverError::EmptyIncident));
}

#[test]
fn metric_names_avoid_the_configured_ones() {
    let s = Screened {
        answer: Answer {
            method: "GET".into(),
            class: StatusClass::Success,
            location: None,
        },
        prefix: vec![],
        any: false,
        fall: Fall {
            observed: 0,
            expected: 10.0,
            drop: 1.0,
            z: 3.0,
        },
    };
    assert_eq!(metric_name(&s, &|_| false), "get_home_2xx");
    assert_eq!(metric_name(&s, &|n| n == "get_home_2xx"), "get_home_2xx_2");
    let long = Screened {
        prefix: vec!["a-very-long-segment-name-indeed".into(); 4],
        any: true,
        ..s.clone()
    };
    let name = metric_name(&long, &|_| false);
    assert!(name.len() <= 56 && !name.ends_with('_'), "{name}");
    let redirect = Screened {
        answer: Answer {
            method: "POST".into(),
            class: StatusClass::Redirect,
            location: Some("/dashboard".into()),
        },
        prefix: vec!["login".into()],
        ..s
    };
    assert_eq!(
        metric_name(&redirect, &|_| false),
        "post_login_3xx_to_dashboard"
    );
}

#[test]
fn a_fall_needs_volume_presence_and_more_than_the_usual_spread() {
    let o = DiscoverOptions::default();
    assert_eq!(Fall::of(0, &[5, 6, 7], &o), None, "too few");
    assert_eq!(Fall::of(0, &[0, 0, 40], &o), None, "mostly absent");
    let steady = Fall::of(0, &[40, 40, 40], &o).unwrap();
    assert_eq!(steady.drop, 1.0);
    assert!((steady.z - 40f64.sqrt()).abs() < 1e-9);
    // Days of 10, 40, 70: a 20 is within their spread.
    let noisy = Fall::of(20, &[10, 40, 70], &o).unwrap();
    assert!(noisy.z < o.min_z, "{noisy:?}");
}
