//! The drop detector: a seasonal-median baseline and a multi-scale
//! negative-binomial test of whether a count fell below it.
//!
//! For each window length W (15 min … 24 h) ending at the last complete
//! bucket, the observed count X is compared with a baseline B: the median of
//! the same wall-clock window 1–4 weeks earlier (at least two weeks of
//! history), else the median of the same window on the previous 7 days (at
//! least three), else the detector is `learning`. The variance of X is taken
//! as `B + κ·B²`, with κ estimated per window length from the relative errors
//! of past non-alerting windows, so the test is Poisson at low counts and
//! allows for baseline error at high counts. A window *holds* when
//! `B ≥ E_min`, `X/B ≤ 1 − δ` and `z ≤ −z_α`, where
//! `z = −sqrt(2[X·ln(X/B) − (X − B)] / (1 + κ·B))`.
//!
//! Fast path: windows of 2, 5 and 15 minutes, judged on minute buckets
//! every minute, hold only on a (near) total outage: `X/B ≤ 0.1`, `B ≥ 50`
//! and `z ≤ −z_α`, with B the regular 15-minute seasonal baseline prorated.
//! Partial drops keep the 15-minute floor on 5-minute buckets.
//!
//! Only complete buckets are judged: the caller passes the end of the last
//! complete bucket. Every evaluation explains itself per window.

use serde::{Deserialize, Serialize};

use crate::decimal::round_to;
use crate::time::{SpanCachedClock, WallClock, DAY, MINUTE};

/// Window lengths judged by default: nothing shorter than 15 minutes, since
/// short windows fire on weekly bursts that shift by one bucket.
pub const DEFAULT_WINDOWS: [i64; 7] = [
    15 * MINUTE,
    30 * MINUTE,
    60 * MINUTE,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    DAY,
];

/// Detector parameters; the defaults work without tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorParams {
    /// Window lengths in seconds.
    pub windows: Vec<i64>,
    /// Smallest relative drop that matters: `X/B ≤ 1 − δ`.
    pub delta: f64,
    /// Significance: `z ≤ −z_α`.
    pub z_alpha: f64,
    /// Smallest expected count judged at all.
    pub min_expected: f64,
    /// Weeks of history in the seasonal median.
    pub weeks: u32,
    /// Fast-path window lengths in seconds (empty: no fast path). They are
    /// judged on minute buckets every minute, and on the regular buckets
    /// when no minute series is given and they fit its grid.
    #[serde(default = "default_fast_windows")]
    pub fast_windows: Vec<i64>,
    /// A fast window holds only when `X/B ≤ fast_ratio`: a (near) total
    /// outage, never a partial drop.
    #[serde(default = "default_fast_ratio")]
    pub fast_ratio: f64,
    /// Smallest expected count of a fast window judged at all.
    #[serde(default = "default_fast_min_expected")]
    pub fast_min_expected: f64,
}

fn default_fast_windows() -> Vec<i64> {
    FAST_WINDOWS.to_vec()
}

fn default_fast_ratio() -> f64 {
    FAST_RATIO
}

fn default_fast_min_expected() -> f64 {
    FAST_MIN_EXPECTED
}

/// The fast path's windows: 2 and 5 minutes for busy metrics (1,500 and
/// 600 events an hour give `B ≥ 50`), 15 minutes sliding by the minute for
/// those near 200 an hour, which the regular 15-minute window on 5-minute
/// buckets judges only at bucket ends.
pub const FAST_WINDOWS: [i64; 3] = [2 * MINUTE, 5 * MINUTE, 15 * MINUTE];
/// A fast window holds at `X/B ≤ 0.1`.
pub const FAST_RATIO: f64 = 0.1;
/// …and `B ≥ 50`: at least 1,500 events an hour for a 2-minute window. A
/// Poisson count of mean 50 is at most 5 with probability about 1e-15.
pub const FAST_MIN_EXPECTED: f64 = 50.0;
/// A fast window's baseline is the regular baseline of at least this long
/// a window around it, prorated: minute-level history is not kept for weeks.
const FAST_REFERENCE: i64 = 15 * MINUTE;

impl DetectorParams {
    /// Defaults for a `critical` rule.
    pub fn critical() -> Self {
        DetectorParams {
            windows: DEFAULT_WINDOWS.to_vec(),
            delta: crate::config::rules::DEFAULT_DELTA,
            z_alpha: 5.0,
            min_expected: 10.0,
            weeks: 4,
            fast_windows: FAST_WINDOWS.to_vec(),
            fast_ratio: FAST_RATIO,
            fast_min_expected: FAST_MIN_EXPECTED,
        }
    }

    /// The same rule without the fast path (how it was judged before it).
    pub fn without_fast_path(self) -> Self {
        DetectorParams {
            fast_windows: Vec::new(),
            ..self
        }
    }

    /// Defaults for a `warning` rule.
    pub fn warning() -> Self {
        DetectorParams {
            z_alpha: 4.0,
            ..Self::critical()
        }
    }
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self::critical()
    }
}

