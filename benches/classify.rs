//! Classification cost, native: ns per request with the shipped config and
//! with a 200-rule config, each reported as a ratio to a baseline measured
//! in the same run (normalising the request path, which every request pays).
//! The last column adds what unique visitors cost a counted request: the
//! salted visitor hash (HMAC-SHA256) and the sketch inserts.
//!
//! Inputs: the real Apache access log in `../shared/bench-data` when present
//! (10,000 real requests: crawlers, feeds, referrers), else a synthetic mix;
//! plus a synthetic mix that hits the shipped metrics. Prints a Markdown
//! table and writes `bench-results/classify.json`.
//!
//! A second table times the agent classification alone (`agent::kind_of`,
//! the vendored crawler list plus our markers) per request against the bot
//! test it replaced (`legacy_bot.rs`), in the same run, over the same user
//! agents.
//!
//! Run: `cargo bench --bench classify`

#[allow(dead_code)]
#[path = "legacy/bot.rs"]
mod legacy_bot;

use bpm_edge::config::parse_toml;
use bpm_edge::config::pattern::NormalizedPath;
use bpm_edge::count::agent;
use bpm_edge::count::classify::{Classifier, Hit, RequestFacts, ResponseFacts};
use bpm_edge::count::tally::Tally;
use bpm_edge::count::visitors::{visitor_hash, Salt};
use bpm_edge::history::accesslog::LogLine;
use std::hint::black_box;
use std::time::Instant;

struct Req {
    /// The client address (the log's first field).
    ip: String,
    method: String,
    target: String,
    referer: Option<String>,
    ua: Option<String>,
    status: u16,
    location: Option<String>,
}

impl Req {
    fn facts(&self) -> (RequestFacts<'_>, ResponseFacts<'_>) {
        (
            RequestFacts {
                method: &self.method,
                target: self.target.as_bytes(),
                host: "www.example.com",
                referer: self.referer.as_deref().map(str::as_bytes),
                user_agent: self.ua.as_deref().map(str::as_bytes),
                cf: Default::default(),
            },
            ResponseFacts {
                status: self.status,
                location: self.location.as_deref(),
                latency_ms: 12.5,
            },
        )
    }
}

fn access_log() -> Option<Vec<Req>> {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/../shared/bench-data/access-logs/apache_combined_2015.log");
    let text = std::fs::read_to_string(path).ok()?;
    let reqs: Vec<Req> = text
        .lines()
        .filter_map(|line| Some((line.split(' ').next()?, LogLine::parse(line)?)))
        .map(|(ip, l)| Req {
            ip: ip.to_string(),
            method: l.method.to_string(),
            target: l.target.to_string(),
            referer: l.referer.map(str::to_string),
            ua: l.user_agent.map(str::to_string),
            status: l.status,
            location: None,
        })
        .collect();
    (!reqs.is_empty()).then_some(reqs)
}

fn synthetic() -> Vec<Req> {
    const UA: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";
    let mut out = Vec::new();
    for i in 0..10_000u32 {
        let (method, target, status, location, referer) = match i % 10 {
            0 => ("GET", "/login".to_string(), 200, None, None),
            1 => ("POST", "/login".to_string(), 302, Some("/dashboard"), None),
            2 => ("GET", "/dashboard".to_string(), 200, None, None),
            3 => (
                "GET",
                format!(
                    "/?utm_source=newsletter&utm_medium=email&utm_campaign=c{}",
                    i % 7
                ),
                200,
                None,
                Some("https://mail.google.com/"),
            ),
            4 => (
                "GET",
                "/pricing".to_string(),
                200,
                None,
                Some("https://www.google.com/search?q=x"),
            ),
            5 => (
                "GET",
                format!("/blog/post-{}", i % 50),
                200,
                None,
                Some("https://t.co/abc"),
            ),
            6 => ("POST", "/signup".to_string(), 201, None, None),
            7 => ("GET", "/static/app.js".to_string(), 200, None, None),
            8 => ("GET", format!("/api/items/{i}"), 200, None, None),
            _ => ("GET", "/nope".to_string(), 404, None, None),
        };
        out.push(Req {
            ip: format!("198.51.100.{}", i % 200),
            method: method.into(),
            target,
            referer: referer.map(str::to_string),
            ua: Some(if i % 20 == 0 {
                "Googlebot/2.1".into()
            } else {
                UA.into()
            }),
            status,
            location: location.map(str::to_string),
        });
    }
    out
}

fn two_hundred_rules() -> String {
    let mut text = String::from(include_str!("../bpm.toml"));
    for i in 0..193 {
        let rule = match i % 4 {
            0 => format!("match = {{ method = \"GET\", path = \"/section{i}/**\" }}"),
            1 => format!("match = {{ method = [\"GET\", \"POST\"], path = \"/api/v{i}/*/items\", status = \"2xx\" }}"),
            2 => format!("match = {{ path = [\"/p{i}\", \"/q{i}/:id\"], query = {{ ref = \"*\" }} }}"),
            _ => format!("match = {{ method = \"POST\", path = \"/form{i}\", status = 302, location = \"/done/**\" }}"),
        };
        text.push_str(&format!(
            "\n[[metric]]\nname = \"extra_{i}\"\nstage = \"other\"\ndescription = \"generated\"\n{rule}\n"
        ));
    }
    text
}

