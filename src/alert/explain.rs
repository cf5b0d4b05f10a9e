//! Says where a drop happened: which values of a metric's dimensions
//! (referral source, `utm_campaign`, landing page, agent kind, status
//! class) lost the most against their own baseline, in numbers and in one
//! line of text for a notification ("source google −92% (−1,840), all other
//! sources normal; status 5xx up from 0.1% to 38%").
//!
//! Each value's baseline is the median of its counts over the same
//! wall-clock window on each of the previous 7 days ([`reference_ends`],
//! all inside the shards' minute retention), a value absent from a window
//! counting 0 there; a day with no counts of the metric at all (before the
//! deployment) is left out. The alert object reads the counts when an alert
//! fires ([`dimensions_of`], [`dimension_counts`]); a resolution explains
//! nothing.
//!
//! Invariants: a value is named only when it lost at least
//! [`MIN_VALUE_LOSS`] events and at least [`MIN_SHARE_OF_LOSS`] of its
//! dimension's loss and kept at most [`MAX_KEPT`] of its baseline; at most
//! [`MAX_VALUES`] values per dimension and [`MAX_LOSS_DIMENSIONS`]
//! dimensions are named, the ones that concentrate the loss most first; a
//! share dimension (status) is named only when an error class's share at
//! least doubled and rose by [`MIN_SHARE_RISE`]. Nothing here reads a clock
//! or storage: the caller gathers the counts.

use crate::config::{Config, MetricKind};
use crate::count::tally::{Dim, Row};
use crate::decimal::round_to;
use crate::time::WallClock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Smallest loss of one value worth naming, in events.
pub const MIN_VALUE_LOSS: f64 = 5.0;
/// Smallest part of its dimension's loss a named value carries.
pub const MIN_SHARE_OF_LOSS: f64 = 0.2;
/// Largest observed/expected ratio of a named value.
pub const MAX_KEPT: f64 = 0.7;
/// Values named per dimension.
pub const MAX_VALUES: usize = 3;
/// Dimensions named for a loss.
pub const MAX_LOSS_DIMENSIONS: usize = 2;
/// Smallest rise of an error class's share (absolute, 0–1) worth naming.
pub const MIN_SHARE_RISE: f64 = 0.05;
/// The rest of a dimension counts as normal within this relative change.
pub const NORMAL_BAND: f64 = 0.15;

/// What a dimension's values mean for the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimensionRole {
    /// Values whose counts add up to the metric (sources, campaigns,
    /// landing pages, client kinds): named by what they lost.
    Parts,
    /// Status classes: named when an error class's share rises.
    Status,
}

/// One dimension's counts over the judged window and each reference window.
#[derive(Debug, Clone, PartialEq)]
pub struct DimensionCounts {
    /// As the API names it: `source`, `utm_campaign`, `landing`, `status`…
    pub dimension: String,
    pub role: DimensionRole,
    /// Count per value in the judged window.
    pub now: BTreeMap<String, f64>,
    /// Count per value in each reference window (the detector's baseline
    /// windows).
    pub before: Vec<BTreeMap<String, f64>>,
}

/// One named value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A value that lost traffic against its baseline.
    Lost {
        dimension: String,
        value: String,
        observed: f64,
        expected: f64,
        /// `observed − expected` (negative).
        change: f64,
        /// `(observed / expected − 1) × 100`.
        change_pct: f64,
    },
    /// An error class whose share of the metric rose.
    ShareRose {
        dimension: String,
        value: String,
        /// Share of the judged window, 0–1.
        share: f64,
        /// Share of the baseline, 0–1.
        baseline_share: f64,
    },
}

/// Where a drop happened, for a notification and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// One line, e.g. `source google −92% (−1,840), all other sources normal`.
    pub text: String,
    pub findings: Vec<Finding>,
}

