//! The configured rules backtested over a real access log: one day of the
//! public Apache log (`tests/fixtures/apache-one-day.log.gz`) repeated for
//! four days, with and without an outage spliced in (the marketing pages'
//! successful responses removed for two hours on the last day). The
//! shipped rules run as the alert object's ticks would run them
//! (`history::rule_backtest`), and through the `bpm-edge backtest --log`
//! command an operator uses.

use bpm_edge::config::parse_toml;
use bpm_edge::count::classify::Classifier;
use bpm_edge::history::replay::{LogFormat, Replay};
use bpm_edge::history::rule_backtest::{self, Episode};
use std::process::Command;

mod spliced_log;

use spliced_log::{built_log, marketing_pages, outage_range};

fn episodes(lines: &[String]) -> Vec<Episode> {
    let config = parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap();
    let classifier = Classifier::new(config.clone());
    let mut replay = Replay::default();
    let mut hits = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        replay.add_line(
            &classifier,
            LogFormat::Combined,
            "example.com",
            i as u64 + 1,
            line,
            &mut hits,
        );
    }
    assert_eq!(replay.malformed, 0);
    rule_backtest::run(&config, &replay.counts, None, (None, None), &[]).episodes()
}

#[test]
fn a_spliced_outage_of_the_marketing_pages_fires_their_rule_and_no_other() {
    let got = episodes(&built_log(Some(marketing_pages)));
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e.rule, "marketing_views_drop");
    let (outage_from, outage_to) = outage_range();
    assert!(
        (outage_from..outage_from + 1800).contains(&e.fired),
        "fired at {} (outage from {outage_from})",
        e.fired
    );
    let resolved = e.resolved.expect("resolved after the outage");
    assert!((outage_to..outage_to + 1800).contains(&resolved), "{e:?}");
    assert_eq!(e.lowest_ratio, Some(0.0));
}

#[test]
fn the_same_log_without_the_outage_fires_nothing() {
    let got = episodes(&built_log(None));
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn the_backtest_command_prints_the_transitions_and_the_summary() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("spliced.log");
    std::fs::write(&log, built_log(Some(marketing_pages)).join("\n")).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/bpm.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args([
            "backtest",
            "--config",
            config,
            "--rule",
            "marketing_views_drop",
            "--log",
        ])
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let firing: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["to"] == "firing")
        .collect();
    assert_eq!(firing.len(), 1, "{stdout}");
    assert_eq!(firing[0]["rule"], "marketing_views_drop");
    assert!(
        stderr.contains("| marketing_views_drop | marketing_views | 2015-06-04T14:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not judged: site_down, logins_drop"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
