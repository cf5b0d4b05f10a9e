//! Backtesting: runs the detector and the alert lifecycle causally through
//! a recorded series, exactly as the worker would evaluate it, and reports
//! every state change.
//!
//! A minute series is judged as the worker judges its minute counts: a tick
//! every minute evaluates the instants [`crate::alert::ticks::evaluation_instants`]
//! gives, regular windows on 5-minute buckets summed from the minutes and
//! the fast windows on the minutes. A coarser series (NAB's 5-, 15- or
//! 30-minute files) is judged after every one of its buckets, with the fast
//! windows that fit its grid.
//!
//! Input is the NAB CSV format (`timestamp,value` with a header, times like
//! `2014-07-01 00:00:00`, read as UTC). The series is put on a regular grid
//! of its own step (or a coarser `--step`, by summing); a bucket missing from
//! the file counts as 0, and such gaps are reported.

use crate::alert::detector::{CountSeries, DetectorParams, DropDetector, Evaluation};
use crate::alert::lifecycle::{step, AlertState, LifecycleParams, State, Transition};
use crate::alert::ticks::{evaluation_instants, COMPLETE_AFTER_SECS};
use crate::time::Utc;
use crate::time::BUCKET_SECS;
use crate::time::MINUTE;
use chrono::NaiveDateTime;
use serde::Serialize;
use std::fmt;

/// Why a series file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesError {
    MissingHeader,
    BadLine { line: usize, reason: String },
    TooShort,
    NotIncreasing { line: usize },
    Step(String),
}

impl fmt::Display for SeriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesError::MissingHeader => write!(f, "expected a `timestamp,value` header row"),
            SeriesError::BadLine { line, reason } => write!(f, "line {line}: {reason}"),
            SeriesError::TooShort => write!(f, "a series needs at least two rows"),
            SeriesError::NotIncreasing { line } => {
                write!(f, "line {line}: timestamps must increase")
            }
            SeriesError::Step(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for SeriesError {}

/// A parsed series: Unix-second timestamps and values, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// Parses a NAB-format CSV.
pub fn parse_csv(text: &str) -> Result<RawSeries, SeriesError> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l.trim().to_ascii_lowercase());
    if !header.is_some_and(|h| h.starts_with("timestamp")) {
        return Err(SeriesError::MissingHeader);
    }
    let mut out = RawSeries {
        timestamps: Vec::new(),
        values: Vec::new(),
    };
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (ts, value) = line.split_once(',').ok_or_else(|| SeriesError::BadLine {
            line: line_no,
            reason: "expected `timestamp,value`".into(),
        })?;
        let t = parse_timestamp(ts.trim()).ok_or_else(|| SeriesError::BadLine {
            line: line_no,
            reason: format!("bad timestamp {:?}", ts.trim()),
        })?;
        let v: f64 = value.trim().parse().map_err(|_| SeriesError::BadLine {
            line: line_no,
            reason: format!("bad value {:?}", value.trim()),
        })?;
        if out.timestamps.last().is_some_and(|last| *last >= t) {
            return Err(SeriesError::NotIncreasing { line: line_no });
        }
        out.timestamps.push(t);
        out.values.push(v);
    }
    if out.timestamps.len() < 2 {
        return Err(SeriesError::TooShort);
    }
    Ok(out)
}

/// `2014-07-01 00:00:00` (optionally with fractional seconds) or RFC 3339.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp())
}

/// The most common gap between rows.
pub fn native_step(raw: &RawSeries) -> Option<i64> {
    let mut gaps: Vec<i64> = raw.timestamps.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let mut best = (0usize, None);
    let mut i = 0;
    while i < gaps.len() {
        let g = gaps[i];
        let n = gaps[i..].iter().take_while(|x| **x == g).count();
        if n > best.0 {
            best = (n, Some(g));
        }
        i += n;
    }
    best.1.filter(|g| *g > 0)
}

