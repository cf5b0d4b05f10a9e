//! The incident loop's cost on a real access log: the day of the public
//! Apache log in `tests/fixtures/` repeated over 4 and 35 days with the
//! blog's successful responses removed for two hours on the last day
//! (`tests/spliced_log`), and the shipped `bpm.toml`:
//!
//! - `replay` (read and classify every line): the baseline every other
//!   figure is a ratio to, measured in the same run on the same log;
//! - `backtest --log` (the shipped rules ticked once a simulated minute),
//!   in the site's zone (Europe/Berlin) and, for the detector's zone cost,
//!   the same in UTC;
//! - `discover` (two passes, the candidates' and the configured rules'
//!   backtests);
//! - `POST /api/simulate` (one rule over the stored 5-minute series, 14
//!   days and all of them).
//!
//! Run: `cargo bench --bench incident`

#[path = "../tests/spliced_log/mod.rs"]
mod spliced_log;

use bpm_edge::alert::tick_series::{bucket_start, BucketCache};
use bpm_edge::config::{parse_toml, Config};
use bpm_edge::count::classify::Classifier;
use bpm_edge::history::discover::{discover, DiscoverOptions, Incident, Visit};
use bpm_edge::history::replay::{read_request, LogFormat, Replay};
use bpm_edge::history::rule_backtest;
use bpm_edge::history::simulate::{simulate, SimulateRequest};
use std::hint::black_box;
use std::time::Instant;

const SHIPPED: &str = include_str!("../bpm.toml");

fn replay(config: &Config, lines: &[String]) -> Replay {
    let mut r = Replay::default();
    let classifier = Classifier::new(config.clone());
    r.add_lines(
        &classifier,
        LogFormat::Combined,
        "example.com",
        lines.iter().map(String::as_str),
    );
    r
}

/// Seconds `f` takes (the best of `runs`).
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let config = parse_toml(SHIPPED, "bpm.toml").expect("the shipped config parses");
    let mut utc = config.clone();
    utc.time = bpm_edge::config::sitetime::SiteTime::utc();
    println!(
        "Incident loop on the spliced Apache log (shipped bpm.toml, {} rules)\n",
        config.alerts.len()
    );
    println!("| log | step | seconds | × replay |");
    println!("|---|---|---:|---:|");
    for days in [4i64, 35] {
        let lines = spliced_log::built_log_over(days, Some(spliced_log::blog));
        let runs = if days <= 4 { 3 } else { 1 };
        let base = time(runs, || replay(&config, &lines));
        let replayed = replay(&config, &lines);
        let row = |step: &str, secs: f64| {
            println!(
                "| {days} days, {} lines | {step} | {secs:.2} | {:.1}× |",
                lines.len(),
                secs / base
            );
        };
        row("replay (baseline)", base);
        row(
            "backtest, Europe/Berlin",
            time(runs, || {
                rule_backtest::run(&config, &replayed, None, (None, None), &[])
            }),
        );
        row(
            "backtest, UTC",
            time(runs, || {
                rule_backtest::run(&utc, &replayed, None, (None, None), &[])
            }),
        );
        let (from, to) = spliced_log::outage_range_over(days);
        let mut read = |visit: &mut Visit<'_>| -> Result<(), String> {
            for line in &lines {
                read_request(LogFormat::Combined, "example.com", line, &mut *visit);
            }
            Ok(())
        };
        row(
            "discover",
            time(runs, || {
                discover(
                    SHIPPED,
                    "bpm.toml",
                    "access.log",
                    &mut read,
                    Incident { from, to },
                    &DiscoverOptions::default(),
                )
                .map(|d| d.candidates.len())
            }),
        );
        if days < 35 {
            continue;
        }
        // The stored series: the replay's counts in 5-minute buckets.
        let mut cache = BucketCache::new();
        for ((t, metric), n) in &replayed.counts {
            *cache.entry((metric.clone(), bucket_start(*t))).or_insert(0) += *n as i64;
        }
        let now = to + 6 * 3600;
        for judged in [14u32, 43] {
            let request = SimulateRequest {
                rule: "marketing_views_drop".into(),
                days: Some(judged),
                ..SimulateRequest::default()
            };
            let Ok(rule) = request.edited_rule(&config) else {
                continue;
            };
            row(
                &format!("simulate {judged} days"),
                time(runs, || {
                    simulate(&config, rule.clone(), &cache, judged, now)
                        .episodes
                        .len()
                }),
            );
        }
    }
}
