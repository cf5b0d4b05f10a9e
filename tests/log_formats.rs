//! The same traffic read from an nginx/Apache combined log and from
//! Cloudflare Logpush `http_requests` records counts the same: every line
//! of one real day (`tests/fixtures/apache-one-day.log.gz`) is written
//! again as the Logpush record a Cloudflare job would have pushed for it
//! (nanosecond timestamps, the job's default), and both are replayed
//! through the shipped config.

use bpm_edge::config::parse_toml;
use bpm_edge::count::classify::Classifier;
use bpm_edge::history::accesslog::LogLine;
use bpm_edge::history::replay::{log_time, LogFormat, Replay};
use std::io::Read;

fn one_day() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apache-one-day.log.gz"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_string).collect()
}

/// The Logpush record of a combined-format line.
fn as_logpush(line: &str) -> String {
    let l = LogLine::parse(line).unwrap();
    let at = log_time(l.time).unwrap();
    let mut record = serde_json::json!({
        "ClientIP": line.split(' ').next().unwrap_or(""),
        "ClientRequestHost": "example.com",
        "ClientRequestMethod": l.method,
        "ClientRequestURI": l.target,
        "EdgeResponseStatus": l.status,
        "EdgeStartTimestamp": at * 1_000_000_000,
        "RayID": "0",
    });
    // A job logs an empty string for a missing header; the access log a `-`.
    record["ClientRequestReferer"] = l.referer.unwrap_or("").into();
    record["ClientRequestUserAgent"] = l.user_agent.unwrap_or("").into();
    record.to_string()
}

fn replay(lines: &[String], format: LogFormat) -> Replay {
    let config = parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap();
    let classifier = Classifier::new(config);
    let mut r = Replay::default();
    r.add_lines(
        &classifier,
        format,
        "example.com",
        lines.iter().map(String::as_str),
    );
    r
}

#[test]
fn logpush_records_count_the_same_as_the_combined_log_of_the_same_traffic() {
    let combined = one_day();
    let logpush: Vec<String> = combined.iter().map(|l| as_logpush(l)).collect();
    let a = replay(&combined, LogFormat::Combined);
    let b = replay(&logpush, LogFormat::Logpush);
    assert_eq!(a.lines, 2_896);
    assert_eq!((a.malformed, b.malformed), (0, 0));
    assert!(
        a.counts.values().sum::<u64>() > 1_000,
        "{:?}",
        a.counts.len()
    );
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.kinds, b.kinds);
    assert_eq!(a.not_counted, b.not_counted);
}
