//! The BPM digest: a site's scorecard sent on a schedule (`[digest]`).
//! One module per stage, as alerts have: `schedule` decides which period
//! is due and names it for an idempotent delivery; `scorecard` computes its
//! numbers from what the alert object keeps. Its message formats and its
//! delivery through the alert outbox are the next stages, not built yet.

pub mod schedule;
pub mod scorecard;