/// Puts a raw series on a grid of `step` seconds aligned to the Unix epoch.
/// Returns the series and the number of grid buckets with no row (zeros).
pub fn to_grid(raw: &RawSeries, step: i64) -> Result<(CountSeries, usize), SeriesError> {
    if step <= 0 {
        return Err(SeriesError::Step("the step must be positive".into()));
    }
    let first = *raw.timestamps.first().ok_or(SeriesError::TooShort)?;
    let last = *raw.timestamps.last().ok_or(SeriesError::TooShort)?;
    let start = first.div_euclid(step) * step;
    let buckets = usize::try_from((last - start) / step + 1)
        .map_err(|_| SeriesError::Step("bad range".into()))?;
    if buckets > 50_000_000 {
        return Err(SeriesError::Step(format!(
            "{buckets} buckets is too many; use a larger --step"
        )));
    }
    let mut counts = vec![0.0; buckets];
    let mut seen = vec![false; buckets];
    for (t, v) in raw.timestamps.iter().zip(&raw.values) {
        if let Ok(i) = usize::try_from((t - start) / step) {
            if let (Some(c), Some(s)) = (counts.get_mut(i), seen.get_mut(i)) {
                *c += v;
                *s = true;
            }
        }
    }
    let gaps = seen.iter().filter(|s| !**s).count();
    Ok((CountSeries::from_counts(start, step, &counts), gaps))
}

pub use crate::config::rules::parse_duration;
use crate::time::duration_label;

/// One state change, as `bpm-edge backtest` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestEvent {
    pub at: String,
    pub state: &'static str,
    pub window: Option<String>,
    pub observed: Option<f64>,
    pub expected: Option<f64>,
    pub ratio: Option<f64>,
    pub z: Option<f64>,
}

/// A transition with the evaluation that caused it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub transition: Transition,
    pub evaluation: Evaluation,
    /// When the worker's tick made this evaluation (the earliest a
    /// notification can be queued; `group_wait` comes on top).
    pub tick: i64,
}

impl Outcome {
    /// The printed form: resolved events show the recovery window, others
    /// the window that best shows the drop.
    pub fn event(&self, resolve_window: i64) -> BacktestEvent {
        let w = if self.transition.to == State::Resolved {
            self.evaluation.window(resolve_window)
        } else {
            self.evaluation.headline()
        };
        BacktestEvent {
            at: crate::time::format_time(self.transition.at),
            state: self.transition.to.as_str(),
            window: w.map(|w| duration_label(w.window)),
            observed: w.map(|w| w.observed),
            expected: w.and_then(|w| w.expected),
            ratio: w.and_then(|w| w.ratio),
            z: w.and_then(|w| w.z),
        }
    }
}

/// Evaluates as the worker does, in time order, and returns the changes
/// between the alerting states (`pending`, `firing`, `resolved`; the quiet
/// `learning`/`ok` changes are left out).
pub fn run(
    series: &CountSeries,
    detector: &DetectorParams,
    lifecycle: &LifecycleParams,
) -> Vec<Outcome> {
    let mut det = DropDetector::new(detector.clone());
    let mut state = AlertState::new(series.start());
    let mut out = Vec::new();
    let mut judge = |eval: Evaluation, tick: i64| {
        if let Some(t) = step(&mut state, &eval, lifecycle) {
            if matches!(t.to, State::Pending | State::Firing | State::Resolved) {
                out.push(Outcome {
                    transition: t,
                    evaluation: eval,
                    tick,
                });
            }
        }
    };
    if series.step() == MINUTE {
        let buckets = minute_buckets(series);
        let mut last_at = None;
        // A tick at the start of every minute, like the cron trigger.
        let mut now = series.start() + MINUTE;
        while now <= series.end() + COMPLETE_AFTER_SECS + MINUTE {
            for at in evaluation_instants(last_at, now) {
                if at > buckets.start() && at <= series.end() {
                    judge(det.evaluate_at(&buckets, Some(series), at, &Utc), now);
                }
                last_at = Some(at);
            }
            now += MINUTE;
        }
    } else {
        for i in 1..=series.len() {
            let at = series.start() + i as i64 * series.step();
            judge(det.evaluate_at(series, None, at, &Utc), at);
        }
    }
    out
}

