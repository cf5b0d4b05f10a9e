//! The alert pipeline, in order: `ticks` plans when and on what data the
//! alert object judges, `value_series` builds a `by` rule's per-value
//! series, `detector` judges windows, `lifecycle` steps a rule's state,
//! `silence` validates the silences a site asks for, `mute` decides whether
//! a silence or a firing rule holds a rule's notifications back,
//! `alert_book` keeps the rules' records and decides their notifications,
//! `dispatch` routes them to the receivers, `explain` says where a drop
//! happened and `health` how the metric's status mix and latency changed,
//! `event` is one notification, `payload` renders it per receiver format,
//! `signing` signs it, `outbox` delivers it, and `alert_store` keeps all
//! of it in the alert object's storage.
//!
//! Beside the pipeline, `annotation` holds what a site says happened to it
//! (deploys, incidents, campaigns, notes), `endpoint` says how a receiver is reached (its URL,
//! signing or routing secret, an attempt's headers), `tick_series` which
//! series the alert object keeps between ticks and judges at each instant,
//! and `health_reads` what it reads to describe a firing event's health.

pub mod alert_book;
pub mod alert_store;
pub mod annotation;
pub mod detector;
pub mod dispatch;
pub mod endpoint;
pub mod event;
pub mod explain;
pub mod health;
pub mod health_reads;
pub mod lifecycle;
pub mod mute;
pub mod outbox;
pub mod payload;
pub mod signing;
pub mod silence;
#[cfg(test)]
mod test_fixtures;
pub mod tick_series;
pub mod ticks;
pub mod value_series;