/// Bounds of the dispersion estimate κ.
pub const KAPPA_MIN: f64 = 0.0025;
pub const KAPPA_MAX: f64 = 0.25;
/// Past windows used to estimate κ.
const DISPERSION_HISTORY: i64 = 14 * DAY;
/// Fewer past windows than this: κ is taken as [`KAPPA_MAX`] (cautious).
const MIN_DISPERSION_SAMPLES: usize = 8;

/// Bucket counts on a regular grid, with prefix sums so any window sum is
/// two look-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct CountSeries {
    start: i64,
    step: i64,
    /// `prefix[i]` = sum of the first `i` buckets.
    prefix: Vec<f64>,
}

impl CountSeries {
    /// `start` is the beginning of the first bucket, `step` its length (s).
    pub fn new(start: i64, step: i64) -> Self {
        CountSeries {
            start,
            step: step.max(1),
            prefix: vec![0.0],
        }
    }

    pub fn from_counts(start: i64, step: i64, counts: &[f64]) -> Self {
        let mut s = Self::new(start, step);
        for c in counts {
            s.push(*c);
        }
        s
    }

    /// The whole buckets of `[start, end)` from sparse `(t, count)`
    /// points: each count is added to the bucket holding `t`; points
    /// outside those buckets are left out, buckets without one are 0.
    pub fn from_sparse(
        start: i64,
        end: i64,
        step: i64,
        points: impl IntoIterator<Item = (i64, f64)>,
    ) -> Self {
        let step = step.max(1);
        let len = usize::try_from((end - start).max(0) / step).unwrap_or(0);
        let mut counts = vec![0.0; len];
        for (t, n) in points {
            let slot = (t >= start)
                .then(|| usize::try_from((t - start) / step).ok())
                .flatten()
                .and_then(|i| counts.get_mut(i));
            if let Some(slot) = slot {
                *slot += n;
            }
        }
        Self::from_counts(start, step, &counts)
    }

    /// Appends the next bucket; negative or non-finite counts count as 0.
    pub fn push(&mut self, count: f64) {
        let c = if count.is_finite() && count > 0.0 {
            count
        } else {
            0.0
        };
        let last = self.prefix.last().copied().unwrap_or(0.0);
        self.prefix.push(last + c);
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    pub fn len(&self) -> usize {
        self.prefix.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End of the last bucket.
    pub fn end(&self) -> i64 {
        self.start + self.len() as i64 * self.step
    }

    /// Sum over `[a, b)`; `None` unless both ends are bucket boundaries
    /// inside the series.
    pub fn sum(&self, a: i64, b: i64) -> Option<f64> {
        if a > b || a < self.start || b > self.end() {
            return None;
        }
        if (a - self.start) % self.step != 0 || (b - self.start) % self.step != 0 {
            return None;
        }
        let i = usize::try_from((a - self.start) / self.step).ok()?;
        let j = usize::try_from((b - self.start) / self.step).ok()?;
        Some(self.prefix.get(j)? - self.prefix.get(i)?)
    }
}

/// A window's expected count and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub count: f64,
    pub source: BaselineSource,
    /// False when the window is not to be judged whatever the counts (a
    /// ratio whose denominator is below its minimum).
    pub judged: bool,
}

/// Where a baseline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSource {
    /// Median of the same window in `n` previous weeks.
    Weeks(u32),
    /// Median of the same window on `n` previous days (short history).
    Days(u32),
}

/// The verdict on one window, with everything needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowVerdict {
    /// Window length in seconds.
    pub window: i64,
    pub observed: f64,
    /// `None` while the window has too little history (learning).
    pub expected: Option<f64>,
    pub baseline: Option<BaselineSource>,
    /// `observed / expected`.
    pub ratio: Option<f64>,
    /// Negative when below the baseline.
    pub z: Option<f64>,
    pub kappa: Option<f64>,
    /// `expected ≥ min_expected`.
    pub enough_volume: bool,
    /// `ratio ≤ 1 − δ`.
    pub large_drop: bool,
    /// `z ≤ −z_α`.
    pub unlikely: bool,
    /// All three.
    pub holds: bool,
    /// A fast-path window (judged on minute buckets; holds only on a
    /// near-total outage).
    #[serde(default)]
    pub fast: bool,
}

/// The three conditions a window must meet to hold, for the regular and
/// the fast windows alike.
struct WindowTest {
    min_expected: f64,
    /// Largest `observed / expected` that is a drop.
    max_ratio: f64,
    z_alpha: f64,
    fast: bool,
}

