//! The fleet cost model's table: what counting costs per million visitor
//! requests and per month, at site rates of 1 to 10,000 requests a second
//! spread over isolates that each see 0.1 to 10 a second, with the shipped
//! `bpm.toml` and the demo's request mix. Runs the real classifier, flush
//! queue and shard store (natively on SQLite); see `src/count/fleet.rs` for the
//! model and `bpm_edge::count::fleet::prices` for the prices.
//!
//! Run: `cargo bench --bench fleet` (FLEET_SECS=300 simulated seconds per
//! profile by default; FLEET_SITE_RPS=100 or FLEET_ISOLATE_RPS=2 to run one
//! row or column; FLEET_WINDOW_MS overrides the flush window). Prints a
//! Markdown table and writes `bench-results/fleet.json`.

use bpm_edge::config::parse_toml;
use bpm_edge::count::fleet::{simulate, Profile, RunOptions};
use std::time::Instant;

/// The native SQLite adapter of the store tests.
#[path = "../tests/common/mod.rs"]
mod common;
use common::Native;

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    let config = match parse_toml(include_str!("../bpm.toml"), "bpm.toml") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bpm.toml: {e}");
            std::process::exit(1);
        }
    };
    let secs = env_f64("FLEET_SECS").map_or(300, |s| s as u64);
    let window_ms = env_f64("FLEET_WINDOW_MS").map(|w| w as u64);
    let site_rates = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];
    let isolate_rates = [0.1, 0.5, 2.0, 10.0];
    println!(
        "Fleet cost model: {secs} simulated s per profile, shipped bpm.toml ({} shards, flush window {} ms)\n",
        config.storage.shards,
        window_ms.unwrap_or(u64::from(config.storage.flush_interval_ms))
    );
    println!("| site req/s | isolate req/s | isolates | rows written / req | DO requests / req | $ / M req | $ / month | at risk / eviction | exact | run s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|:-:|---:|");
    let mut results = Vec::new();
    for site in site_rates {
        if env_f64("FLEET_SITE_RPS").is_some_and(|s| s != site) {
            continue;
        }
        for iso in isolate_rates {
            if env_f64("FLEET_ISOLATE_RPS").is_some_and(|s| s != iso) || iso > site {
                continue;
            }
            let started = Instant::now();
            let options = RunOptions {
                secs,
                seed: 42,
                outage: None,
                window_ms,
                lose_every_nth_ack: None,
            };
            let profile = Profile {
                site_rps: site,
                isolate_rps: iso,
            };
            let r = simulate(&config, profile, options, Native::in_memory);
            let took = started.elapsed().as_secs_f64();
            println!(
                "| {site} | {iso} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {} | {took:.1} |",
                r.isolates,
                r.rows_per_request(),
                r.do_requests_per_request(),
                r.dollars_per_million(),
                r.dollars_per_month(),
                r.at_risk_per_isolate,
                if r.exact() { "yes" } else { "NO" },
            );
            results.push(serde_json::json!({
                "site_rps": site, "isolate_rps": iso, "isolates": r.isolates,
                "requests": r.requests, "counted_requests": r.counted_requests,
                "flush_requests": r.flush_requests, "other_do_requests": r.other_do_requests,
                "shard_rows_written": r.shard_rows_written, "alert_rows_written": r.alert_rows_written,
                "rows_returned": r.rows_returned, "do_active_secs": r.do_active_secs,
                "rows_per_request": r.rows_per_request(),
                "do_requests_per_request": r.do_requests_per_request(),
                "dollars_per_million": r.dollars_per_million(),
                "dollars_per_month": r.dollars_per_month(),
                "requests_per_month": r.requests_per_month(),
                "at_risk_per_isolate": r.at_risk_per_isolate,
                "exact": r.exact(),
            }));
        }
    }
    let _ = std::fs::create_dir_all("bench-results");
    let _ = std::fs::write(
        "bench-results/fleet.json",
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    );
}
