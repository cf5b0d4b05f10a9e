//! The BPM digest: a site's scorecard sent on a schedule (`[digest]`).
//! One module per stage, as alerts have: `schedule` decides which period
//! is due and names it for an idempotent delivery; `scorecard` computes its
//! numbers from what the alert object keeps; `message` renders it for
//! Slack and as the generic JSON with an HTML body; `preview` reads the
//! preview endpoint's query. Its delivery through the alert outbox and the
//! dashboard's last digest are the next stages, not built yet.

pub mod message;
pub mod preview;
pub mod schedule;
pub mod scorecard;