impl WindowTest {
    /// The verdict on window `w`: `x` observed against `b` expected with
    /// dispersion `kappa`; `judged` is the baseline's own (see
    /// [`Expected::judged`]).
    fn verdict(
        &self,
        w: i64,
        x: f64,
        b: f64,
        kappa: f64,
        baseline: Option<BaselineSource>,
        judged: bool,
    ) -> WindowVerdict {
        let ratio = (b > 0.0).then(|| x / b);
        let z = drop_z(x, b, kappa);
        let enough_volume = judged && b >= self.min_expected;
        let large_drop = ratio.is_some_and(|r| r <= self.max_ratio);
        let unlikely = z <= -self.z_alpha;
        WindowVerdict {
            window: w,
            observed: round_to(x, 3),
            expected: Some(round_to(b, 3)),
            baseline,
            ratio: ratio.map(|r| round_to(r, 4)),
            z: Some(round_to(z, 3)),
            kappa: Some(round_to(kappa, 5)),
            enough_volume,
            large_drop,
            unlikely,
            holds: enough_volume && large_drop && unlikely,
            fast: self.fast,
        }
    }
}

/// One evaluation of one series at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// End of the last complete bucket judged (Unix seconds).
    pub at: i64,
    pub windows: Vec<WindowVerdict>,
    /// No window has a baseline yet.
    pub learning: bool,
    /// Some window holds.
    pub drop: bool,
    /// Only the fast windows were judged (a minute between two ends of a
    /// regular bucket): the lifecycle lets it start or confirm a drop but
    /// never end one.
    #[serde(default)]
    pub fast_only: bool,
}

impl Evaluation {
    /// The window that best shows the drop: the holding one with the lowest
    /// z, else the one with the lowest z overall.
    pub fn headline(&self) -> Option<&WindowVerdict> {
        let by_z = |a: &&WindowVerdict, b: &&WindowVerdict| {
            a.z.unwrap_or(f64::INFINITY)
                .total_cmp(&b.z.unwrap_or(f64::INFINITY))
        };
        self.windows
            .iter()
            .filter(|w| w.holds)
            .min_by(by_z)
            .or_else(|| self.windows.iter().filter(|w| w.z.is_some()).min_by(by_z))
    }

    pub fn window(&self, length: i64) -> Option<&WindowVerdict> {
        self.windows.iter().find(|w| w.window == length)
    }
}

/// The statistic: `z = −sqrt(D / (1 + κ·B))` with
/// `D = 2[X·ln(X/B) − (X − B)]` when `X < B`; positive (same magnitude) when
/// `X ≥ B`. `X·ln X` is 0 at `X = 0`.
pub fn drop_z(observed: f64, expected: f64, kappa: f64) -> f64 {
    if expected <= 0.0 {
        return 0.0;
    }
    let x = observed.max(0.0);
    let xlog = if x > 0.0 {
        x * (x / expected).ln()
    } else {
        0.0
    };
    let deviance = (2.0 * (xlog - (x - expected))).max(0.0);
    let z = (deviance / (1.0 + kappa * expected)).sqrt();
    if x < expected {
        -z
    } else {
        z
    }
}

/// κ for window length `w` at `at`: `clamp((1.4826·MAD(e))² − median(1/B),
/// κ_min, κ_max)` over the relative errors `e = (X − B)/B` of the previous
/// non-overlapping windows of the last 14 days, each judged against its own
/// seasonal baseline. Windows that dropped by δ or more are left out (they
/// are what we look for, not noise). Returns (κ, samples used).
fn dispersion(
    observed: &impl Fn(i64, i64) -> Option<f64>,
    baseline: &impl Fn(i64, i64) -> Option<Expected>,
    at: i64,
    w: i64,
    params: &DetectorParams,
) -> (f64, usize) {
    let last = at - at.rem_euclid(w);
    let mut e = Vec::new();
    let mut inv = Vec::new();
    let mut end = if last == at { at - w } else { last };
    while end > at - DISPERSION_HISTORY {
        if let (Some(x), Some(Expected { count: b, .. })) =
            (observed(end - w, end), baseline(end, w))
        {
            if b > 0.0 && x / b > 1.0 - params.delta {
                e.push((x - b) / b);
                inv.push(1.0 / b);
            }
        }
        end -= w;
    }
    if e.len() < MIN_DISPERSION_SAMPLES {
        return (KAPPA_MAX, e.len());
    }
    let spread = 1.4826 * mad(&e);
    let kappa = (spread * spread - median(&inv).unwrap_or(0.0)).clamp(KAPPA_MIN, KAPPA_MAX);
    (kappa, e.len())
}

/// Evaluates one series over time. Keeps the dispersion history, so feed it
/// evaluations in time order (as the worker and the backtest do).
///
/// κ changes only when a window boundary passes, so it is cached per window
/// length until then; a detector built afresh for every evaluation gives the
/// same answers.
#[derive(Debug, Clone)]
pub struct DropDetector {
    params: DetectorParams,
    /// Per window: (last complete window end the κ was computed for, κ).
    kappa_cache: Vec<Option<(i64, f64)>>,
    /// The fast path's κ (its reference window's), with its boundary.
    fast_kappa: Option<(i64, f64)>,
}