/// Best-of-`rounds` nanoseconds per request for `f` over `reqs`.
fn measure(reqs: &[Req], rounds: usize, mut f: impl FnMut(&Req)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        for r in reqs {
            f(r);
        }
        let ns = start.elapsed().as_nanos() as f64 / reqs.len() as f64;
        best = best.min(ns);
    }
    best
}

fn main() {
    let shipped = Classifier::new(
        parse_toml(include_str!("../bpm.toml"), "bpm.toml").expect("shipped config"),
    );
    let big_cfg = parse_toml(&two_hundred_rules(), "200 rules").expect("generated config");
    let metric_count = big_cfg.metrics.len();
    let big = Classifier::new(big_cfg);
    let mut inputs = vec![("synthetic mix (hits the shipped metrics)", synthetic())];
    match access_log() {
        Some(log) => inputs.push(("real Apache log, 10k lines", log)),
        None => eprintln!("(bench-data not found beside the repo: real-log input skipped)"),
    }
    let rounds = 15;
    let mut hits: Vec<Hit> = Vec::with_capacity(16);
    let mut results = Vec::new();
    let salt = Salt::new([42; 32]);
    println!("| input | baseline: path normalisation | shipped config (7 metrics) | 200-rule config ({metric_count} metrics) | + tally record | + visitor hash and sketch |");
    println!("|---|---|---|---|---|---|");
    for (name, reqs) in &inputs {
        let baseline = measure(reqs, rounds, |r| {
            black_box(NormalizedPath::parse(black_box(r.target.as_bytes())));
        });
        let small = measure(reqs, rounds, |r| {
            let (q, s) = r.facts();
            hits.clear();
            shipped.classify(black_box(&q), black_box(&s), &mut hits);
            black_box(&hits);
        });
        let large = measure(reqs, rounds, |r| {
            let (q, s) = r.facts();
            hits.clear();
            big.classify(black_box(&q), black_box(&s), &mut hits);
            black_box(&hits);
        });
        let mut tally = Tally::new(50);
        let with_tally = measure(reqs, rounds, |r| {
            let (q, s) = r.facts();
            hits.clear();
            shipped.classify(&q, &s, &mut hits);
            tally.record(1_795_000_000, &hits);
        });
        // As the worker does: only requests with a non-bot hit are hashed.
        let mut tally = Tally::new(50);
        let with_visitors = measure(reqs, rounds, |r| {
            let (q, s) = r.facts();
            hits.clear();
            shipped.classify(&q, &s, &mut hits);
            tally.record(1_795_000_000, &hits);
            if hits.iter().any(|h| h.counted) {
                let ua = r.ua.as_deref().unwrap_or("");
                let hash = visitor_hash(&salt, "demo", black_box(&r.ip), ua);
                tally.record_visitor(1_795_000_000, &hits, hash);
            }
        });
        println!(
            "| {name} | {baseline:.0} ns (1.0×) | {small:.0} ns ({:.1}×) | {large:.0} ns ({:.1}×) | {with_tally:.0} ns ({:.1}×) | {with_visitors:.0} ns ({:.1}×; {:.2}× of + tally) |",
            small / baseline,
            large / baseline,
            with_tally / baseline,
            with_visitors / baseline,
            with_visitors / with_tally
        );
        results.push(format!(
            "{{\"input\":{name:?},\"baseline_ns\":{baseline:.1},\"shipped_ns\":{small:.1},\"rules200_ns\":{large:.1},\"shipped_with_tally_ns\":{with_tally:.1},\"shipped_with_visitors_ns\":{with_visitors:.1}}}"
        ));
    }
    println!();
    println!("| input | baseline: path normalisation | old bot test (`bot.rs`) | agent kind (list + markers) | agent kind / old bot test |");
    println!("|---|---|---|---|---|");
    for (name, reqs) in &inputs {
        let baseline = measure(reqs, rounds, |r| {
            black_box(NormalizedPath::parse(black_box(r.target.as_bytes())));
        });
        let old = measure(reqs, rounds, |r| {
            black_box(legacy_bot::is_bot(black_box(
                r.ua.as_deref().map(str::as_bytes),
            )));
        });
        let new = measure(reqs, rounds, |r| {
            black_box(agent::kind_of(black_box(
                r.ua.as_deref().map(str::as_bytes),
            )));
        });
        println!(
            "| {name} | {baseline:.0} ns (1.0×) | {old:.0} ns ({:.1}×) | {new:.0} ns ({:.1}×) | {:.2}× |",
            old / baseline,
            new / baseline,
            new / old
        );
        results.push(format!(
            "{{\"input\":{name:?},\"agent_baseline_ns\":{baseline:.1},\"old_bot_test_ns\":{old:.1},\"agent_kind_ns\":{new:.1}}}"
        ));
    }
    let dir = format!("{}/bench-results", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        format!("{dir}/classify.json"),
        format!("[{}]\n", results.join(",")),
    );
}
