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
use chrono::NaiveDateTime;
use std::io::Read;
use std::process::Command;

const DAYS: i64 = 4;
/// The outage: 14:00–16:00 UTC on the last day.
const OUTAGE_FROM_HOUR: i64 = 14;
const OUTAGE_HOURS: i64 = 2;
/// The first day of the built log, 2015-06-01T00:00:00Z.
const BASE: i64 = 1_433_116_800;

fn one_day() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apache-one-day.log.gz"
    );
    let file = std::fs::File::open(path).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

/// Whether a combined-format line is a successful response for `/` or
/// `/blog/**` (what the shipped `marketing_views` counts, among others).
fn marketing_success(line: &str) -> bool {
    let mut quoted = line.split('"');
    let request = quoted.nth(1).unwrap_or("");
    let status = quoted
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let path = request.split(' ').nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    (path == "/" || path.starts_with("/blog/")) && status.starts_with('2')
}

/// The day repeated `DAYS` times from [`BASE`], with the outage spliced
/// into the last day when `outage`.
fn built_log(outage: bool) -> Vec<String> {
    let day = one_day();
    let fmt = "%d/%b/%Y:%H:%M:%S";
    let outage_from = BASE + (DAYS - 1) * 86_400 + OUTAGE_FROM_HOUR * 3600;
    let outage_to = outage_from + OUTAGE_HOURS * 3600;
    let mut out = Vec::new();
    for d in 0..DAYS {
        for line in &day {
            let (Some(open), Some(close)) = (line.find('['), line.find(" +0000]")) else {
                continue;
            };
            let Ok(t) = NaiveDateTime::parse_from_str(&line[open + 1..close], fmt) else {
                continue;
            };
            let secs = t.and_utc().timestamp() % 86_400;
            let at = BASE + d * 86_400 + secs;
            if outage && (outage_from..outage_to).contains(&at) && marketing_success(line) {
                continue;
            }
            let moved = chrono::DateTime::from_timestamp(at, 0).unwrap().format(fmt);
            out.push(format!("{}{moved}{}", &line[..=open], &line[close..]));
        }
    }
    out
}

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
    let got = episodes(&built_log(true));
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e.rule, "marketing_views_drop");
    let outage_from = BASE + (DAYS - 1) * 86_400 + OUTAGE_FROM_HOUR * 3600;
    let outage_to = outage_from + OUTAGE_HOURS * 3600;
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
    let got = episodes(&built_log(false));
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn the_backtest_command_prints_the_transitions_and_the_summary() {
    let dir = std::env::temp_dir().join(format!("bpm-edge-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("spliced.log");
    std::fs::write(&log, built_log(true).join("\n")).unwrap();
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