impl DropDetector {
    pub fn new(params: DetectorParams) -> Self {
        let n = params.windows.len();
        DropDetector {
            params,
            kappa_cache: vec![None; n],
            fast_kappa: None,
        }
    }

    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// Judges the windows ending at `at` of a counted metric.
    pub fn evaluate(&mut self, series: &CountSeries, at: i64, clock: &dyn WallClock) -> Evaluation {
        let clock = &SpanCachedClock::new(clock);
        let observed = |a, b| series.sum(a, b);
        let weeks = self.params.weeks;
        let baseline = |end, w| seasonal_baseline(&observed, end, w, weeks, clock);
        self.evaluate_with(at, observed, baseline)
    }

    /// Judges a ratio `num/den`: the numerator X against `B = p̂·Y`, with Y
    /// the denominator in the same window and p̂ the seasonal median of
    /// `num/den`. Windows whose Y is below `min_denominator` are not judged.
    pub fn evaluate_ratio(
        &mut self,
        num: &CountSeries,
        den: &CountSeries,
        min_denominator: f64,
        at: i64,
        clock: &dyn WallClock,
    ) -> Evaluation {
        let clock = &SpanCachedClock::new(clock);
        let observed = |a, b| num.sum(a, b);
        let weeks = self.params.weeks;
        let baseline = |end, w| ratio_baseline(num, den, min_denominator, end, w, weeks, clock);
        self.evaluate_with(at, observed, baseline)
    }

    /// The general form: `observed(a, b)` sums the judged series over
    /// `[a, b)`; `baseline(end, w)` gives the expected count of the window of
    /// length `w` ending at `end`.
    pub fn evaluate_with(
        &mut self,
        at: i64,
        observed: impl Fn(i64, i64) -> Option<f64>,
        baseline: impl Fn(i64, i64) -> Option<Expected>,
    ) -> Evaluation {
        let p = self.params.clone();
        let mut windows = Vec::with_capacity(p.windows.len());
        for (i, &w) in p.windows.iter().enumerate() {
            let Some(x) = observed(at - w, at) else {
                continue;
            };
            let found = baseline(at, w);
            let expected = found.map(|e| e.count);
            let source = found.map(|e| e.source);
            let judged = found.is_some_and(|e| e.judged);
            let verdict = match expected {
                None => WindowVerdict {
                    window: w,
                    observed: x,
                    expected: None,
                    baseline: None,
                    ratio: None,
                    z: None,
                    kappa: None,
                    enough_volume: false,
                    large_drop: false,
                    unlikely: false,
                    holds: false,
                    fast: false,
                },
                Some(b) => {
                    let boundary = at - at.rem_euclid(w);
                    let kappa = match self.kappa_cache.get(i).copied().flatten() {
                        Some((t, k)) if t == boundary => k,
                        _ => {
                            let (k, _) = dispersion(&observed, &baseline, at, w, &p);
                            if let Some(slot) = self.kappa_cache.get_mut(i) {
                                *slot = Some((boundary, k));
                            }
                            k
                        }
                    };
                    let test = WindowTest {
                        min_expected: p.min_expected,
                        max_ratio: 1.0 - p.delta,
                        z_alpha: p.z_alpha,
                        fast: false,
                    };
                    test.verdict(w, x, b, kappa, source, judged)
                }
            };
            windows.push(verdict);
        }
        let learning = windows.iter().all(|w| w.expected.is_none());
        let drop = windows.iter().any(|w| w.holds);
        Evaluation {
            at,
            windows,
            learning,
            drop,
            fast_only: false,
        }
    }

    /// Judges a counted metric at `at` as the worker does. At an end of a
    /// bucket of `buckets`: the regular windows, plus the fast windows. At
    /// any other instant: only the fast windows (`fast_only`). The fast
    /// windows are summed on `minutes` when given, else on `buckets` (when
    /// they fit its grid).
    pub fn evaluate_at(
        &mut self,
        buckets: &CountSeries,
        minutes: Option<&CountSeries>,
        at: i64,
        clock: &dyn WallClock,
    ) -> Evaluation {
        let on_grid = (at - buckets.start()).rem_euclid(buckets.step()) == 0;
        let mut eval = if on_grid {
            self.evaluate(buckets, at, clock)
        } else {
            Evaluation {
                at,
                windows: Vec::new(),
                learning: true,
                drop: false,
                fast_only: true,
            }
        };
        let fast = self.fast_verdicts(buckets, minutes, at, clock);
        if eval.fast_only {
            eval.learning = fast.iter().all(|w| w.expected.is_none());
        }
        eval.drop |= fast.iter().any(|w| w.holds);
        eval.windows.extend(fast);
        eval
    }

