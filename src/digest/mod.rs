//! The BPM digest: a site's scorecard sent on a schedule (`[digest]`).
//! One module per stage, as alerts have: `schedule` decides which period
//! is due and names it for an idempotent delivery; the scorecard and its
//! formats follow it.

pub mod schedule;
