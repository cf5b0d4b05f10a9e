//! The drop detector on the Numenta Anomaly Benchmark (NAB), with the
//! shipped defaults and no per-file tuning:
//!
//! - the drop subset S1 (`realKnownCause/nyc_taxi.csv`,
//!   `artificialWithAnomaly/art_daily_jumpsdown.csv`,
//!   `artificialWithAnomaly/art_daily_nojump.csv`: 7 labelled windows),
//!   scored with NAB's standard, low-FP and low-FN cost profiles;
//! - false alerts per week on `realTweets/*` and `artificialNoAnomaly/*`
//!   after a 3-week warm-up;
//! - detection delays on seeded synthetic minute series (weekly shape, 5%
//!   day-to-day noise, Poisson counts) judged exactly as the worker judges
//!   them: a total outage at 2,000, 200 and 20 events an hour, and a
//!   sustained halving at 3,000 an hour; false alerts on clean ones;
//! - every figure before (the same rules without the fast path) and after,
//!   in the same run;
//! - the detector's cost: µs per evaluation over 5 weeks of 15-minute
//!   buckets, against a baseline measured in the same run (summing the
//!   windows without judging them).
//!
//! Detections are the evaluations at which an alert starts firing, from the
//! same `backtest::run` that `bpm-edge backtest` prints. Data: NAB (MIT),
//! Ahmad et al. 2017, in `../shared/bench-data/nab`.
//!
//! Run: `cargo bench --bench nab`

use bpm_edge::alert::detector::{CountSeries, DetectorParams, DropDetector};
use bpm_edge::alert::lifecycle::{LifecycleParams, State};
use bpm_edge::history::backtest::{native_step, parse_csv, parse_timestamp, run, to_grid};
use bpm_edge::history::synthetic::Synthetic;
use bpm_edge::time::{Utc, DAY, WEEK};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

const S1: [&str; 3] = [
    "realKnownCause/nyc_taxi.csv",
    "artificialWithAnomaly/art_daily_jumpsdown.csv",
    "artificialWithAnomaly/art_daily_nojump.csv",
];

struct Profile {
    name: &'static str,
    tp: f64,
    fp: f64,
    fn_: f64,
}

const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

fn nab_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench-data/nab");
    p.is_dir().then_some(p)
}

/// NAB's scaled sigmoid: 0.987 at a window's start, 0 at its end, negative after.
fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// The two variants measured in one run.
fn variants() -> [(&'static str, DetectorParams); 2] {
    [
        ("before", DetectorParams::critical().without_fast_path()),
        ("after", DetectorParams::critical()),
    ]
}

/// Row indices of detections (firing starts) for one file.
fn detections(path: &Path, params: &DetectorParams) -> (Vec<i64>, Vec<usize>) {
    let text = std::fs::read_to_string(path).expect("NAB file");
    let raw = parse_csv(&text).expect("NAB csv");
    let step = native_step(&raw).expect("step");
    let (series, _) = to_grid(&raw, step).expect("grid");
    let outcomes = run(&series, params, &LifecycleParams::default());
    let rows: Vec<usize> = outcomes
        .iter()
        .filter(|o| o.transition.to == State::Firing)
        .filter_map(|o| {
            // The evaluation at `at` judged buckets ending at `at`: the row
            // of the last complete bucket.
            let t = o.transition.at - step;
            raw.timestamps.iter().position(|ts| *ts >= t)
        })
        .collect();
    (raw.timestamps, rows)
}

/// Raw NAB score of one file under one profile, and its window count.
fn score_file(
    timestamps: &[i64],
    detected: &[usize],
    windows: &[(i64, i64)],
    p: &Profile,
) -> (f64, usize) {
    let n = timestamps.len();
    let probation = ((0.15 * n as f64).floor() as usize).min(750);
    let spans: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|(a, b)| {
            let s = timestamps.iter().position(|t| t >= a)?;
            let e = timestamps.iter().rposition(|t| t <= b)?;
            (s <= e).then_some((s, e))
        })
        .collect();
    let mut score = 0.0;
    let mut hit = vec![false; spans.len()];
    for &i in detected.iter().filter(|i| **i >= probation) {
        if let Some(w) = spans.iter().position(|(s, e)| i >= *s && i <= *e) {
            if !hit[w] {
                hit[w] = true;
                let (s, e) = spans[w];
                let len = (e - s + 1) as f64;
                let y = -((e - i + 1) as f64) / len;
                score += p.tp * scaled_sigmoid(y);
            }
        } else {
            // A false positive: weighed by its distance after the last window.
            let prev = spans.iter().filter(|(_, e)| *e < i).max_by_key(|(_, e)| *e);
            let unweighted = match prev {
                Some((s, e)) => scaled_sigmoid((i - e) as f64 / (e - s + 1) as f64),
                None => -1.0,
            };
            score += p.fp * unweighted;
        }
    }
    score -= p.fn_ * hit.iter().filter(|h| !**h).count() as f64;
    (score, spans.len())
}

