//! The fleet cost model on the shipped configuration, natively on SQLite:
//! every count sent is stored once, and counting stays within the cost bar
//! at the profiles the README quotes (shortened runs; `cargo bench --bench
//! fleet` runs the full table).

use bpm_edge::config::{parse_toml, Config};
use bpm_edge::count::fleet::{simulate, FleetReport, Profile, RunOptions};

mod common;
use common::Native;

fn shipped() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bpm.toml")).unwrap();
    parse_toml(&text, "bpm.toml").unwrap()
}

fn run(site_rps: f64, isolate_rps: f64, options: RunOptions) -> FleetReport {
    let profile = Profile {
        site_rps,
        isolate_rps,
    };
    simulate(&shipped(), profile, options, Native::in_memory)
}

const OPTIONS: RunOptions = RunOptions {
    secs: 300,
    seed: 7,
    outage: None,
    window_ms: None,
    lose_every_nth_ack: None,
};

/// Every hit the classifier sent is in storage, once.
fn assert_stored_as_sent(r: &FleetReport) {
    assert!(
        r.exact(),
        "sent {:?}\nstored {:?}",
        r.hits_sent,
        r.hits_stored
    );
}

#[test]
fn busy_site_on_quiet_isolates_costs_less_than_analytics_engine_and_is_exact() {
    let r = run(100.0, 2.0, OPTIONS);
    assert!(r.requests > 25_000, "{}", r.requests);
    assert_stored_as_sent(&r);
    assert_eq!(r.left_in_isolates, 0);
    assert!(
        r.rows_per_request() <= 0.15,
        "{} rows/request",
        r.rows_per_request()
    );
    assert!(
        r.do_requests_per_request() <= 0.1,
        "{} DO requests/request",
        r.do_requests_per_request()
    );
    assert!(
        r.dollars_per_million() <= 0.25,
        "${}/M",
        r.dollars_per_million()
    );
}

#[test]
fn small_site_on_very_quiet_isolates_stays_under_fifty_cents_a_million() {
    let r = run(10.0, 0.5, OPTIONS);
    assert_stored_as_sent(&r);
    assert!(
        r.dollars_per_million() <= 0.50,
        "${}/M",
        r.dollars_per_million()
    );
}

#[test]
fn a_shard_outage_delays_counts_but_loses_none() {
    // Every shard refuses flushes for 40 s: batches stay in their isolates
    // and are resent (same ids) by the next requests' drivers.
    let r = run(
        20.0,
        1.0,
        RunOptions {
            secs: 240,
            outage: Some((60, 100)),
            ..OPTIONS
        },
    );
    assert_stored_as_sent(&r);
    assert_eq!(r.left_in_isolates, 0);
    assert!(r.at_risk_per_isolate > 0.0);
}

#[test]
fn lost_acknowledgements_never_count_twice() {
    // One answer in five is lost after the shard applied the batch: the
    // isolate resends it under its id and the shard refuses the duplicate.
    let r = run(
        50.0,
        2.0,
        RunOptions {
            secs: 180,
            lose_every_nth_ack: Some(5),
            ..OPTIONS
        },
    );
    assert_stored_as_sent(&r);
    assert_eq!(r.left_in_isolates, 0);
}
