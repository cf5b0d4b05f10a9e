//! Importing history: per-minute counts in the CSV that `bpm-edge replay`
//! writes (`timestamp,metric,count`), turned into counter-shard batches and
//! the alert object's 5-minute buckets. A line may add `,dim,value`: then it
//! is a split of the metric's count in that minute by a dimension the metric
//! keeps (`status`, or a referral dimension), for the dashboard's tables.
//!
//! Invariants: a request is accepted whole or refused whole (every bad line
//! is reported); batch ids are content hashes, so importing the same data
//! twice changes nothing; only counted metrics of the config are imported.

use crate::config::{Config, MetricKind, ReferralDimension};
use crate::count::referral::MAX_VALUE_CHARS;
use crate::count::tally::{Batch, Dim, Row};
use crate::time::BUCKET_SECS;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Most lines one request may carry.
pub const MAX_LINES: usize = 500_000;
/// The largest count storage holds exactly (Durable Object SQL integers
/// are exact up to 2^53 − 1), for a minute, a split and a 5-minute bucket.
pub const MAX_EXACT_COUNT: u64 = (1 << 53) - 1;
/// Rows per counter-shard batch.
pub const BATCH_ROWS: usize = 2_000;

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parsed counts: `(minute, metric) → count`, and dimension splits
/// `(minute, metric, dim, value) → count`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub minutes: BTreeMap<(i64, String), u64>,
    pub splits: BTreeMap<(i64, String, String, String), u64>,
}

/// Parses the CSV; a header row is optional. Returns every bad line (at
/// most 20) or the counts.
pub fn parse(text: &str, config: &Config) -> Result<Counts, Vec<LineError>> {
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    let mut bucket_sums: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let counted = |name: &str| {
        config
            .metric(name)
            .is_some_and(|m| matches!(m.kind, MetricKind::Counted { .. }))
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        if line_no > MAX_LINES {
            errors.push(LineError {
                line: line_no,
                message: format!("at most {MAX_LINES} lines per request"),
            });
            break;
        }
        let line = raw.trim();
        if line.is_empty() || (i == 0 && line.starts_with("timestamp")) {
            continue;
        }
        let mut err = |m: String| {
            if errors.len() < 20 {
                errors.push(LineError {
                    line: line_no,
                    message: m,
                });
            }
        };
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let (ts, metric, n, split) = match parts.as_slice() {
            [ts, metric, n] => (ts, metric, n, None),
            [ts, metric, n, dim, value] => (ts, metric, n, Some((*dim, *value))),
            _ => {
                err(
                    "expected `timestamp,metric,count` or `timestamp,metric,count,dim,value`"
                        .into(),
                );
                continue;
            }
        };
        let Some(t) = crate::time::parse_rfc3339(ts) else {
            err(format!("{:?} is not an RFC 3339 time", truncate(ts)));
            continue;
        };
        if !counted(metric) {
            err(format!(
                "{:?} is not a counted metric of this config",
                truncate(metric)
            ));
            continue;
        }
        let Ok(n) = n.parse::<u64>() else {
            err(format!("{:?} is not a count", truncate(n)));
            continue;
        };
        let minute = t.div_euclid(60) * 60;
        if split.is_none() {
            let bucket = bucket_sums
                .entry((metric.to_string(), minute.div_euclid(BUCKET_SECS)))
                .or_insert(0u64);
            *bucket = bucket.saturating_add(n);
            if *bucket > MAX_EXACT_COUNT {
                err(format!(
                    "the counts of {:?} add up to more than {MAX_EXACT_COUNT} (2^53 - 1, the most storage holds exactly) in the 5 minutes from {}",
                    truncate(metric),
                    crate::time::format_time(minute.div_euclid(BUCKET_SECS) * BUCKET_SECS)
                ));
                continue;
            }
        }
        let slot = match split {
            None => counts
                .minutes
                .entry((minute, metric.to_string()))
                .or_insert(0),
            Some((dim, value)) => {
                if let Err(m) = check_split(config, metric, dim, value) {
                    err(m);
                    continue;
                }
                counts
                    .splits
                    .entry((
                        minute,
                        metric.to_string(),
                        dim.to_string(),
                        value.to_string(),
                    ))
                    .or_insert(0)
            }
        };
        *slot = slot.saturating_add(n);
        if *slot > MAX_EXACT_COUNT {
            err(format!(
                "the counts of {:?} add up to more than {MAX_EXACT_COUNT} (2^53 - 1, the most storage holds exactly) in one minute",
                truncate(metric)
            ));
        }
    }
    if errors.is_empty() {
        Ok(counts)
    } else {
        Err(errors)
    }
}