    /// The fast windows ending at `at`. The baseline B of a window of length
    /// `w` is the regular seasonal baseline of the reference window (15 min,
    /// or one bucket if longer) ending at the first bucket end at or after
    /// `at`, times `w / reference`; κ is that reference window's.
    fn fast_verdicts(
        &mut self,
        buckets: &CountSeries,
        minutes: Option<&CountSeries>,
        at: i64,
        clock: &dyn WallClock,
    ) -> Vec<WindowVerdict> {
        let p = self.params.clone();
        if p.fast_windows.is_empty() {
            return Vec::new();
        }
        let clock = &SpanCachedClock::new(clock);
        let step = buckets.step();
        let reference = step * ((FAST_REFERENCE + step - 1) / step).max(1);
        let end = at + (step - (at - buckets.start()).rem_euclid(step)) % step;
        let observed_buckets = |a, b| buckets.sum(a, b);
        let baseline = |e, w| seasonal_baseline(&observed_buckets, e, w, p.weeks, clock);
        let Some(reference_expected) = baseline(end, reference) else {
            return Vec::new();
        };
        let boundary = end - end.rem_euclid(reference);
        let kappa = match self.fast_kappa {
            Some((t, k)) if t == boundary => k,
            _ => {
                let (k, _) = dispersion(&observed_buckets, &baseline, end, reference, &p);
                self.fast_kappa = Some((boundary, k));
                k
            }
        };
        let mut out = Vec::new();
        for &w in &p.fast_windows {
            let x = match minutes {
                Some(m) => m.sum(at - w, at),
                None => buckets.sum(at - w, at),
            };
            let Some(x) = x else { continue };
            let b = reference_expected.count * w as f64 / reference as f64;
            let test = WindowTest {
                min_expected: p.fast_min_expected,
                max_ratio: p.fast_ratio,
                z_alpha: p.z_alpha,
                fast: true,
            };
            out.push(test.verdict(
                w,
                x,
                b,
                kappa,
                Some(reference_expected.source),
                reference_expected.judged,
            ));
        }
        out
    }
}

/// Median of the same window `k = 1..weeks` weeks earlier (≥ 2 of them);
/// else of the same window on the previous 7 days (≥ 3). Sums first, then
/// the median of the sums.
fn seasonal_baseline(
    observed: &impl Fn(i64, i64) -> Option<f64>,
    at: i64,
    w: i64,
    weeks: u32,
    clock: &dyn WallClock,
) -> Option<Expected> {
    let (m, source) = seasonal_median(|end| observed(end - w, end), at, weeks, clock)?;
    Some(Expected {
        count: m,
        source,
        judged: true,
    })
}

/// `B = p̂·Y`: p̂ is the seasonal median of `num/den` over windows with a
/// non-zero denominator, Y the denominator of the judged window.
fn ratio_baseline(
    num: &CountSeries,
    den: &CountSeries,
    min_denominator: f64,
    at: i64,
    w: i64,
    weeks: u32,
    clock: &dyn WallClock,
) -> Option<Expected> {
    let share = |end: i64| {
        let d = den.sum(end - w, end)?;
        let n = num.sum(end - w, end)?;
        (d > 0.0).then_some(n / d)
    };
    let (p, source) = seasonal_median(share, at, weeks, clock)?;
    let y = den.sum(at - w, at)?;
    Some(Expected {
        count: p * y,
        source,
        judged: y >= min_denominator,
    })
}

/// Median of `value(end)` over the same wall-clock instant `k = 1..weeks`
/// weeks earlier (at least 2 present); else over the previous 7 days (at
/// least 3).
fn seasonal_median(
    value: impl Fn(i64) -> Option<f64>,
    at: i64,
    weeks: u32,
    clock: &dyn WallClock,
) -> Option<(f64, BaselineSource)> {
    let (values, source) = seasonal_values(value, at, weeks, clock)?;
    median(&values).map(|m| (m, source))
}

/// The values a seasonal baseline is the median of: `value(end)` at the same
/// wall-clock instant `k = 1..weeks` weeks earlier when at least 2 are
/// present, else on the previous 7 days when at least 3 are.
pub fn seasonal_values(
    value: impl Fn(i64) -> Option<f64>,
    at: i64,
    weeks: u32,
    clock: &dyn WallClock,
) -> Option<(Vec<f64>, BaselineSource)> {
    let weekly: Vec<f64> = (1..=i64::from(weeks))
        .filter_map(|k| value(clock.days_before(at, 7 * k)))
        .collect();
    if weekly.len() >= 2 {
        let n = u32::try_from(weekly.len()).unwrap_or(u32::MAX);
        return Some((weekly, BaselineSource::Weeks(n)));
    }
    let daily: Vec<f64> = (1..=7)
        .filter_map(|d| value(clock.days_before(at, d)))
        .collect();
    if daily.len() >= 3 {
        let n = u32::try_from(daily.len()).unwrap_or(u32::MAX);
        return Some((daily, BaselineSource::Days(n)));
    }
    None
}

/// Median (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

