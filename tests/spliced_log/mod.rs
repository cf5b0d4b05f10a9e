//! The log the incident-loop tests share: one real day of the public Apache
//! log (`tests/fixtures/apache-one-day.log.gz`) repeated [`DAYS`] times
//! from [`BASE`] (or as many days as a benchmark asks), with an outage
//! spliced into the last day's 14:00–16:00 UTC: the successful responses
//! for the paths a test names removed, as if that part of the site had
//! stopped answering.

#![allow(dead_code)] // each test crate uses its part

use chrono::NaiveDateTime;
use std::io::Read;

pub const DAYS: i64 = 4;
/// The outage: 14:00–16:00 UTC on the last day.
pub const OUTAGE_FROM_HOUR: i64 = 14;
pub const OUTAGE_HOURS: i64 = 2;
/// The first day of the built log, 2015-06-01T00:00:00Z.
pub const BASE: i64 = 1_433_116_800;

/// The outage's range `[from, to)`.
pub fn outage_range() -> (i64, i64) {
    outage_range_over(DAYS)
}

/// The outage's range in a log of `days` days.
pub fn outage_range_over(days: i64) -> (i64, i64) {
    let from = BASE + (days - 1) * 86_400 + OUTAGE_FROM_HOUR * 3600;
    (from, from + OUTAGE_HOURS * 3600)
}

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

/// Whether a combined-format line is a successful response (2xx) for a
/// path `removed` names (query left out).
fn success_for(line: &str, removed: fn(&str) -> bool) -> bool {
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
    removed(path) && status.starts_with('2')
}

/// `/` and `/blog/**`: what the shipped `marketing_views` counts, among
/// others.
pub fn marketing_pages(path: &str) -> bool {
    path == "/" || path.starts_with("/blog/")
}

/// `/blog/**` alone.
pub fn blog(path: &str) -> bool {
    path.starts_with("/blog/")
}

/// The day repeated `DAYS` times from [`BASE`], with the successful
/// responses for the paths `removed` names left out of the outage.
pub fn built_log(removed: Option<fn(&str) -> bool>) -> Vec<String> {
    built_log_over(DAYS, removed)
}

/// [`built_log`] over `days` days (the benchmarks' longer logs).
pub fn built_log_over(days: i64, removed: Option<fn(&str) -> bool>) -> Vec<String> {
    let day = one_day();
    let fmt = "%d/%b/%Y:%H:%M:%S";
    let (outage_from, outage_to) = outage_range_over(days);
    let mut out = Vec::new();
    for d in 0..days {
        for line in &day {
            let (Some(open), Some(close)) = (line.find('['), line.find(" +0000]")) else {
                continue;
            };
            let Ok(t) = NaiveDateTime::parse_from_str(&line[open + 1..close], fmt) else {
                continue;
            };
            let secs = t.and_utc().timestamp() % 86_400;
            let at = BASE + d * 86_400 + secs;
            if let Some(removed) = removed {
                if (outage_from..outage_to).contains(&at) && success_for(line, removed) {
                    continue;
                }
            }
            let moved = chrono::DateTime::from_timestamp(at, 0).unwrap().format(fmt);
            out.push(format!("{}{moved}{}", &line[..=open], &line[close..]));
        }
    }
    out
}