impl Explanation {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Days of reference windows.
pub const REFERENCE_DAYS: i64 = 7;

/// The counted metric whose dimensions explain `metric`'s drop (a ratio's
/// numerator) and the dimensions to read: its referral dimensions, the
/// agent kind of its counted hits (browser, client), then the status class.
/// `None` for an unknown metric.
pub fn dimensions_of(
    config: &Config,
    metric: &str,
) -> Option<(String, Vec<(String, DimensionRole)>)> {
    let counted = match &config.metric(metric)?.kind {
        MetricKind::Ratio(r) => r.numerator.clone(),
        MetricKind::Counted { .. } => metric.to_string(),
    };
    let MetricKind::Counted { dimensions, .. } = &config.metric(&counted)?.kind else {
        return None;
    };
    let mut dims: Vec<(String, DimensionRole)> = dimensions
        .iter()
        .map(|d| (d.as_str().to_string(), DimensionRole::Parts))
        .collect();
    dims.push((Dim::Kind.as_str().to_string(), DimensionRole::Parts));
    dims.push((Dim::Status.as_str().to_string(), DimensionRole::Status));
    Some((counted, dims))
}

/// Ends of the reference windows for a window ending at `at`: the same
/// wall-clock instant on each of the previous [`REFERENCE_DAYS`] days.
pub fn reference_ends(at: i64, clock: &dyn WallClock) -> Vec<i64> {
    (1..=REFERENCE_DAYS)
        .map(|d| clock.days_before(at, d))
        .collect()
}

/// The counts per dimension of `metric` from the rows of the judged window
/// (`now`) and of each reference window (`before`). A reference window
/// holding no row of the metric is left out.
pub fn dimension_counts(
    metric: &str,
    dims: &[(String, DimensionRole)],
    now: &[Row],
    before: &[Vec<Row>],
) -> Vec<DimensionCounts> {
    let sum = |rows: &[Row], dim: &str| -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| r.metric() == metric && r.dim() == dim)
        {
            *out.entry(r.value().to_string()).or_insert(0.0) += r.n() as f64;
        }
        out
    };
    let windows: Vec<&Vec<Row>> = before
        .iter()
        .filter(|rows| rows.iter().any(|r| r.metric() == metric))
        .collect();
    dims.iter()
        .map(|(dim, role)| DimensionCounts {
            dimension: dim.clone(),
            role: *role,
            now: sum(now, dim),
            before: windows.iter().map(|rows| sum(rows, dim)).collect(),
        })
        .collect()
}

/// The explanation of a drop from its dimensions' counts.
pub fn explain(dimensions: &[DimensionCounts]) -> Explanation {
    let mut losses: Vec<DimensionLoss> = dimensions
        .iter()
        .filter(|d| d.role == DimensionRole::Parts)
        .filter_map(dimension_loss)
        .collect();
    // Most concentrated first; ties by name so the text is stable.
    losses.sort_by(|a, b| {
        b.concentration
            .total_cmp(&a.concentration)
            .then_with(|| a.dimension.cmp(&b.dimension))
    });
    losses.truncate(MAX_LOSS_DIMENSIONS);

    let mut findings = Vec::new();
    let mut parts = Vec::new();
    for loss in &losses {
        let mut named = Vec::new();
        for v in &loss.named {
            named.push(format!(
                "{} {} ({})",
                shown(&v.value),
                signed_pct(v.observed, v.expected),
                signed_count(v.observed - v.expected)
            ));
            findings.push(Finding::Lost {
                dimension: loss.dimension.clone(),
                value: v.value.clone(),
                observed: v.observed,
                expected: round_to(v.expected, 2),
                change: round_to(v.observed - v.expected, 2),
                change_pct: round_to(change_pct(v.observed, v.expected), 2),
            });
        }
        let mut text = format!("{} {}", label(&loss.dimension), named.join(", "));
        match loss.rest {
            Rest::None => {}
            Rest::Normal => {
                text.push_str(&format!(", all other {} normal", plural(&loss.dimension)))
            }
            Rest::Changed { observed, expected } => text.push_str(&format!(
                ", other {} {}",
                plural(&loss.dimension),
                signed_pct(observed, expected)
            )),
        }
        parts.push(text);
    }
    for d in dimensions
        .iter()
        .filter(|d| d.role == DimensionRole::Status)
    {
        for rise in share_rises(d) {
            parts.push(format!(
                "{} {} up from {} to {}",
                label(&d.dimension),
                shown(&rise.value),
                share_pct(rise.baseline_share),
                share_pct(rise.share)
            ));
            findings.push(Finding::ShareRose {
                dimension: d.dimension.clone(),
                value: rise.value,
                share: round_to(rise.share, 4),
                baseline_share: round_to(rise.baseline_share, 4),
            });
        }
    }
    Explanation {
        text: parts.join("; "),
        findings,
    }
}