/// Median absolute deviation from the median.
fn mad(values: &[f64]) -> f64 {
    let Some(m) = median(values) else { return 0.0 };
    let dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    median(&dev).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Utc, WEEK};

    const STEP: i64 = 15 * MINUTE;

    /// `weeks` of a flat series at `per_bucket`, then `tail` buckets of `tail_value`.
    fn flat(weeks: i64, per_bucket: f64, tail: usize, tail_value: f64) -> CountSeries {
        let n = (weeks * WEEK / STEP) as usize;
        let mut counts = vec![per_bucket; n];
        counts.extend(std::iter::repeat_n(tail_value, tail));
        CountSeries::from_counts(0, STEP, &counts)
    }

    #[test]
    fn prefix_sums_and_alignment() {
        let s = CountSeries::from_counts(100, 10, &[1.0, 2.0, 3.0, -5.0, f64::NAN]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.end(), 150);
        assert_eq!(s.sum(100, 130), Some(6.0));
        assert_eq!(s.sum(110, 150), Some(5.0));
        assert_eq!(s.sum(105, 130), None);
        assert_eq!(s.sum(90, 130), None);
        assert_eq!(s.sum(100, 160), None);
    }

    #[test]
    fn z_formula_by_hand() {
        // X = 0: D = 2B; with κ = 0, z = −sqrt(2B).
        assert!((drop_z(0.0, 50.0, 0.0) + 10.0).abs() < 1e-9);
        // κ shrinks the statistic: −sqrt(100 / (1 + 0.25·50)).
        assert!((drop_z(0.0, 50.0, 0.25) + (100.0f64 / 13.5).sqrt()).abs() < 1e-9);
        // X = 80, B = 100: D = 2[80 ln 0.8 + 20] = 4.2988…
        let d: f64 = 2.0 * (80.0 * (0.8f64).ln() + 20.0);
        assert!((drop_z(80.0, 100.0, 0.0) + d.sqrt()).abs() < 1e-9);
        assert!(drop_z(120.0, 100.0, 0.0) > 0.0);
        assert_eq!(drop_z(5.0, 0.0, 0.1), 0.0);
    }

    #[test]
    fn zero_counts_never_fire() {
        let s = flat(5, 0.0, 0, 0.0);
        let mut d = DropDetector::new(DetectorParams::critical());
        let e = d.evaluate(&s, s.end(), &Utc);
        assert!(!e.learning);
        assert!(!e.drop);
        assert!(e.windows.iter().all(|w| !w.enough_volume));
    }

    #[test]
    fn low_volume_at_night_never_fires() {
        // 2 events per hour (0.5 per 15 min), then a 4-hour total silence.
        let s = flat(5, 0.5, 16, 0.0);
        let mut d = DropDetector::new(DetectorParams::critical());
        for i in 0..=16 {
            let at = s.end() - (16 - i) * STEP;
            assert!(!d.evaluate(&s, at, &Utc).drop, "fired at bucket {i}");
        }
    }

    #[test]
    fn total_outage_at_high_volume_fires_in_the_first_window() {
        // 100 per 15 min, then one empty bucket.
        let s = flat(5, 100.0, 1, 0.0);
        let mut d = DropDetector::new(DetectorParams::critical());
        let e = d.evaluate(&s, s.end(), &Utc);
        assert!(e.drop);
        let w15 = e.window(15 * MINUTE).unwrap();
        assert!(w15.holds);
        assert_eq!(w15.expected, Some(100.0));
        assert_eq!(w15.baseline, Some(BaselineSource::Weeks(4)));
        assert_eq!(e.headline().unwrap().window, 15 * MINUTE);
    }

    #[test]
    fn a_small_dip_is_not_a_drop() {
        let s = flat(5, 100.0, 4, 85.0);
        let mut d = DropDetector::new(DetectorParams::critical());
        assert!(!d.evaluate(&s, s.end(), &Utc).drop);
    }

    #[test]
    fn short_history_falls_back_to_days_then_learns() {
        let one_day = CountSeries::from_counts(0, STEP, &vec![10.0; (DAY / STEP) as usize]);
        let mut d = DropDetector::new(DetectorParams::critical());
        let e = d.evaluate(&one_day, one_day.end(), &Utc);
        assert!(e.learning);
        let four_days = CountSeries::from_counts(0, STEP, &vec![10.0; (4 * DAY / STEP) as usize]);
        let e = d.evaluate(&four_days, four_days.end(), &Utc);
        assert!(!e.learning);
        assert_eq!(
            e.window(3600).unwrap().baseline,
            Some(BaselineSource::Days(3))
        );
    }

    #[test]
    fn one_odd_week_does_not_move_the_baseline() {
        let per_week = (WEEK / STEP) as usize;
        let mut counts = vec![100.0; per_week * 4];
        // Week 3 was an outage.
        for c in counts.iter_mut().skip(per_week * 2).take(per_week) {
            *c = 0.0;
        }
        counts.push(100.0);
        let s = CountSeries::from_counts(0, STEP, &counts);
        let mut d = DropDetector::new(DetectorParams::critical());
        let e = d.evaluate(&s, s.end(), &Utc);
        assert_eq!(e.window(STEP).unwrap().expected, Some(100.0));
    }

    fn base<'a>(
        obs: &'a impl Fn(i64, i64) -> Option<f64>,
    ) -> impl Fn(i64, i64) -> Option<Expected> + 'a {
        move |end, w| seasonal_baseline(obs, end, w, 4, &Utc)
    }

    #[test]
    fn kappa_estimate() {
        let p = DetectorParams::critical();
        // Too little history: the cautious maximum.
        let short = flat(0, 0.0, 3, 100.0);
        let obs = |a, b| short.sum(a, b);
        assert_eq!(
            dispersion(&obs, &base(&obs), short.end(), 3600, &p).0,
            KAPPA_MAX
        );
        // Hourly buckets alternating 1100/900 for 6 weeks: weekly baselines
        // are exact (same parity a week back), so e = 0 and κ is its floor.
        let counts: Vec<f64> = (0..6 * 168)
            .map(|i| if i % 2 == 0 { 1100.0 } else { 900.0 })
            .collect();
        let s = CountSeries::from_counts(0, 3600, &counts);
        let obs = |a, b| s.sum(a, b);
        let (k, n) = dispersion(&obs, &base(&obs), s.end(), 3600, &p);
        assert_eq!(n, 14 * 24 - 1);
        assert_eq!(k, KAPPA_MIN);
        // Uniform ±20% noise around 1000: MAD(e) ≈ 0.1·√2·… ≈ 0.12, so
        // κ ≈ (1.4826·MAD)² − 1/1000, well inside the bounds.
        let mut seed: u64 = 42;
        let counts: Vec<f64> = (0..6 * 168)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1000.0 * (0.8 + 0.4 * ((seed >> 33) as f64 / (1u64 << 31) as f64))
            })
            .collect();
        let s = CountSeries::from_counts(0, 3600, &counts);
        let obs = |a, b| s.sum(a, b);
        let (k, _) = dispersion(&obs, &base(&obs), s.end(), 3600, &p);
        assert!(k > 0.01 && k < 0.06, "{k}");
    }

    #[test]
    fn ratio_drop_fires_and_small_denominator_never_does() {
        // 400 login views and 300 dashboard views per 15 min for 5 weeks,
        // then views continue but successes fall to 60 (75% → 15%).
        let n = (5 * WEEK / STEP) as usize;
        let mut den = vec![400.0; n];
        let mut num = vec![300.0; n];
        den.extend([400.0; 2]);
        num.extend([60.0; 2]);
        let (den, num) = (
            CountSeries::from_counts(0, STEP, &den),
            CountSeries::from_counts(0, STEP, &num),
        );
        let mut d = DropDetector::new(DetectorParams::warning());
        let e = d.evaluate_ratio(&num, &den, 20.0, num.end(), &Utc);
        assert!(e.drop);
        let w = e.window(STEP).unwrap();
        assert_eq!(w.expected, Some(300.0));
        assert_eq!(w.observed, 60.0);
        // The share collapsing for two hours with 1 view per 15 min: the
        // short windows are under the minimum denominator (20) and the long
        // ones barely move.
        let small_den = CountSeries::from_counts(0, STEP, &vec![1.0; n + 8]);
        let mut small_num = vec![0.8; n];
        small_num.extend([0.0; 8]);
        let small_num = CountSeries::from_counts(0, STEP, &small_num);
        let mut d = DropDetector::new(DetectorParams::warning());
        for k in 0..8 {
            let at = small_num.end() - k * STEP;
            let e = d.evaluate_ratio(&small_num, &small_den, 20.0, at, &Utc);
            assert!(!e.drop, "fired {k} buckets before the end");
        }
        // Traffic (the denominator) falling is not a ratio drop: p̂·Y falls too.
        let mut den2 = vec![400.0; n];
        den2.extend([40.0; 2]);
        let mut num2 = vec![300.0; n];
        num2.extend([30.0; 2]);
        let (den2, num2) = (
            CountSeries::from_counts(0, STEP, &den2),
            CountSeries::from_counts(0, STEP, &num2),
        );
        let e = DropDetector::new(DetectorParams::warning()).evaluate_ratio(
            &num2,
            &den2,
            20.0,
            num2.end(),
            &Utc,
        );
        assert!(!e.drop);
    }

    #[test]
    fn dst_weeks_line_up_in_site_time() {
        // Berlin: traffic only between 09:00 and 10:00 local, 200 per
        // 15 min. Judged on Monday 2026-03-30 10:00 local, the day after
        // clocks went forward: the four previous Mondays were in winter time.
        let berlin = crate::config::sitetime::lookup("Europe/Berlin").unwrap();
        let start = 1_771_200_000; // 2026-02-16 00:00 UTC
        let at = 1_774_857_600; // 2026-03-30 08:00 UTC = 10:00 local
        let counts: Vec<f64> = (0..(at - start) / STEP)
            .map(|i| {
                let t = start + i * STEP;
                let hour = berlin.local(t).rem_euclid(DAY) / 3600;
                if hour == 9 {
                    200.0
                } else {
                    0.0
                }
            })
            .collect();
        let s = CountSeries::from_counts(start, STEP, &counts);
        let mut d = DropDetector::new(DetectorParams::critical());
        let local = d.evaluate(&s, at, &berlin);
        let w = local.window(3600).unwrap();
        assert_eq!(w.observed, 800.0);
        assert_eq!(w.expected, Some(800.0));
        assert!(!local.drop);
        // Naive UTC weeks look one hour off: the baseline hour held nothing.
        let naive = d.evaluate(&s, at, &Utc);
        assert_eq!(naive.window(3600).unwrap().expected, Some(0.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(mad(&[1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]), 1.0);
    }

    /// A halving lasting hours on a weekly-seasonal series with 5% of
    /// day-to-day noise (5-minute buckets, as the worker judges them) is
    /// caught within 15 minutes at 3,000 an hour and within an hour at 300:
    /// κ stays near the day-to-day spread at high volume. (The reported miss
    /// at high volume did not reproduce on such series; what does miss is a
    /// halving on a series whose days vary by 10–15% or more, at any volume:
    /// see the README's Limits.)
    #[test]
    fn a_halving_at_high_volume_is_caught_within_15_minutes() {
        use crate::history::synthetic::{coarsen, Synthetic};
        let start = 5 * WEEK + 2 * DAY + 10 * 3600;
        for (per_hour, within) in [(3000.0, 15 * MINUTE), (300.0, 3600)] {
            for seed in 1..=3 {
                let s = Synthetic {
                    extra: 3 * DAY,
                    anomaly: Some((start, start + 4 * 3600, 0.5)),
                    ..Synthetic::new(per_hour, 5, seed)
                };
                let buckets = CountSeries::from_counts(0, 300, &coarsen(&s.minutes(), 5));
                let mut d = DropDetector::new(DetectorParams::critical());
                let first = (1..=48)
                    .map(|k| start + k * 300)
                    .find(|at| d.evaluate_at(&buckets, None, *at, &Utc).drop);
                assert!(
                    first.is_some_and(|at| at - start <= within),
                    "{per_hour}/h seed {seed}: first drop {:?} s after the start",
                    first.map(|at| at - start)
                );
                // Before the halving, the same days judge clean.
                let mut d = DropDetector::new(DetectorParams::critical());
                assert!(!d.evaluate_at(&buckets, None, start, &Utc).drop);
            }
        }
    }

    #[test]
    fn sparse_points_fill_whole_buckets_only() {
        // Buckets [100, 400) of 100 s; 450 is in the partial bucket at the
        // end and 50 before the start: both left out.
        let s = CountSeries::from_sparse(
            100,
            450,
            100,
            [(50, 9.0), (100, 1.0), (150, 2.0), (350, 4.0), (450, 8.0)],
        );
        assert_eq!((s.start(), s.len()), (100, 3));
        assert_eq!(s.sum(100, 200), Some(3.0));
        assert_eq!(s.sum(200, 300), Some(0.0));
        assert_eq!(s.sum(100, 400), Some(7.0));
    }

    #[test]
    fn fast_path_needs_a_total_outage_and_volume() {
        // 40 a minute for 5 weeks (2,400 an hour), then 2 minutes at `tail`.
        let judge = |per_minute: f64, tail: f64| {
            let n = (5 * WEEK / MINUTE) as usize;
            let mut minutes = vec![per_minute; n];
            minutes.extend([tail; 2]);
            let m = CountSeries::from_counts(0, MINUTE, &minutes);
            let b =
                CountSeries::from_counts(0, 300, &crate::history::synthetic::coarsen(&minutes, 5));
            DropDetector::new(DetectorParams::critical()).evaluate_at(&b, Some(&m), m.end(), &Utc)
        };
        let e = judge(40.0, 0.0);
        assert!(e.fast_only && e.drop);
        let w = e.window(2 * MINUTE).unwrap();
        assert!(w.fast && w.holds);
        assert_eq!(w.expected, Some(80.0));
        // Half the traffic is a partial drop: not the fast path's.
        assert!(!judge(40.0, 20.0).drop);
        // 200 an hour: 6.7 expected in 2 minutes, under the minimum; the
        // 15-minute window has the volume but is 13 minutes from empty.
        let low = judge(200.0 / 60.0, 0.0);
        assert!(!low.drop);
        let volume: Vec<i64> = low
            .windows
            .iter()
            .filter(|w| w.enough_volume)
            .map(|w| w.window)
            .collect();
        assert_eq!(volume, vec![15 * MINUTE]);
        // 20 an hour: no fast window has the volume.
        assert!(judge(20.0 / 60.0, 0.0)
            .windows
            .iter()
            .all(|w| !w.enough_volume));
        // Without the fast path a minute between bucket ends judges nothing.
        let n = (5 * WEEK / MINUTE) as usize;
        let mut minutes = vec![40.0; n];
        minutes.extend([0.0; 2]);
        let m = CountSeries::from_counts(0, MINUTE, &minutes);
        let b = CountSeries::from_counts(0, 300, &crate::history::synthetic::coarsen(&minutes, 5));
        let e = DropDetector::new(DetectorParams::critical().without_fast_path()).evaluate_at(
            &b,
            Some(&m),
            m.end(),
            &Utc,
        );
        assert!(e.windows.is_empty() && !e.drop);
    }
}
