//! The BPM digest: a site's scorecard sent on a schedule (`[digest]`).
//! One module per stage, as alerts have: `schedule` decides which period
//! is due and names it for an idempotent delivery; `scorecard` computes its
//! numbers from what the alert object keeps; `message` renders it for
//! Slack and as the generic JSON with an HTML body; `delivery` says which
//! receivers get it and what each gets (the alert object queues it in the
//! alert outbox under its period's id, once); `preview` reads the preview
//! endpoint's query.

pub mod delivery;
pub mod message;
pub mod preview;
pub mod schedule;
pub mod scorecard;