struct NamedValue {
    value: String,
    observed: f64,
    expected: f64,
}

enum Rest {
    /// Every value is named.
    None,
    Normal,
    Changed {
        observed: f64,
        expected: f64,
    },
}

struct DimensionLoss {
    dimension: String,
    named: Vec<NamedValue>,
    /// Part of the dimension's loss the named values carry.
    concentration: f64,
    rest: Rest,
}

/// Each value's (observed, expected): expected is the median over the
/// reference windows, a value missing from a window counting 0 there.
fn per_value(d: &DimensionCounts) -> Vec<(String, f64, f64)> {
    let values: BTreeSet<&String> = d
        .now
        .keys()
        .chain(d.before.iter().flat_map(|w| w.keys()))
        .collect();
    values
        .into_iter()
        .map(|v| {
            let observed = d.now.get(v).copied().unwrap_or(0.0);
            let history: Vec<f64> = d
                .before
                .iter()
                .map(|w| w.get(v).copied().unwrap_or(0.0))
                .collect();
            let expected = crate::alert::detector::median(&history).unwrap_or(0.0);
            (v.clone(), observed, expected)
        })
        .collect()
}

fn dimension_loss(d: &DimensionCounts) -> Option<DimensionLoss> {
    let values = per_value(d);
    let total_observed: f64 = values.iter().map(|(_, o, _)| o).sum();
    let total_expected: f64 = values.iter().map(|(_, _, e)| e).sum();
    let loss = total_expected - total_observed;
    if loss <= 0.0 {
        return None;
    }
    let mut candidates: Vec<&(String, f64, f64)> = values
        .iter()
        .filter(|(_, o, e)| {
            let lost = e - o;
            lost >= MIN_VALUE_LOSS && lost >= MIN_SHARE_OF_LOSS * loss && *o <= MAX_KEPT * e
        })
        .collect();
    candidates.sort_by(|a, b| {
        (b.2 - b.1)
            .total_cmp(&(a.2 - a.1))
            .then_with(|| a.0.cmp(&b.0))
    });
    candidates.truncate(MAX_VALUES);
    if candidates.is_empty() {
        return None;
    }
    let named_loss: f64 = candidates.iter().map(|(_, o, e)| e - o).sum();
    let (rest_observed, rest_expected) = values
        .iter()
        .filter(|(v, _, _)| !candidates.iter().any(|(c, _, _)| c == v))
        .fold((0.0, 0.0), |(o, e), (_, vo, ve)| (o + vo, e + ve));
    let rest = if rest_expected <= 0.0 && rest_observed <= 0.0 {
        Rest::None
    } else if rest_expected > 0.0 && (rest_observed / rest_expected - 1.0).abs() <= NORMAL_BAND {
        Rest::Normal
    } else {
        Rest::Changed {
            observed: rest_observed,
            expected: rest_expected,
        }
    };
    Some(DimensionLoss {
        dimension: d.dimension.clone(),
        named: candidates
            .into_iter()
            .map(|(v, o, e)| NamedValue {
                value: v.clone(),
                observed: *o,
                expected: *e,
            })
            .collect(),
        concentration: (named_loss / loss).min(1.0),
        rest,
    })
}

