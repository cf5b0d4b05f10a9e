//! The alert pipeline, in order: `ticks` plans when and on what data the
//! alert object judges, `value_series` builds a `by` rule's per-value
//! series, `detector` judges windows, `lifecycle` steps a rule's state,
//! `alert_book` keeps the rules, silences, inhibition and notifications,
//! `explain` says where a drop happened, `event` is one notification,
//! `payload` renders it per receiver format, `signing` signs it, `outbox`
//! delivers it, and `alert_store` keeps all of it in the alert object's
//! storage.
//!
//! Beside the pipeline, `endpoint` says how a receiver is reached (its URL,
//! signing or routing secret, an attempt's headers), `tick_series` which
//! series the alert object keeps between ticks and judges at each instant,
//! and `health_reads` what it reads to describe a firing event's health.

pub mod alert_book;
pub mod alert_store;
pub mod detector;
pub mod endpoint;
pub mod event;
pub mod explain;
pub mod health_reads;
pub mod lifecycle;
pub mod outbox;
pub mod payload;
pub mod signing;
pub mod tick_series;
pub mod ticks;
pub mod value_series;