/// The worker's 5-minute buckets of a minute series: complete buckets from
/// the first bucket start at or after its start.
pub fn minute_buckets(minutes: &CountSeries) -> CountSeries {
    let start =
        minutes.start() + (BUCKET_SECS - minutes.start().rem_euclid(BUCKET_SECS)) % BUCKET_SECS;
    let mut out = CountSeries::new(start, BUCKET_SECS);
    let mut t = start;
    while t + BUCKET_SECS <= minutes.end() {
        out.push(minutes.sum(t, t + BUCKET_SECS).unwrap_or(0.0));
        t += BUCKET_SECS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_csv() {
        let raw =
            parse_csv("timestamp,value\n2014-07-01 00:00:00,10844\n2014-07-01 00:30:00,8127.5\n\n")
                .unwrap();
        assert_eq!(raw.timestamps, vec![1_404_172_800, 1_404_174_600]);
        assert_eq!(raw.values, vec![10844.0, 8127.5]);
        assert_eq!(native_step(&raw), Some(1800));
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert_eq!(parse_csv("a,b\n"), Err(SeriesError::MissingHeader));
        assert!(matches!(
            parse_csv("timestamp,value\n2014-07-01 00:00:00,1\nyesterday,2\n"),
            Err(SeriesError::BadLine { line: 3, .. })
        ));
        assert!(matches!(
            parse_csv("timestamp,value\n2014-07-01 00:00:00,x\n"),
            Err(SeriesError::BadLine { line: 2, .. })
        ));
        assert_eq!(
            parse_csv("timestamp,value\n2014-07-01 00:10:00,1\n2014-07-01 00:00:00,1\n"),
            Err(SeriesError::NotIncreasing { line: 3 })
        );
        assert_eq!(
            parse_csv("timestamp,value\n2014-07-01 00:10:00,1\n"),
            Err(SeriesError::TooShort)
        );
    }

    #[test]
    fn grid_fills_gaps_with_zero_and_sums_into_coarser_steps() {
        let raw = parse_csv("timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 00:05:00,2\n2014-07-01 00:15:00,4\n").unwrap();
        let (s, gaps) = to_grid(&raw, 300).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(gaps, 1);
        assert_eq!(s.sum(s.start(), s.end()), Some(7.0));
        let (coarse, _) = to_grid(&raw, 900).unwrap();
        assert_eq!(coarse.len(), 2);
        assert_eq!(coarse.sum(coarse.start(), coarse.start() + 900), Some(3.0));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
    }

    #[test]
    fn an_outage_fires_then_resolves() {
        // Five weeks of 200 per 15 min, a 2-hour outage, then recovery.
        let step = 900;
        let mut counts = vec![200.0; 5 * 7 * 96];
        counts.extend(std::iter::repeat_n(0.0, 8));
        counts.extend(std::iter::repeat_n(200.0, 12));
        let s = CountSeries::from_counts(0, step, &counts);
        let outcomes = run(&s, &DetectorParams::critical(), &LifecycleParams::default());
        let states: Vec<&str> = outcomes.iter().map(|o| o.transition.to.as_str()).collect();
        assert_eq!(states, vec!["pending", "firing", "resolved"]);
        let outage_start = 5 * 7 * 96 * step;
        let fired = &outcomes[1];
        assert_eq!(
            fired.transition.at,
            outage_start + 2 * step,
            "fires at the second evaluation"
        );
        let ev = fired.event(3600);
        assert_eq!(ev.state, "firing");
        assert!(ev.z.unwrap() <= -5.0);
        assert_eq!(ev.observed, Some(0.0));
    }

    #[test]
    fn a_minute_series_is_judged_like_the_worker_with_the_fast_path() {
        // Five weeks of 40 a minute (2,400 an hour), then a total outage.
        let weeks = 5 * 7 * 1440;
        let mut counts = vec![40.0; weeks];
        counts.extend(std::iter::repeat_n(0.0, 30));
        let s = CountSeries::from_counts(0, 60, &counts);
        let outage = weeks as i64 * 60;
        let fired = |p: &DetectorParams| {
            run(&s, p, &LifecycleParams::default())
                .into_iter()
                .find(|o| o.transition.to == State::Firing)
                .map(|o| (o.transition.at - outage, o.tick - outage))
        };
        // The 2-minute window is empty at +2 min (pending), still at +3
        // (firing), judged at the ticks a minute later.
        assert_eq!(fired(&DetectorParams::critical()), Some((180, 240)));
        // Without the fast path: the 15-minute window is two thirds empty
        // at the second bucket end (X/B 0.33 ≤ 1 − δ: pending) and fires at
        // the third.
        let slow = DetectorParams::critical().without_fast_path();
        assert_eq!(fired(&slow), Some((900, 960)));
        // The 5-minute buckets are the worker's.
        let b = minute_buckets(&s);
        assert_eq!((b.start(), b.step()), (0, 300));
        assert_eq!(b.sum(0, 300), Some(200.0));
    }
}