fn labels(dir: &Path) -> BTreeMap<String, Vec<(i64, i64)>> {
    let text = std::fs::read_to_string(dir.join("labels/combined_windows.json")).expect("labels");
    let raw: BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(&text).expect("labels json");
    raw.into_iter()
        .map(|(k, v)| {
            let w = v
                .iter()
                .filter_map(|pair| {
                    Some((
                        parse_timestamp(pair.first()?)?,
                        parse_timestamp(pair.get(1)?)?,
                    ))
                })
                .collect();
            (k, w)
        })
        .collect()
}

fn controls(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["realTweets", "artificialNoAnomaly"] {
        if let Ok(rd) = std::fs::read_dir(dir.join("data").join(sub)) {
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect();
            files.sort();
            out.extend(files);
        }
    }
    out
}

fn detector_cost() -> (f64, f64) {
    // 5 weeks of 15-minute buckets with a daily shape.
    let counts: Vec<f64> = (0..5 * 7 * 96)
        .map(|i| 200.0 + 150.0 * ((i % 96) as f64 / 96.0 * std::f64::consts::TAU).sin())
        .collect();
    let s = CountSeries::from_counts(0, 900, &counts);
    let at = s.end();
    let params = DetectorParams::critical();
    let rounds = 200;
    // Baseline: the window sums alone.
    let start = Instant::now();
    for _ in 0..rounds {
        for w in &params.windows {
            black_box(s.sum(at - w, at));
        }
    }
    let base = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    // A fresh detector each time: what one evaluation in the worker costs.
    let start = Instant::now();
    for _ in 0..rounds {
        let mut d = DropDetector::new(params.clone());
        black_box(d.evaluate(black_box(&s), at, &Utc));
    }
    let full = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    (base, full)
}

fn s1(
    dir: &Path,
    labels: &BTreeMap<String, Vec<(i64, i64)>>,
    variant: &str,
    params: &DetectorParams,
) {
    println!("## NAB drop subset S1 ({variant}: shipped critical defaults, no per-file tuning)\n");
    println!("| file | windows | detections after probation | windows detected |");
    println!("|---|---|---|---|");
    let mut per_file = Vec::new();
    for f in S1 {
        let (ts, det) = detections(&dir.join("data").join(f), params);
        let windows = labels.get(f).cloned().unwrap_or_default();
        let probation = ((0.15 * ts.len() as f64).floor() as usize).min(750);
        let after: Vec<usize> = det.iter().copied().filter(|i| *i >= probation).collect();
        let detected = windows
            .iter()
            .filter(|(a, b)| after.iter().any(|i| ts[*i] >= *a && ts[*i] <= *b))
            .count();
        println!("| {f} | {} | {} | {detected} |", windows.len(), after.len());
        per_file.push((ts, det, windows));
    }
    println!("\n| profile | raw | null | perfect | score |");
    println!("|---|---|---|---|---|");
    for p in &PROFILES {
        let mut raw = 0.0;
        let mut windows = 0usize;
        for (ts, det, w) in &per_file {
            let (s, n) = score_file(ts, det, w, p);
            raw += s;
            windows += n;
        }
        let null = -p.fn_ * windows as f64;
        let perfect = p.tp * windows as f64;
        let score = 100.0 * (raw - null) / (perfect - null);
        println!(
            "| {} | {raw:.3} | {null:.1} | {perfect:.1} | **{score:.1}** |",
            p.name
        );
    }
    println!();
}

fn false_alerts(dir: &Path, variant: &str, params: &DetectorParams) {
    println!("## False alerts on the controls ({variant}, after a 3-week warm-up)\n");
    println!("| file | weeks judged | alerts | alerts/week | alerts in the whole file |");
    println!("|---|---|---|---|---|");
    let (mut total_alerts, mut total_weeks) = (0usize, 0.0);
    for path in controls(dir) {
        let (ts, det) = detections(&path, params);
        let (Some(first), Some(last)) = (ts.first(), ts.last()) else {
            continue;
        };
        let warm = first + 3 * WEEK;
        let weeks = ((last - warm) as f64 / WEEK as f64).max(0.0);
        let alerts = det.iter().filter(|i| ts[**i] >= warm).count();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rate = if weeks > 0.0 {
            format!("{:.3}", alerts as f64 / weeks)
        } else {
            "n/a (shorter than warm-up)".into()
        };
        println!(
            "| {name} | {weeks:.2} | {alerts} | {rate} | {} |",
            det.len()
        );
        total_alerts += alerts;
        total_weeks += weeks;
    }
    println!(
        "| **all** | {total_weeks:.2} | {total_alerts} | **{:.3}** | |\n",
        if total_weeks > 0.0 {
            total_alerts as f64 / total_weeks
        } else {
            0.0
        }
    );
}

