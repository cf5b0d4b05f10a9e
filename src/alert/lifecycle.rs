//! The life of one alert: `learning → ok → pending → firing → resolved`,
//! driven by one detector evaluation after another.
//!
//! A drop must hold for `for_evaluations` consecutive evaluations before the
//! alert fires. A firing alert resolves when the 1-hour ratio is back to
//! `resolve_ratio` for `resolve_evaluations` consecutive evaluations
//! (hysteresis: recovering a little is not recovering), and a resolved alert
//! cannot re-open for `reopen_hold_off` seconds, nor on a window that reaches
//! back before its resolution (the same outage). Silences and inhibition do
//! not change states; they only decide whether a transition is notified.
//!
//! A fast-only evaluation (the fast-path windows, between two regular
//! ones) may start a pending drop or confirm one, but never leaves
//! `learning`, never cancels a pending drop and never counts towards (or
//! against) a recovery: those stay on the regular evaluations.

use crate::alert::detector::Evaluation;
use serde::{Deserialize, Serialize};

/// Lifecycle parameters (the defaults of the design).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleParams {
    pub for_evaluations: u32,
    pub resolve_ratio: f64,
    pub resolve_evaluations: u32,
    /// Seconds after resolving during which a new drop does not re-open.
    pub reopen_hold_off: i64,
    /// Window whose ratio decides recovery, in seconds.
    pub resolve_window: i64,
}