struct ShareRise {
    value: String,
    share: f64,
    baseline_share: f64,
}

/// Error classes (`4xx`, `5xx`) whose share at least doubled and rose by
/// [`MIN_SHARE_RISE`], the larger rise first.
fn share_rises(d: &DimensionCounts) -> Vec<ShareRise> {
    let values = per_value(d);
    let total_observed: f64 = values.iter().map(|(_, o, _)| o).sum();
    let total_expected: f64 = values.iter().map(|(_, _, e)| e).sum();
    if total_observed <= 0.0 {
        return Vec::new();
    }
    let mut rises: Vec<ShareRise> = values
        .iter()
        .filter(|(v, _, _)| v.starts_with('4') || v.starts_with('5'))
        .filter_map(|(v, o, e)| {
            let share = o / total_observed;
            let baseline_share = if total_expected > 0.0 {
                e / total_expected
            } else {
                0.0
            };
            (share >= baseline_share + MIN_SHARE_RISE && share >= 2.0 * baseline_share).then(|| {
                ShareRise {
                    value: v.clone(),
                    share,
                    baseline_share,
                }
            })
        })
        .collect();
    rises.sort_by(|a, b| {
        (b.share - b.baseline_share)
            .total_cmp(&(a.share - a.baseline_share))
            .then_with(|| a.value.cmp(&b.value))
    });
    rises
}

/// Longest value shown in the text, in characters.
pub const MAX_SHOWN_CHARS: usize = 80;

/// A value as the one-line text shows it: control characters (a landing
/// path or campaign may carry any) as `\u{fffd}`, cut to
/// [`MAX_SHOWN_CHARS`] with `…`. The findings keep the value as it is.
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if value.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// How a dimension is named in the text.
fn label(dimension: &str) -> &str {
    match dimension {
        "utm_campaign" => "campaign",
        "utm_source" => "utm_source",
        "utm_medium" => "medium",
        "landing" => "landing page",
        other => other,
    }
}

fn plural(dimension: &str) -> String {
    match dimension {
        "source" => "sources".into(),
        "utm_campaign" => "campaigns".into(),
        "utm_medium" => "media".into(),
        "landing" => "landing pages".into(),
        "kind" => "kinds".into(),
        other => format!("{other} values"),
    }
}

fn change_pct(observed: f64, expected: f64) -> f64 {
    if expected > 0.0 {
        (observed / expected - 1.0) * 100.0
    } else {
        0.0
    }
}

/// `−92%`; a value that kept anything never reads `−100%`.
fn signed_pct(observed: f64, expected: f64) -> String {
    let mut pct = change_pct(observed, expected).round();
    if pct <= -100.0 && observed > 0.0 {
        pct = -99.0;
    }
    if pct < 0.0 {
        format!("\u{2212}{}%", -pct)
    } else {
        format!("+{pct}%")
    }
}