const SEEDS: [u64; 3] = [1, 2, 3];

/// Seconds from the anomaly's start to the tick that fired (`None`: it
/// never fired), on a minute series judged like the worker.
fn delay(s: &Synthetic, params: &DetectorParams) -> Option<i64> {
    let (start, _, _) = s.anomaly?;
    let minutes = s.minutes();
    let series = CountSeries::from_counts(0, 60, &minutes);
    run(&series, params, &LifecycleParams::default())
        .into_iter()
        .find(|o| o.transition.to == State::Firing && o.transition.at > start)
        .map(|o| o.tick - start)
}

fn show(delays: &[Option<i64>]) -> String {
    let fmt = |d: &Option<i64>| match d {
        Some(d) => format!("{}m{:02}s", d / 60, d % 60),
        None => "missed".into(),
    };
    let missed = delays.iter().filter(|d| d.is_none()).count();
    let worst = delays.iter().flatten().max();
    format!(
        "{} (worst {}{})",
        delays.iter().map(fmt).collect::<Vec<_>>().join(", "),
        worst.map_or("–".into(), |w| fmt(&Some(*w))),
        if missed > 0 {
            format!(", {missed} missed")
        } else {
            String::new()
        }
    )
}

fn synthetic_delays() {
    // Wednesday 09:00 of the sixth week: the rate is about the weekly mean
    // times 1.13 (a weekday at the daily mean).
    let start = 5 * WEEK + 2 * DAY + 9 * 3600;
    println!("## Synthetic minute series, judged like the worker (seeds {SEEDS:?})\n");
    println!("Delay = from the start of the anomaly to the tick that fires (the notification follows `group_wait` later).\n");
    println!("| case | before | after |");
    println!("|---|---|---|");
    let cases: [(&str, f64, f64, i64); 4] = [
        ("total outage, 2,000/h", 2000.0, 0.0, 6 * 3600),
        ("total outage, 200/h", 200.0, 0.0, 6 * 3600),
        ("total outage, 20/h", 20.0, 0.0, 12 * 3600),
        ("halving for 4 h, 3,000/h", 3000.0, 0.5, 4 * 3600),
    ];
    for (name, per_hour, factor, length) in cases {
        let row: Vec<String> = variants()
            .iter()
            .map(|(_, params)| {
                let delays: Vec<Option<i64>> = SEEDS
                    .iter()
                    .map(|seed| {
                        let s = Synthetic {
                            extra: 3 * DAY,
                            anomaly: Some((start, start + length, factor)),
                            ..Synthetic::new(per_hour, 5, *seed)
                        };
                        delay(&s, params)
                    })
                    .collect();
                show(&delays)
            })
            .collect();
        println!("| {name} | {} | {} |", row[0], row[1]);
    }
    // Clean series: alerts after a 3-week warm-up.
    let mut row = Vec::new();
    for (_, params) in variants() {
        let mut alerts = 0;
        let mut weeks = 0.0;
        for per_hour in [200.0, 2000.0, 5000.0] {
            for seed in SEEDS {
                let s = Synthetic::new(per_hour, 6, seed);
                let series = CountSeries::from_counts(0, 60, &s.minutes());
                alerts += run(&series, &params, &LifecycleParams::default())
                    .iter()
                    .filter(|o| o.transition.to == State::Firing && o.transition.at >= 3 * WEEK)
                    .count();
                weeks += 3.0;
            }
        }
        row.push(format!(
            "{alerts} in {weeks:.0} weeks ({:.3}/week)",
            alerts as f64 / weeks
        ));
    }
    println!(
        "| false alerts, clean series (200, 2,000, 5,000/h) | {} | {} |\n",
        row[0], row[1]
    );
}

fn main() {
    let Some(dir) = nab_dir() else {
        eprintln!("NAB data not found beside the repository (../shared/bench-data/nab); skipped");
        return;
    };
    let labels = labels(&dir);
    for (variant, params) in variants() {
        s1(&dir, &labels, variant, &params);
    }
    for (variant, params) in variants() {
        false_alerts(&dir, variant, &params);
    }
    synthetic_delays();

    let (base, full) = detector_cost();
    println!("\n## Detector cost (native, 5 weeks of 15-min buckets, 7 windows)\n");
    println!("| what | µs per evaluation |");
    println!("|---|---|");
    println!("| baseline: the 7 window sums | {base:.2} (1×) |");
    println!(
        "| full evaluation (baselines, κ from 14 days, z) | {full:.1} ({:.0}×) |",
        full / base.max(1e-9)
    );
}
