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
use bpm_edge::time::format_time;
use std::process::Command;

mod spliced_log;

use spliced_log::{built_log, marketing_pages, outage_range};

fn episodes(lines: &[String]) -> Vec<Episode> {
    let config = parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap();
    let classifier = Classifier::new(config.clone());
    let mut replay = Replay::default();
    replay.add_lines(
        &classifier,
        LogFormat::Combined,
        "example.com",
        lines.iter().map(String::as_str),
    );
    assert_eq!(replay.malformed, 0);
    rule_backtest::run(&config, &replay, None, (None, None), &[]).episodes()
}

#[test]
fn a_spliced_outage_of_the_marketing_pages_fires_their_rules_and_no_other() {
    let got = episodes(&built_log(Some(marketing_pages)));
    let (outage_from, outage_to) = outage_range();
    // The metric's own rule, and its `by = "source"` split for the sources
    // that went dark with it; nothing on any other metric.
    assert!(got.iter().all(|e| e.metric == "marketing_views"), "{got:?}");
    let drops: Vec<&Episode> = got
        .iter()
        .filter(|e| e.rule == "marketing_views_drop")
        .collect();
    assert_eq!(drops.len(), 1, "{got:?}");
    for e in &got {
        assert!(
            e.rule == "marketing_views_drop"
                || (e.rule == "referral_source_dark" && e.value.is_some()),
            "{e:?}"
        );
        assert!(
            (outage_from..outage_from + 1800).contains(&e.fired),
            "fired at {} (outage from {outage_from})",
            e.fired
        );
        let resolved = e.resolved.expect("resolved after the outage");
        assert!((outage_to..outage_to + 1800).contains(&resolved), "{e:?}");
        assert_eq!(e.lowest_ratio, Some(0.0));
    }
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
    // The marketing rule alone, with `extra` arguments.
    let backtest = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
            .args([
                "backtest",
                "--config",
                config,
                "--rule",
                "marketing_views_drop",
            ])
            .args(extra)
            .arg("--log")
            .arg(&log)
            .output()
            .unwrap()
    };
    let out = backtest(&[]);
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

    // Silenced from the outage's start: the same change, no notification.
    let (from, to) = outage_range();
    let silence = format!(
        "marketing_views_drop={}..{}",
        format_time(from),
        format_time(to + 3600)
    );
    let out = backtest(&["--silence", &silence]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    let notices: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| !v["notice"].is_null())
        .collect();
    assert!(
        notices
            .iter()
            .any(|v| v["notice"] == "silenced by backtest-1"),
        "{stdout}"
    );
    assert!(
        !notices.iter().any(|v| v["notice"] == "firing sent"),
        "{stdout}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_bpm-edge"))
        .args([
            "backtest",
            "--config",
            config,
            "--silence",
            "nope=1..2",
            "--log",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `days` days of views of the home page, every minute: two from Google,
/// one from Bing and one typed in, in combined format; Google's stop
/// during the last day's 10:00–13:00.
fn referrals(days: i64) -> Vec<String> {
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";
    let dark_from = spliced_log::BASE + (days - 1) * 86_400 + 10 * 3600;
    let mut out = Vec::new();
    for minute in 0..days * 1440 {
        let at = spliced_log::BASE + minute * 60;
        let time = chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .format("%d/%b/%Y:%H:%M:%S +0000");
        let mut referers = vec!["https://www.bing.com/", "-"];
        if !(dark_from..dark_from + 3 * 3600).contains(&at) {
            referers.extend(["https://www.google.com/", "https://www.google.com/"]);
        }
        for r in referers {
            out.push(format!(
                r#"10.0.0.1 - - [{time}] "GET / HTTP/1.1" 200 512 "{r}" "{ua}""#
            ));
        }
    }
    out
}

#[test]
fn a_source_that_goes_dark_fires_the_by_rule_for_that_value_only() {
    let got = episodes(&referrals(5));
    let dark: Vec<&Episode> = got
        .iter()
        .filter(|e| e.rule == "referral_source_dark")
        .collect();
    assert_eq!(dark.len(), 1, "{got:?}");
    assert_eq!(dark[0].value.as_deref(), Some("google"), "{got:?}");
    let dark_from = spliced_log::BASE + 4 * 86_400 + 10 * 3600;
    assert!(
        (dark_from..dark_from + 3600).contains(&dark[0].fired),
        "{:?}",
        dark[0]
    );
    assert!(dark[0].resolved.is_some_and(|r| r >= dark_from + 3 * 3600));
}