impl Default for LifecycleParams {
    fn default() -> Self {
        LifecycleParams {
            for_evaluations: 2,
            resolve_ratio: 0.85,
            resolve_evaluations: 2,
            reopen_hold_off: 3600,
            resolve_window: 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Learning,
    Ok,
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Learning => "learning",
            State::Ok => "ok",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// Everything the lifecycle remembers between evaluations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub state: State,
    /// When the current state was entered.
    pub since: i64,
    /// Consecutive evaluations the drop held (pending) or the recovery held
    /// (firing).
    pub streak: u32,
    /// When the current episode started firing.
    pub fired_at: Option<i64>,
    /// Lowest headline ratio seen in the current episode.
    pub lowest_ratio: Option<f64>,
    /// When the last episode resolved.
    pub resolved_at: Option<i64>,
    /// Episodes fired so far (the incident number of the current one).
    pub episodes: u64,
}

impl AlertState {
    pub fn new(at: i64) -> Self {
        AlertState {
            state: State::Learning,
            since: at,
            streak: 0,
            fired_at: None,
            lowest_ratio: None,
            resolved_at: None,
            episodes: 0,
        }
    }
}

/// A change of state, to record and maybe notify.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub at: i64,
    pub from: State,
    pub to: State,
}

/// Advances `state` by one evaluation; returns the transition, if any.
pub fn step(state: &mut AlertState, eval: &Evaluation, p: &LifecycleParams) -> Option<Transition> {
    let at = eval.at;
    let from = state.state;
    let headline_ratio = eval.headline().and_then(|w| w.ratio);
    // After an episode, windows reaching back into it would re-open the
    // alert for the outage already reported: only windows that start after
    // the resolution count.
    let drop = match state.resolved_at {
        Some(r) => eval.windows.iter().any(|w| w.holds && w.window <= at - r),
        None => eval.drop,
    };
    let next = match state.state {
        // Leaving `learning` straight into a drop starts the pending count:
        // an outage at the first judged bucket is not an extra evaluation late.
        State::Learning => {
            if eval.learning || eval.fast_only {
                None
            } else if drop {
                state.streak = 1;
                Some(if p.for_evaluations <= 1 {
                    State::Firing
                } else {
                    State::Pending
                })
            } else {
                Some(State::Ok)
            }
        }
        State::Ok | State::Resolved => {
            let held_off = state.state == State::Resolved
                && state
                    .resolved_at
                    .is_some_and(|r| at - r < p.reopen_hold_off);
            if drop && !held_off {
                state.streak = 1;
                Some(if p.for_evaluations <= 1 {
                    State::Firing
                } else {
                    State::Pending
                })
            } else if state.state == State::Resolved && !held_off {
                Some(State::Ok)
            } else {
                None
            }
        }
        State::Pending => {
            if drop {
                state.streak += 1;
                (state.streak >= p.for_evaluations).then_some(State::Firing)
            } else if eval.fast_only {
                None
            } else {
                state.streak = 0;
                Some(State::Ok)
            }
        }
        // Recovery is judged on the regular windows only.
        State::Firing if eval.fast_only => None,
        State::Firing => {
            if let Some(r) = headline_ratio {
                state.lowest_ratio = Some(state.lowest_ratio.map_or(r, |l| l.min(r)));
            }
            let recovered = eval
                .window(p.resolve_window)
                .and_then(|w| w.ratio)
                .is_some_and(|r| r >= p.resolve_ratio);
            if recovered {
                state.streak += 1;
                (state.streak >= p.resolve_evaluations).then_some(State::Resolved)
            } else {
                state.streak = 0;
                None
            }
        }
    };
    let to = next?;
    match to {
        State::Firing => {
            state.episodes += 1;
            state.fired_at = Some(at);
            state.lowest_ratio = headline_ratio;
            state.streak = 0;
        }
        State::Resolved => {
            state.resolved_at = Some(at);
            state.streak = 0;
        }
        State::Ok if from == State::Resolved => {
            state.fired_at = None;
            state.lowest_ratio = None;
        }
        _ => {}
    }
    state.state = to;
    state.since = at;
    Some(Transition { at, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::detector::WindowVerdict;

    fn eval(at: i64, drop: bool, ratio_1h: f64) -> Evaluation {
        Evaluation {
            at,
            learning: false,
            drop,
            windows: vec![WindowVerdict {
                window: 3600,
                observed: ratio_1h * 100.0,
                expected: Some(100.0),
                baseline: None,
                ratio: Some(ratio_1h),
                z: Some(if drop { -9.0 } else { 0.0 }),
                kappa: Some(0.01),
                enough_volume: true,
                large_drop: drop,
                unlikely: drop,
                holds: drop,
                fast: false,
            }],
            fast_only: false,
        }
    }

    fn learning(at: i64) -> Evaluation {
        Evaluation {
            at,
            learning: true,
            drop: false,
            windows: vec![],
            fast_only: false,
        }
    }

    fn run(evals: &[Evaluation], p: &LifecycleParams) -> (AlertState, Vec<(i64, State)>) {
        let mut s = AlertState::new(0);
        let mut out = Vec::new();
        for e in evals {
            if let Some(t) = step(&mut s, e, p) {
                out.push((t.at, t.to));
            }
        }
        (s, out)
    }

    #[test]
    fn learning_then_ok() {
        let (s, t) = run(
            &[learning(60), learning(120), eval(180, false, 1.0)],
            &LifecycleParams::default(),
        );
        assert_eq!(t, vec![(180, State::Ok)]);
        assert_eq!(s.state, State::Ok);
    }

    #[test]
    fn a_drop_must_hold_for_two_evaluations() {
        let p = LifecycleParams::default();
        let (_, t) = run(
            &[
                eval(60, false, 1.0),
                eval(120, true, 0.2),
                eval(180, false, 1.0),
            ],
            &p,
        );
        assert_eq!(
            t,
            vec![(60, State::Ok), (120, State::Pending), (180, State::Ok)]
        );
        let (s, t) = run(
            &[
                eval(60, false, 1.0),
                eval(120, true, 0.2),
                eval(180, true, 0.1),
            ],
            &p,
        );
        assert_eq!(t.last(), Some(&(180, State::Firing)));
        assert_eq!(s.fired_at, Some(180));
        assert_eq!(s.lowest_ratio, Some(0.1));
        assert_eq!(s.episodes, 1);
    }

    #[test]
    fn hysteresis_resolve_needs_85_percent_twice() {
        let p = LifecycleParams::default();
        let evals = [
            eval(60, false, 1.0),
            eval(120, true, 0.1),
            eval(180, true, 0.05),
            eval(240, false, 0.8), // better, but below 0.85: still firing
            eval(300, false, 0.9),
            eval(360, false, 0.7), // relapse resets the streak
            eval(420, false, 0.9),
            eval(480, false, 0.95),
        ];
        let (s, t) = run(&evals, &p);
        assert_eq!(t.last(), Some(&(480, State::Resolved)));
        assert_eq!(s.lowest_ratio, Some(0.05));
        assert_eq!(s.resolved_at, Some(480));
    }

    #[test]
    fn no_reopen_during_hold_off() {
        let p = LifecycleParams::default();
        let mut evals = vec![
            eval(60, false, 1.0),
            eval(120, true, 0.1),
            eval(180, true, 0.1),
            eval(240, false, 1.0),
            eval(300, false, 1.0),
        ];
        // A new drop 30 minutes after resolving: held off.
        evals.push(eval(300 + 1800, true, 0.1));
        evals.push(eval(300 + 1860, true, 0.1));
        let (s, t) = run(&evals, &p);
        assert_eq!(s.state, State::Resolved);
        assert_eq!(t.last(), Some(&(300, State::Resolved)));
        // After the hold-off, it may open again.
        evals.push(eval(300 + 3600, true, 0.1));
        evals.push(eval(300 + 3660, true, 0.1));
        let (s, t) = run(&evals, &p);
        assert_eq!(t.last(), Some(&(3960, State::Firing)));
        assert_eq!(s.episodes, 2);
    }

    #[test]
    fn resolved_returns_to_ok_after_the_hold_off() {
        let p = LifecycleParams::default();
        let evals = [
            eval(60, false, 1.0),
            eval(120, true, 0.1),
            eval(180, true, 0.1),
            eval(240, false, 1.0),
            eval(300, false, 1.0),
            eval(300 + 3600, false, 1.0),
        ];
        let (s, t) = run(&evals, &p);
        assert_eq!(t.last(), Some(&(3900, State::Ok)));
        assert_eq!(s.fired_at, None);
    }

    #[test]
    fn for_one_fires_at_once() {
        let p = LifecycleParams {
            for_evaluations: 1,
            ..LifecycleParams::default()
        };
        let (_, t) = run(&[eval(60, false, 1.0), eval(120, true, 0.1)], &p);
        assert_eq!(t.last(), Some(&(120, State::Firing)));
    }

    #[test]
    fn fast_only_evaluations_start_and_confirm_but_never_cancel_or_resolve() {
        let p = LifecycleParams::default();
        let fast = |at: i64, drop: bool| Evaluation {
            fast_only: true,
            ..eval(at, drop, if drop { 0.0 } else { 1.0 })
        };
        // A fast-only evaluation does not end learning.
        let (s, _) = run(&[learning(0), fast(60, true)], &p);
        assert_eq!(s.state, State::Learning);
        // Two fast drops a minute apart fire.
        let (_, t) = run(
            &[eval(300, false, 1.0), fast(360, true), fast(420, true)],
            &p,
        );
        assert_eq!(
            t,
            vec![
                (300, State::Ok),
                (360, State::Pending),
                (420, State::Firing)
            ]
        );
        // A quiet fast-only minute keeps a regular pending drop pending.
        let (s, t) = run(&[eval(300, true, 0.5), fast(360, false)], &p);
        assert_eq!(s.state, State::Pending);
        assert_eq!(t, vec![(300, State::Pending)]);
        // While firing, fast-only minutes count neither for nor against recovery.
        let (s, t) = run(
            &[
                eval(300, true, 0.0),
                eval(600, true, 0.0),
                eval(900, false, 0.9),
                fast(960, false),
                fast(1020, true),
                eval(1200, false, 0.9),
            ],
            &p,
        );
        assert_eq!(s.state, State::Resolved);
        assert_eq!(t.last(), Some(&(1200, State::Resolved)));
    }
}