/// A split must name a dimension the metric keeps and a short printable
/// value (as the live counting path would have produced).
fn check_split(config: &Config, metric: &str, dim: &str, value: &str) -> Result<(), String> {
    let kept = match config.metric(metric).map(|m| &m.kind) {
        Some(MetricKind::Counted { dimensions, .. }) => {
            dim == "status"
                || ReferralDimension::parse(dim).is_some_and(|d| dimensions.contains(&d))
        }
        _ => false,
    };
    if !kept {
        return Err(format!(
            "{metric:?} does not keep the dimension {:?}",
            truncate(dim)
        ));
    }
    if value.is_empty()
        || value.chars().count() > MAX_VALUE_CHARS
        || value.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "{:?} is not a dimension value (1 to {MAX_VALUE_CHARS} printable characters)",
            truncate(value)
        ));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn digest_hex(parts: impl Iterator<Item = String>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.splits.is_empty()
    }

    /// The imported count (saturating: 2,048 minutes of the largest exact
    /// count already exceed a u64).
    pub fn total(&self) -> u64 {
        self.minutes
            .values()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    /// Counter-shard batches with content-hash ids, each with the shard
    /// index it goes to (derived from the id, so a retry hits the same
    /// shard and is recognised there).
    pub fn batches(&self, shards: u32) -> Vec<(u32, Batch)> {
        let rows: Vec<Row> = self
            .minutes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((t, m), n)| Row(*t, m.clone(), Dim::Count.as_str().into(), String::new(), *n))
            .chain(
                self.splits
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|((t, m, d, v), n)| Row(*t, m.clone(), d.clone(), v.clone(), *n)),
            )
            .collect();
        rows.chunks(BATCH_ROWS)
            .map(|chunk| {
                let id = format!(
                    "backfill-{}",
                    // Count rows hash as before splits existed, so data
                    // imported then is still recognised.
                    digest_hex(chunk.iter().map(|r| {
                        if r.2 == Dim::Count.as_str() {
                            format!("{},{},{}", r.0, r.1, r.4)
                        } else {
                            format!("{},{},{},{},{}", r.0, r.1, r.2, r.3, r.4)
                        }
                    }))
                );
                let shard = u32::from_str_radix(id.get(9..17).unwrap_or("0"), 16).unwrap_or(0)
                    % shards.max(1);
                (
                    shard,
                    Batch {
                        id,
                        // Statistics count live requests only.
                        requests: 0,
                        rows: chunk.to_vec(),
                    },
                )
            })
            .collect()
    }

    /// The alert object's import: every minute count `(metric, minute, n)`
    /// (it sums them into its 5-minute series, each line once).
    pub fn minute_counts(&self) -> Vec<(String, i64, i64)> {
        self.minutes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((t, m), n)| (m.clone(), *t, i64::try_from(*n).unwrap_or(i64::MAX)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_count_above_2_pow_53_failed_halfway_through_an_import() {
        let cfg = config();
        let ok = "2026-01-05T10:00:00Z,logins,9007199254740991\n";
        assert!(parse(ok, &cfg).is_ok());
        // One count too large, or several adding up past it: the whole
        // request is refused before anything is written, naming the line.
        let big = format!(
            "2026-01-05T10:00:00Z,logins,1\n2026-01-05T10:01:00Z,logins,{}\n",
            1u64 << 53
        );
        let errors = parse(&big, &cfg).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("2^53"), "{}", errors[0]);
        let sum =
            "2026-01-05T10:00:00Z,logins,9007199254740000\n2026-01-05T10:01:00Z,logins,5000\n";
        let errors = parse(sum, &cfg).unwrap_err();
        assert_eq!(errors[0].line, 2, "the 5-minute bucket overflows on line 2");
        let split = "2026-01-05T10:00:00Z,marketing_views,9007199254740991,source,google\n2026-01-05T10:00:30Z,marketing_views,1,source,google\n";
        assert_eq!(parse(split, &cfg).unwrap_err()[0].line, 2);
    }

    fn config() -> Config {
        crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap()
    }

    #[test]
    fn parses_replay_output_and_sums_duplicates() {
        let text = "timestamp,metric,count\n2026-11-01T10:05:00Z,logins,3\n2026-11-01T10:05:30Z,logins,2\n2026-11-01T10:06:00Z,signups,1\n";
        let c = parse(text, &config()).unwrap();
        assert_eq!(c.minutes.get(&(1_793_527_500, "logins".into())), Some(&5));
        assert_eq!(c.total(), 6);
        assert_eq!(
            c.minute_counts(),
            vec![
                ("logins".into(), 1_793_527_500, 5),
                ("signups".into(), 1_793_527_560, 1)
            ]
        );
    }

    #[test]
    fn dimension_splits_become_rows_and_keep_count_ids_unchanged() {
        let plain = "2026-11-01T10:05:00Z,marketing_views,5\n";
        let text = format!(
            "{plain}2026-11-01T10:05:00Z,marketing_views,3,source,google\n2026-11-01T10:05:10Z,marketing_views,2,utm_campaign,spring launch\n"
        );
        let c = parse(&text, &config()).unwrap();
        assert_eq!(c.total(), 5, "splits are not extra hits");
        let rows: Vec<Row> = c.batches(1).into_iter().flat_map(|(_, b)| b.rows).collect();
        assert_eq!(rows.len(), 3);
        assert!(rows.contains(&Row(
            1_793_527_500,
            "marketing_views".into(),
            "source".into(),
            "google".into(),
            3
        )));
        assert!(rows.contains(&Row(
            1_793_527_500,
            "marketing_views".into(),
            "utm_campaign".into(),
            "spring launch".into(),
            2
        )));
        assert_eq!(
            c.minute_counts(),
            vec![("marketing_views".to_string(), 1_793_527_500, 5)]
        );
        // Count-only data hashes as it did before splits existed.
        let only = parse(plain, &config()).unwrap();
        assert_eq!(
            only.batches(1)[0].1.id,
            "backfill-".to_string()
                + &digest_hex(std::iter::once("1793527500,marketing_views,5".to_string()))
        );
        let bad = "2026-11-01T10:05:00Z,logins,1,source,google\n2026-11-01T10:05:00Z,marketing_views,1,source,\n2026-11-01T10:05:00Z,marketing_views,1,source\n";
        let errors = parse(bad, &config()).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3]);
        assert!(errors[0].message.contains("does not keep"), "{}", errors[0]);
    }

    #[test]
    fn refuses_bad_lines_with_their_numbers() {
        let text = "2026-11-01T10:05:00Z,logins,3\nyesterday,logins,1\n2026-11-01T10:05:00Z,login_success,1\n2026-11-01T10:05:00Z,logins,-1\nnot csv\n";
        let errs = parse(text, &config()).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(errs[1].message.contains("not a counted metric"));
    }

    #[test]
    fn ids_depend_on_content_only() {
        let cfg = config();
        let a = parse("2026-11-01T10:05:00Z,logins,3\n", &cfg).unwrap();
        let b = parse(
            "timestamp,metric,count\n2026-11-01T10:05:00Z,logins,3\n",
            &cfg,
        )
        .unwrap();
        let c = parse("2026-11-01T10:05:00Z,logins,4\n", &cfg).unwrap();
        assert_eq!(a.batches(4), b.batches(4));
        assert_eq!(a.minute_counts(), b.minute_counts());
        assert_ne!(a.batches(4)[0].1.id, c.batches(4)[0].1.id);
        assert!(a.batches(4).iter().all(|(s, _)| *s < 4));
    }

    #[test]
    fn large_imports_are_split_into_batches() {
        let cfg = config();
        let text: String = (0..5000)
            .map(|i| {
                format!(
                    "2026-11-01T00:00:00Z,logins,1\n{},signups,1\n",
                    crate::time::format_time(1_793_491_200 + i * 60)
                )
            })
            .collect();
        let c = parse(&text, &cfg).unwrap();
        let batches = c.batches(4);
        assert_eq!(batches.len(), 3);
        assert_eq!(
            batches.iter().map(|(_, b)| b.rows.len()).sum::<usize>(),
            c.minutes.len()
        );
    }

    #[test]
    fn regression_total_of_a_huge_import_overflowed() {
        // Found by tests/properties.rs (backfill::huge_imports_add_up): every
        // 5-minute bucket within MAX_EXACT_COUNT, but 2,049 of them sum past
        // u64::MAX, and `total` (the API's "total") panicked in debug builds
        // and wrapped in release.
        let text: String = (0..2049)
            .map(|i| {
                format!(
                    "{},logins,{MAX_EXACT_COUNT}\n",
                    crate::time::format_time(1_793_491_200 + i * 300)
                )
            })
            .collect();
        let c = parse(&text, &config()).unwrap();
        assert_eq!(c.total(), u64::MAX);
    }
}