/// `−1,840`: rounded to whole events, thousands separated.
fn signed_count(change: f64) -> String {
    let n = change.round();
    let sign = if n < 0.0 { "\u{2212}" } else { "+" };
    format!("{sign}{}", thousands(n.abs() as u64))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.1%`, `38%`: one decimal below 10%.
fn share_pct(share: f64) -> String {
    let pct = share * 100.0;
    if pct < 10.0 {
        format!("{:.1}%", pct)
    } else {
        format!("{:.0}%", pct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn parts(dimension: &str, now: &[(&str, f64)], before: &[&[(&str, f64)]]) -> DimensionCounts {
        DimensionCounts {
            dimension: dimension.into(),
            role: DimensionRole::Parts,
            now: counts(now),
            before: before.iter().map(|w| counts(w)).collect(),
        }
    }

    #[test]
    fn one_dark_source_is_named_and_the_others_are_normal() {
        let d = parts(
            "source",
            &[("google", 160.0), ("direct", 1_010.0), ("bing", 195.0)],
            &[
                &[("google", 2_000.0), ("direct", 1_000.0), ("bing", 200.0)],
                &[("google", 1_950.0), ("direct", 990.0), ("bing", 210.0)],
                &[("google", 2_050.0), ("direct", 1_020.0), ("bing", 190.0)],
            ],
        );
        let e = explain(&[d]);
        assert_eq!(
            e.text,
            "source google \u{2212}92% (\u{2212}1,840), all other sources normal"
        );
        assert_eq!(
            e.findings,
            vec![Finding::Lost {
                dimension: "source".into(),
                value: "google".into(),
                observed: 160.0,
                expected: 2_000.0,
                change: -1_840.0,
                change_pct: -92.0,
            }]
        );
    }

    #[test]
    fn the_dimension_that_concentrates_the_loss_comes_first() {
        // The campaign carries the whole loss; sources lost evenly.
        let source = parts(
            "source",
            &[("google", 500.0), ("direct", 500.0)],
            &[
                &[("google", 700.0), ("direct", 700.0)],
                &[("google", 700.0), ("direct", 700.0)],
            ],
        );
        let campaign = parts(
            "utm_campaign",
            &[("spring", 0.0), ("brand", 1_000.0)],
            &[
                &[("spring", 400.0), ("brand", 1_000.0)],
                &[("spring", 400.0), ("brand", 1_000.0)],
            ],
        );
        let e = explain(&[source, campaign]);
        assert!(
            e.text.starts_with(
                "campaign spring \u{2212}100% (\u{2212}400), all other campaigns normal"
            ),
            "{}",
            e.text
        );
    }

    #[test]
    fn an_even_loss_names_no_value() {
        let week: &[(&str, f64)] = &[("google", 1_000.0), ("direct", 500.0), ("bing", 100.0)];
        let d = parts(
            "source",
            &[("google", 900.0), ("direct", 450.0), ("bing", 90.0)],
            &[week, week, week],
        );
        let e = explain(&[d]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(e.text, "");
    }

    #[test]
    fn the_app_going_dark_is_named_by_its_kind() {
        let week: &[(&str, f64)] = &[("browser", 600.0), ("client", 400.0)];
        let d = parts(
            "kind",
            &[("browser", 610.0), ("client", 3.0)],
            &[week, week, week],
        );
        assert_eq!(
            explain(&[d]).text,
            "kind client \u{2212}99% (\u{2212}397), all other kinds normal"
        );
    }

    #[test]
    fn a_rising_error_class_is_named_with_its_shares() {
        let status = DimensionCounts {
            dimension: "status".into(),
            role: DimensionRole::Status,
            now: counts(&[("2xx", 620.0), ("5xx", 380.0)]),
            before: vec![counts(&[("2xx", 999.0), ("5xx", 1.0)]); 3],
        };
        let e = explain(&[status]);
        assert_eq!(e.text, "status 5xx up from 0.1% to 38%");
        assert_eq!(
            e.findings,
            vec![Finding::ShareRose {
                dimension: "status".into(),
                value: "5xx".into(),
                share: 0.38,
                baseline_share: 0.001,
            }]
        );
    }

    #[test]
    fn a_value_missing_from_the_window_counts_zero_and_one_odd_week_does_not_move_its_baseline() {
        // The partner's newsletter went dark; one reference week had a
        // spike that the median ignores.
        let d = parts(
            "source",
            &[("google", 1_000.0)],
            &[
                &[("newsletter", 300.0), ("google", 1_000.0)],
                &[("newsletter", 3_000.0), ("google", 1_000.0)],
                &[("newsletter", 310.0), ("google", 1_000.0)],
            ],
        );
        let e = explain(&[d]);
        assert_eq!(
            e.text,
            "source newsletter \u{2212}100% (\u{2212}310), all other sources normal"
        );
    }

    #[test]
    fn small_losses_and_growing_dimensions_are_not_named() {
        let week: &[(&str, f64)] = &[("/a", 4.0), ("/b", 20.0)];
        let d = parts("landing", &[("/a", 1.0), ("/b", 40.0)], &[week, week]);
        assert!(explain(&[d]).is_empty());
    }

    #[test]
    fn counts_come_from_the_metrics_rows_and_empty_days_are_left_out() {
        let row =
            |t: i64, m: &str, d: &str, v: &str, n: u64| Row(t, m.into(), d.into(), v.into(), n);
        let dims = vec![
            ("source".to_string(), DimensionRole::Parts),
            ("status".to_string(), DimensionRole::Status),
        ];
        let now = vec![
            row(0, "views", "source", "google", 3),
            row(60, "views", "source", "google", 2),
            row(60, "views", "status", "2xx", 5),
            row(60, "logins", "source", "google", 99),
        ];
        let day = vec![
            row(0, "views", "source", "google", 40),
            row(0, "views", "status", "2xx", 40),
        ];
        let before = vec![
            day.clone(),
            Vec::new(),
            vec![row(0, "logins", "count", "", 1)],
            day,
        ];
        let counts = dimension_counts("views", &dims, &now, &before);
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].now, counts_of(&[("google", 5.0)]));
        // Two days with rows of the metric; the empty day and the day with
        // only another metric's rows are not windows of this metric.
        assert_eq!(counts[0].before.len(), 2);
        assert_eq!(counts[1].role, DimensionRole::Status);
        assert_eq!(counts[1].now, counts_of(&[("2xx", 5.0)]));
        let e = explain(&counts);
        assert_eq!(e.text, "source google \u{2212}88% (\u{2212}35)");
    }

    #[test]
    fn reference_windows_are_the_previous_seven_days() {
        let ends = reference_ends(10 * 86_400 + 3_600, &crate::time::Utc);
        assert_eq!(ends.len(), 7);
        assert_eq!(ends[0], 9 * 86_400 + 3_600);
        assert_eq!(ends[6], 3 * 86_400 + 3_600);
    }

    #[test]
    fn a_ratio_is_explained_by_its_numerators_dimensions() {
        let config = crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        let (counted, dims) = dimensions_of(&config, "marketing_views").unwrap_or_default();
        assert_eq!(counted, "marketing_views");
        assert!(dims
            .iter()
            .any(|(d, r)| d == "source" && *r == DimensionRole::Parts));
        assert_eq!(dims.last().map(|(d, _)| d.as_str()), Some("status"));
        let (counted, dims) = dimensions_of(&config, "login_success").unwrap_or_default();
        assert_eq!(counted, "dashboard_views");
        assert_eq!(dims.last().map(|(d, _)| d.as_str()), Some("status"));
        assert!(dimensions_of(&config, "nope").is_none());
    }

    fn counts_of(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        counts(pairs)
    }

    #[test]
    fn regression_a_value_with_a_newline_kept_the_text_on_one_line() {
        let d = parts("landing", &[], &[&[("/a\nb", 50.0)]]);
        let e = explain(&[d]);
        assert_eq!(e.text, "landing page /a\u{fffd}b \u{2212}100% (\u{2212}50)");
        let long = "x".repeat(200);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN_CHARS + 1);
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_840), "1,840");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(signed_pct(1.0, 1_000.0), "\u{2212}99%");
        assert_eq!(signed_pct(0.0, 1_000.0), "\u{2212}100%");
        assert_eq!(signed_pct(130.0, 100.0), "+30%");
        assert_eq!(share_pct(0.001), "0.1%");
        assert_eq!(share_pct(0.38), "38%");
    }
}
