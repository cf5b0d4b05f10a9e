//! Delivery policy of the webhook outbox: which queued message to send next,
//! how to classify the outcome of one attempt and when to try again. Pure: no
//! I/O and no clock; times are Unix seconds passed in by the caller, which
//! owns storage, the HTTP request and the Durable Object alarm.
//!
//! Invariants:
//! - A message is attempted at most `RETRY_SCHEDULE_SECS.len()` (11) times;
//!   attempt `n` waits `RETRY_SCHEDULE_SECS[n]` after the previous failure,
//!   so a message survives 15 h 52 min 35 s of receiver failure, and a
//!   receiver down for an hour loses nothing. After the last failure it is
//!   `Dead` and kept for inspection, never retried.
//! - Per receiver, delivery is FIFO by `seq`: only the oldest message that
//!   is neither delivered nor dead (the head) may be attempted, so "firing"
//!   and "resolved" of one alert arrive in order. A `Disabled` head blocks
//!   its receiver until it is requeued; a `Dead` or `Delivered` one does not.
//! - A 410 disables the receiver: the message that got it and every message
//!   queued behind it are held (`Disabled`, with `held_at`), nothing new is
//!   queued for it, and held messages are pruned like settled ones. When an
//!   operator re-enables it ([`enable`]), held messages at most
//!   [`REQUEUE_MAX_AGE_SECS`] old are requeued in their order and older ones
//!   are given up (`Dead`): a receiver never gets a message older than the
//!   retry schedule would have kept.
//! - `Retry-After` can only postpone an attempt (never bring it forward) and
//!   never by more than `MAX_RETRY_AFTER_SECS`.
//! - A status the receiver's service documents as final (PagerDuty's 400:
//!   "invalid event, do not retry") makes the message `Dead` at once; every
//!   other failure follows the schedule.
//! - Nothing here panics, whatever the status code, header text or time;
//!   time arithmetic saturates.

use crate::config::rules::WebhookFormat;
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Delay in seconds before attempt `n` (0-based), counted from the moment
/// the message was queued (n = 0) or the previous attempt failed.
pub const RETRY_SCHEDULE_SECS: [i64; 11] =
    [0, 5, 30, 120, 300, 900, 1800, 3600, 7200, 14400, 28800];

/// How long one attempt may take before it counts as `AttemptResult::Timeout`.
pub const TIMEOUT_MS: u64 = 15_000;

/// Upper bound on a receiver's `Retry-After`: a receiver cannot park a
/// message for longer than a day.
pub const MAX_RETRY_AFTER_SECS: i64 = 86_400;

/// Oldest message (by `created_at`) that re-enabling its receiver sends:
/// the span of the retry schedule (15 h 52 min 35 s), i.e. what a message
/// to a receiver that kept failing would still have been retried within.
pub const REQUEUE_MAX_AGE_SECS: i64 = {
    let mut total = 0;
    let mut i = 0;
    while i < RETRY_SCHEDULE_SECS.len() {
        total += RETRY_SCHEDULE_SECS[i];
        i += 1;
    }
    total
};

/// The `last_error` of a held message given up when its receiver was
/// re-enabled.
pub const TOO_OLD_TO_REQUEUE: &str =
    "held while the receiver was disabled, and too old to send when it was re-enabled";

/// Longest `last_error` kept on a delivery, in characters: the error text
/// comes from the network stack and is stored with every row.
const MAX_ERROR_CHARS: usize = 500;

/// What one attempt to POST a message produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The receiver answered; `retry_after` is the raw `Retry-After` header.
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// The request failed before a response (DNS, TLS, connection reset …).
    NetworkError(String),
    /// No response within `TIMEOUT_MS`.
    Timeout,
}

/// What to do with a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Try again at this Unix second.
    RetryAt(i64),
    /// Give up, keep the message for inspection: the schedule is exhausted,
    /// or the receiver refused it for good ([`refused_for_good`]).
    Dead,
    /// 410 Gone: the receiver asked to stop; send it nothing more.
    DisableReceiver,
}

/// Classifies the outcome of an attempt.
///
/// `attempt` is how many attempts were made before this one (0 for the
/// first), `now` Unix seconds.
///
/// - 2xx: `Delivered`.
/// - 410: `DisableReceiver`, at any attempt.
/// - Anything else is a failure: `Dead` if this was the last attempt of the
///   schedule, else `RetryAt(now + RETRY_SCHEDULE_SECS[attempt + 1])`.
///   For 429 and 5xx a valid `Retry-After` postpones that to
///   `now + max(schedule delay, Retry-After)`.
///
/// Other 4xx (400, 401, 403, 404, 413 …) are retried on the schedule rather
/// than given up at once: they usually mean a misconfigured receiver (wrong
/// path, rotated secret, body limit), and one fixed within hours still gets
/// the events (PagerDuty's 400 is the exception, see [`judge_for`]). 3xx are failures too, since redirects are not followed (a
/// signed body must not be sent to a place its receiver did not configure).
/// 1xx and codes outside 100–599 are failures retried on the schedule.
pub fn judge(attempt: u32, result: &AttemptResult, now: i64) -> Verdict {
    let retry_after = match result {
        AttemptResult::Status { code, .. } if (200..=299).contains(code) => {
            return Verdict::Delivered
        }
        AttemptResult::Status { code: 410, .. } => return Verdict::DisableReceiver,
        AttemptResult::Status {
            code,
            retry_after: Some(value),
        } if *code == 429 || (500..=599).contains(code) => parse_retry_after(value, now),
        AttemptResult::Status { .. } | AttemptResult::NetworkError(_) | AttemptResult::Timeout => {
            None
        }
    };
    let next = usize::try_from(attempt)
        .ok()
        .and_then(|a| a.checked_add(1))
        .and_then(|n| RETRY_SCHEDULE_SECS.get(n));
    match next {
        None => Verdict::Dead,
        Some(&delay) => {
            let wait = retry_after.map_or(delay, |r| r.max(delay));
            Verdict::RetryAt(now.saturating_add(wait))
        }
    }
}

/// Whether a receiver of this format refused the message for good with
/// `code`, so that sending the same body again cannot succeed. Only PagerDuty
/// documents such a status: Events API v2 answers 400 to an invalid event
/// and says not to retry it. Generic receivers are retried on every 4xx (see
/// [`judge`]).
pub fn refused_for_good(format: WebhookFormat, code: u16) -> bool {
    matches!((format, code), (WebhookFormat::Pagerduty, 400))
}

/// [`judge`] for a receiver of `format`: a status it refuses for good
/// ([`refused_for_good`]) is `Dead` at once, whatever the attempt.
pub fn judge_for(format: WebhookFormat, attempt: u32, result: &AttemptResult, now: i64) -> Verdict {
    match result {
        AttemptResult::Status { code, .. } if refused_for_good(format, *code) => Verdict::Dead,
        _ => judge(attempt, result, now),
    }
}

/// Seconds to wait according to a `Retry-After` header value: either
/// delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`).
///
/// Returns a value in `0..=MAX_RETRY_AFTER_SECS`: a date in the past gives 0,
/// anything longer than a day (including digit strings too long for an
/// integer) is capped. `None` when the value is neither form (empty, negative,
/// fractional, garbage).
pub fn parse_retry_after(value: &str, now: i64) -> Option<i64> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let secs = if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: the only way `parse` fails is overflow, i.e. "very long".
        value.parse::<i64>().unwrap_or(MAX_RETRY_AFTER_SECS)
    } else {
        let at = DateTime::parse_from_rfc2822(value).ok()?;
        at.timestamp().saturating_sub(now)
    };
    Some(secs.clamp(0, MAX_RETRY_AFTER_SECS))
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt at `next_at` (and for its turn).
    Queued,
    /// A 2xx was received.
    Delivered,
    /// The schedule was exhausted; kept for inspection.
    Dead,
    /// Held: its receiver is disabled (it answered 410, to this message or
    /// to one before it); no attempts until requeued by [`enable`].
    Disabled,
}

/// One message to one receiver, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Queue order (storage row id); FIFO per receiver follows it.
    pub seq: i64,
    pub receiver: String,
    /// The `webhook-id`, stable across retries so receivers can deduplicate.
    pub message_id: String,
    /// Attempts made so far; also the schedule index of the next attempt.
    pub attempts: u32,
    /// Unix seconds of the next attempt (meaningful while `Queued`).
    pub next_at: i64,
    pub state: DeliveryState,
    /// HTTP status of the most recent attempt, `None` if it got no response.
    pub last_status: Option<u16>,
    /// Network error or timeout of the most recent attempt, `None` if it got
    /// a response.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// When it was held (`Disabled`); `None` otherwise, and in rows written
    /// before holds were timed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_at: Option<i64>,
}

impl Delivery {
    /// A freshly queued message, due at once (`next_at = now`).
    pub fn new(seq: i64, receiver: &str, message_id: &str, now: i64) -> Self {
        Delivery {
            seq,
            receiver: receiver.to_owned(),
            message_id: message_id.to_owned(),
            attempts: 0,
            next_at: now,
            state: DeliveryState::Queued,
            last_status: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
            held_at: None,
        }
    }

    /// Applies one attempt's result (increments attempts, records status/error,
    /// sets state/next_at). Returns the verdict. A DisableReceiver verdict
    /// leaves this delivery Disabled.
    ///
    /// A delivery that is no longer `Queued` is settled: a late result does
    /// not change it (a delivered message is never un-delivered), and the
    /// verdict matching its state is returned.
    ///
    /// This is the generic policy ([`judge`]); [`Delivery::record_for`]
    /// applies a receiver format's own final statuses.
    pub fn record(&mut self, result: &AttemptResult, now: i64) -> Verdict {
        self.record_for(WebhookFormat::Json, result, now)
    }

    /// [`Delivery::record`] for a receiver of `format` ([`judge_for`]).
    pub fn record_for(
        &mut self,
        format: WebhookFormat,
        result: &AttemptResult,
        now: i64,
    ) -> Verdict {
        match self.state {
            DeliveryState::Queued => {}
            DeliveryState::Delivered => return Verdict::Delivered,
            DeliveryState::Dead => return Verdict::Dead,
            DeliveryState::Disabled => return Verdict::DisableReceiver,
        }
        let verdict = judge_for(format, self.attempts, result, now);
        self.attempts = self.attempts.saturating_add(1);
        match result {
            AttemptResult::Status { code, .. } => {
                self.last_status = Some(*code);
                self.last_error = None;
            }
            AttemptResult::NetworkError(e) => {
                self.last_status = None;
                self.last_error = Some(e.chars().take(MAX_ERROR_CHARS).collect());
            }
            AttemptResult::Timeout => {
                self.last_status = None;
                self.last_error = Some(format!("timed out after {TIMEOUT_MS} ms"));
            }
        }
        match verdict {
            Verdict::Delivered => {
                self.state = DeliveryState::Delivered;
                self.delivered_at = Some(now);
            }
            Verdict::RetryAt(at) => self.next_at = at,
            Verdict::Dead => self.state = DeliveryState::Dead,
            Verdict::DisableReceiver => {
                self.state = DeliveryState::Disabled;
                self.held_at = Some(now);
            }
        }
        verdict
    }

    /// Holds a `Queued` delivery because its receiver was disabled. Returns
    /// whether it changed anything; other states are left alone.
    pub fn hold(&mut self, now: i64) -> bool {
        if self.state != DeliveryState::Queued {
            return false;
        }
        self.state = DeliveryState::Disabled;
        self.held_at = Some(now);
        true
    }

    /// When it stopped waiting for an attempt, `None` while `Queued`: it was
    /// delivered, held, or (for a dead one) last attempted. Settled rows are
    /// pruned some time after this.
    pub fn settled_at(&self) -> Option<i64> {
        match self.state {
            DeliveryState::Queued => None,
            DeliveryState::Delivered => Some(self.delivered_at.unwrap_or(self.next_at)),
            DeliveryState::Disabled => Some(self.held_at.unwrap_or(self.next_at)),
            // A dead row's last attempt is its `next_at`.
            DeliveryState::Dead => Some(self.next_at),
        }
        .map(|t| t.max(self.created_at))
    }

    /// Puts a `Disabled` delivery back in the queue (its receiver was
    /// re-enabled) with a fresh schedule, due at `now`. Returns whether it
    /// changed anything; other states are left alone.
    pub fn requeue(&mut self, now: i64) -> bool {
        if self.state != DeliveryState::Disabled {
            return false;
        }
        self.state = DeliveryState::Queued;
        self.attempts = 0;
        self.next_at = now;
        self.held_at = None;
        true
    }
}

/// What re-enabling a receiver did to its held messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Enabled {
    /// Held messages put back in the queue, due at once, in their order.
    pub requeued: usize,
    /// Held messages older than [`REQUEUE_MAX_AGE_SECS`], now `Dead`.
    pub given_up: usize,
}

/// Re-enables `receiver` in `queue`: each of its held (`Disabled`)
/// deliveries created at most [`REQUEUE_MAX_AGE_SECS`] before `now` is
/// requeued ([`Delivery::requeue`]); older ones become `Dead` with
/// [`TOO_OLD_TO_REQUEUE`] (settled at `now`, so kept for inspection and
/// pruned like other dead rows). Since every older one is settled, no held
/// head is left to block the receiver. Deliveries are changed in place;
/// other receivers and states are untouched.
pub fn enable(queue: &mut [Delivery], receiver: &str, now: i64) -> Enabled {
    let mut out = Enabled::default();
    for d in queue
        .iter_mut()
        .filter(|d| d.receiver == receiver && d.state == DeliveryState::Disabled)
    {
        if now.saturating_sub(d.created_at) <= REQUEUE_MAX_AGE_SECS {
            d.requeue(now);
            out.requeued += 1;
        } else {
            d.state = DeliveryState::Dead;
            d.next_at = now;
            d.held_at = None;
            d.last_error = Some(TOO_OLD_TO_REQUEUE.to_string());
            out.given_up += 1;
        }
    }
    out
}

/// A receiver as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiverStatus {
    pub name: String,
    /// `None` for a receiver that is disabled but no longer configured.
    pub format: Option<WebhookFormat>,
    pub enabled: bool,
    /// Unix seconds it was disabled at, while disabled.
    pub disabled_since: Option<i64>,
    /// Why it was disabled, while disabled.
    pub disabled_reason: Option<String>,
    /// Messages waiting for an attempt.
    pub queued: usize,
    /// Messages held because it is disabled.
    pub held: usize,
}

/// Every configured receiver (in config order), then any disabled one no
/// longer configured, with its state and its messages in `queue` (the
/// outbox's pending rows). `disabled` is `(receiver, since, reason)`.
pub fn receiver_statuses(
    configured: &[(&str, WebhookFormat)],
    disabled: &[(String, i64, String)],
    queue: &[Delivery],
) -> Vec<ReceiverStatus> {
    let count = |name: &str, state: DeliveryState| {
        queue
            .iter()
            .filter(|d| d.receiver == name && d.state == state)
            .count()
    };
    let status = |name: &str, format: Option<WebhookFormat>| {
        let off = disabled.iter().find(|(r, _, _)| r == name);
        ReceiverStatus {
            name: name.to_string(),
            format,
            enabled: off.is_none(),
            disabled_since: off.map(|(_, at, _)| *at),
            disabled_reason: off.map(|(_, _, why)| why.clone()),
            queued: count(name, DeliveryState::Queued),
            held: count(name, DeliveryState::Disabled),
        }
    };
    let mut out: Vec<ReceiverStatus> = configured
        .iter()
        .map(|(name, format)| status(name, Some(*format)))
        .collect();
    for (name, _, _) in disabled {
        if !configured.iter().any(|(c, _)| c == name) {
            out.push(status(name, None));
        }
    }
    out
}

/// The head of each enabled receiver that is waiting to be attempted: its
/// lowest-`seq` delivery among those neither delivered nor dead, if that one
/// is `Queued`. A `Disabled` head holds its place, so nothing behind it can
/// overtake it. Ties in `seq` go to the earlier element of `queue`.
fn queued_heads<'a>(queue: &'a [Delivery], disabled_receivers: &[String]) -> Vec<&'a Delivery> {
    let mut heads: HashMap<&str, &Delivery> = HashMap::new();
    for d in queue {
        if matches!(d.state, DeliveryState::Delivered | DeliveryState::Dead)
            || disabled_receivers.contains(&d.receiver)
        {
            continue;
        }
        heads
            .entry(d.receiver.as_str())
            .and_modify(|head| {
                if d.seq < head.seq {
                    *head = d;
                }
            })
            .or_insert(d);
    }
    heads
        .into_values()
        .filter(|d| d.state == DeliveryState::Queued)
        .collect()
}

/// Which deliveries to attempt now: for each receiver (not in
/// `disabled_receivers`), its oldest Queued delivery, if its next_at ≤ now.
/// Returned in seq order.
///
/// "Oldest" counts `Disabled` deliveries too: a receiver whose head is
/// `Disabled` gets nothing until that head is requeued ([`Delivery::requeue`]),
/// so re-enabling a receiver cannot reorder its messages.
pub fn due<'a>(
    queue: &'a [Delivery],
    disabled_receivers: &[String],
    now: i64,
) -> Vec<&'a Delivery> {
    let mut out: Vec<&Delivery> = queued_heads(queue, disabled_receivers)
        .into_iter()
        .filter(|d| d.next_at <= now)
        .collect();
    out.sort_by_key(|d| d.seq);
    out
}

/// When the alarm should next wake: min next_at over each receiver's head
/// (oldest Queued) delivery of enabled receivers; None when nothing is
/// queued. The time may be in the past, meaning "now". Heads are as in
/// [`due`]: a message waiting behind another never sets the wake time.
pub fn next_wake(queue: &[Delivery], disabled_receivers: &[String]) -> Option<i64> {
    queued_heads(queue, disabled_receivers)
        .into_iter()
        .map(|d| d.next_at)
        .min()
}

/// How long from `now_ms` until the alarm for [`next_wake`]'s answer
/// should fire, in ms: never negative (a wake time in the past is "now").
pub fn alarm_delay_ms(wake_secs: i64, now_ms: f64) -> i64 {
    let at_ms = wake_secs.saturating_mul(1000) as f64;
    (at_ms - now_ms).max(0.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn the_alarm_fires_at_the_wake_time_or_at_once() {
        let now_ms = NOW as f64 * 1000.0 + 250.0;
        assert_eq!(alarm_delay_ms(NOW + 60, now_ms), 59_750);
        assert_eq!(alarm_delay_ms(NOW, now_ms), 0);
        assert_eq!(alarm_delay_ms(NOW - 3600, now_ms), 0);
        assert_eq!(alarm_delay_ms(i64::MIN, now_ms), 0);
    }

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Status {
            code,
            retry_after: None,
        }
    }

    fn status_ra(code: u16, retry_after: &str) -> AttemptResult {
        AttemptResult::Status {
            code,
            retry_after: Some(retry_after.to_owned()),
        }
    }

    fn d(seq: i64, receiver: &str, next_at: i64) -> Delivery {
        let mut d = Delivery::new(seq, receiver, &format!("msg_{seq}"), NOW);
        d.next_at = next_at;
        d
    }

    fn seqs(v: &[&Delivery]) -> Vec<i64> {
        v.iter().map(|d| d.seq).collect()
    }

    #[test]
    fn schedule_walked_with_5xx_until_dead() {
        let queue_at = NOW;
        let mut del = Delivery::new(1, "ops", "msg_1", queue_at);
        let mut attempt_times = Vec::new();
        let mut verdict = Verdict::Delivered;
        // Each attempt happens exactly when it becomes due.
        for _ in 0..20 {
            let batch = due(std::slice::from_ref(&del), &[], del.next_at);
            if batch.is_empty() {
                break;
            }
            let at = del.next_at;
            attempt_times.push(at);
            verdict = del.record(&status(503), at);
            if verdict == Verdict::Dead {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Dead);
        assert_eq!(attempt_times.len(), 11);
        assert_eq!(del.attempts, 11);
        assert_eq!(del.state, DeliveryState::Dead);
        assert_eq!(del.last_status, Some(503));
        assert_eq!(attempt_times[0], queue_at);
        for (n, pair) in attempt_times.windows(2).enumerate() {
            assert_eq!(pair[1] - pair[0], RETRY_SCHEDULE_SECS[n + 1]);
        }
        let span = attempt_times[10] - attempt_times[0];
        assert_eq!(span, 57_155);
        assert_eq!(span, 15 * 3600 + 52 * 60 + 35);
        // Dead is final: nothing due, nothing to wake for.
        assert!(due(std::slice::from_ref(&del), &[], i64::MAX).is_empty());
        assert_eq!(next_wake(std::slice::from_ref(&del), &[]), None);
    }

    #[test]
    fn judge_follows_schedule_and_dies_after_last_attempt() {
        for attempt in 0..10u32 {
            let next = RETRY_SCHEDULE_SECS[attempt as usize + 1];
            assert_eq!(
                judge(attempt, &status(500), NOW),
                Verdict::RetryAt(NOW + next)
            );
        }
        assert_eq!(judge(10, &status(500), NOW), Verdict::Dead);
        assert_eq!(judge(11, &status(500), NOW), Verdict::Dead);
        assert_eq!(judge(u32::MAX, &status(500), NOW), Verdict::Dead);
        // Success still counts at any attempt.
        assert_eq!(judge(u32::MAX, &status(200), NOW), Verdict::Delivered);
    }

    #[test]
    fn receiver_down_for_an_hour_loses_nothing() {
        let mut del = Delivery::new(1, "ops", "msg_1", NOW);
        while del.next_at < NOW + 3600 {
            let at = del.next_at;
            assert!(matches!(del.record(&status(502), at), Verdict::RetryAt(_)));
        }
        let at = del.next_at;
        assert_eq!(del.record(&status(200), at), Verdict::Delivered);
        assert_eq!(del.state, DeliveryState::Delivered);
        assert_eq!(del.delivered_at, Some(at));
    }

    #[test]
    fn two_xx_is_delivered() {
        for code in [200, 201, 204, 299] {
            assert_eq!(judge(0, &status(code), NOW), Verdict::Delivered, "{code}");
            assert_eq!(
                judge(3, &status_ra(code, "3600"), NOW),
                Verdict::Delivered,
                "{code}"
            );
        }
    }

    #[test]
    fn redirects_are_retried_not_delivered() {
        for code in [301, 302, 307, 308] {
            assert_eq!(
                judge(0, &status(code), NOW),
                Verdict::RetryAt(NOW + 5),
                "{code}"
            );
            // Retry-After on a redirect is not honoured.
            assert_eq!(
                judge(0, &status_ra(code, "600"), NOW),
                Verdict::RetryAt(NOW + 5),
                "{code}"
            );
        }
    }

    #[test]
    fn gone_disables_receiver() {
        assert_eq!(judge(0, &status(410), NOW), Verdict::DisableReceiver);
        assert_eq!(judge(10, &status(410), NOW), Verdict::DisableReceiver);
        let mut del = Delivery::new(1, "ops", "msg_1", NOW);
        assert_eq!(del.record(&status(410), NOW), Verdict::DisableReceiver);
        assert_eq!(del.state, DeliveryState::Disabled);
        assert_eq!(del.attempts, 1);
        assert_eq!(del.last_status, Some(410));
    }

    #[test]
    fn other_4xx_retry_on_schedule() {
        for code in [400, 401, 403, 404, 408, 413, 422, 451] {
            assert_eq!(
                judge(0, &status(code), NOW),
                Verdict::RetryAt(NOW + 5),
                "{code}"
            );
            assert_eq!(
                judge(4, &status_ra(code, "7200"), NOW),
                Verdict::RetryAt(NOW + 900),
                "{code}"
            );
        }
        assert_eq!(judge(10, &status(404), NOW), Verdict::Dead);
    }

    #[test]
    fn regression_a_pagerduty_400_was_retried_for_16_hours() {
        // PagerDuty answers 400 to an invalid event and documents "don't
        // retry"; the outbox retried it 10 more times anyway.
        let pd = WebhookFormat::Pagerduty;
        assert_eq!(judge_for(pd, 0, &status(400), NOW), Verdict::Dead);
        assert_eq!(judge_for(pd, 0, &status_ra(400, "60"), NOW), Verdict::Dead);
        let mut del = Delivery::new(1, "oncall", "evt_1", NOW);
        assert_eq!(del.record_for(pd, &status(400), NOW), Verdict::Dead);
        assert_eq!(del.state, DeliveryState::Dead);
        assert_eq!((del.attempts, del.last_status), (1, Some(400)));
        assert!(due(std::slice::from_ref(&del), &[], i64::MAX).is_empty());
        // PagerDuty's other failures keep the schedule: 429 and 5xx are
        // retried, and so is every other 4xx.
        for code in [401, 403, 404, 413, 429, 500, 502, 503] {
            assert_eq!(
                judge_for(pd, 0, &status(code), NOW),
                Verdict::RetryAt(NOW + 5),
                "{code}"
            );
        }
        assert_eq!(judge_for(pd, 0, &status(202), NOW), Verdict::Delivered);
        // Other formats still retry a 400 on the schedule.
        for f in [
            WebhookFormat::Json,
            WebhookFormat::Slack,
            WebhookFormat::Alertmanager,
        ] {
            assert!(!refused_for_good(f, 400));
            assert_eq!(
                judge_for(f, 0, &status(400), NOW),
                Verdict::RetryAt(NOW + 5)
            );
        }
    }

    #[test]
    fn too_many_requests_honours_retry_after_seconds() {
        assert_eq!(
            judge(0, &status_ra(429, "120"), NOW),
            Verdict::RetryAt(NOW + 120)
        );
        // Shorter than the schedule: the schedule wins.
        assert_eq!(
            judge(5, &status_ra(429, "120"), NOW),
            Verdict::RetryAt(NOW + 1800)
        );
        assert_eq!(
            judge(0, &status_ra(503, " 60 "), NOW),
            Verdict::RetryAt(NOW + 60)
        );
        // Last attempt: dead regardless of Retry-After.
        assert_eq!(judge(10, &status_ra(429, "1"), NOW), Verdict::Dead);
    }

    #[test]
    fn retry_after_http_date() {
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        let at = 1_445_412_480; // 2015-10-21T07:28:00Z
        assert_eq!(parse_retry_after(date, at - 600), Some(600));
        assert_eq!(
            judge(0, &status_ra(503, date), at - 600),
            Verdict::RetryAt(at)
        );
        // In the past: wait 0, so the schedule delay applies.
        assert_eq!(parse_retry_after(date, NOW), Some(0));
        assert_eq!(
            judge(0, &status_ra(503, date), NOW),
            Verdict::RetryAt(NOW + 5)
        );
        assert_eq!(
            judge(2, &status_ra(500, date), NOW),
            Verdict::RetryAt(NOW + 120)
        );
        // Far future: capped at a day.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW),
            Some(MAX_RETRY_AFTER_SECS)
        );
    }

    #[test]
    fn retry_after_garbage_negative_huge() {
        for bad in [
            "",
            "   ",
            "soon",
            "-5",
            "+5",
            "1.5",
            "12s",
            "１２０",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "2015-10-21T07:28:00Z",
        ] {
            assert_eq!(parse_retry_after(bad, NOW), None, "{bad:?}");
            assert_eq!(
                judge(0, &status_ra(503, bad), NOW),
                Verdict::RetryAt(NOW + 5),
                "{bad:?}"
            );
        }
        assert_eq!(parse_retry_after("0", NOW), Some(0));
        assert_eq!(parse_retry_after("86400", NOW), Some(86_400));
        assert_eq!(parse_retry_after("86401", NOW), Some(MAX_RETRY_AFTER_SECS));
        let huge = "99999999999999999999999999999999";
        assert_eq!(parse_retry_after(huge, NOW), Some(MAX_RETRY_AFTER_SECS));
        assert_eq!(
            judge(0, &status_ra(429, huge), NOW),
            Verdict::RetryAt(NOW + MAX_RETRY_AFTER_SECS)
        );
    }

    #[test]
    fn timeout_and_network_error_retry() {
        assert_eq!(
            judge(0, &AttemptResult::Timeout, NOW),
            Verdict::RetryAt(NOW + 5)
        );
        let net = AttemptResult::NetworkError("connection reset".into());
        assert_eq!(judge(3, &net, NOW), Verdict::RetryAt(NOW + 300));
        assert_eq!(judge(10, &net, NOW), Verdict::Dead);

        let mut del = Delivery::new(1, "ops", "msg_1", NOW);
        del.record(&status(500), NOW);
        assert_eq!(del.record(&net, NOW + 5), Verdict::RetryAt(NOW + 5 + 30));
        assert_eq!(del.last_status, None);
        assert_eq!(del.last_error.as_deref(), Some("connection reset"));
        assert_eq!(
            del.record(&AttemptResult::Timeout, NOW + 35),
            Verdict::RetryAt(NOW + 35 + 120)
        );
        assert_eq!(del.last_error.as_deref(), Some("timed out after 15000 ms"));
        assert_eq!(del.attempts, 3);
        assert_eq!(del.state, DeliveryState::Queued);
        assert_eq!(del.next_at, NOW + 155);
        // A later response clears the error.
        del.record(&status(502), NOW + 155);
        assert_eq!((del.last_status, del.last_error.clone()), (Some(502), None));
    }

    #[test]
    fn long_network_error_is_truncated() {
        let mut del = Delivery::new(1, "ops", "msg_1", NOW);
        del.record(&AttemptResult::NetworkError("é".repeat(10_000)), NOW);
        assert_eq!(
            del.last_error.as_deref().map(|e| e.chars().count()),
            Some(MAX_ERROR_CHARS)
        );
    }

    #[test]
    fn settled_delivery_ignores_late_results() {
        let mut del = Delivery::new(1, "ops", "msg_1", NOW);
        assert_eq!(del.record(&status(204), NOW), Verdict::Delivered);
        let before = del.clone();
        assert_eq!(del.record(&status(500), NOW + 1), Verdict::Delivered);
        assert_eq!(del, before);

        let mut gone = Delivery::new(2, "ops", "msg_2", NOW);
        gone.record(&status(410), NOW);
        assert_eq!(gone.record(&status(200), NOW + 1), Verdict::DisableReceiver);
        assert_eq!(gone.state, DeliveryState::Disabled);
    }

    #[test]
    fn never_panics_on_any_code_or_time() {
        let headers = [
            None,
            Some("120"),
            Some("99999999999999999999"),
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some("junk"),
        ];
        for now in [i64::MIN, -1, 0, NOW, i64::MAX] {
            for attempt in [0, 1, 10, 11, u32::MAX] {
                for code in (0..=u16::MAX).step_by(7).chain([410, 429, 503]) {
                    for h in headers {
                        let r = AttemptResult::Status {
                            code,
                            retry_after: h.map(str::to_owned),
                        };
                        if let Verdict::RetryAt(t) = judge(attempt, &r, now) {
                            assert!(t >= now);
                        }
                    }
                }
            }
            for h in headers.iter().flatten() {
                let s = parse_retry_after(h, now);
                assert!(s.is_none_or(|s| (0..=MAX_RETRY_AFTER_SECS).contains(&s)));
            }
        }
        let mut del = Delivery::new(1, "ops", "msg_1", i64::MAX);
        del.attempts = u32::MAX;
        assert_eq!(del.record(&status(500), i64::MAX), Verdict::Dead);
        assert_eq!(del.attempts, u32::MAX);
        assert_eq!(
            judge(0, &status_ra(429, "120"), i64::MAX),
            Verdict::RetryAt(i64::MAX)
        );
    }

    #[test]
    fn due_returns_only_head_per_receiver() {
        // The head is not due yet; the message behind it is, but must wait.
        let queue = vec![d(1, "a", NOW + 60), d(2, "a", NOW - 100)];
        assert!(due(&queue, &[], NOW).is_empty());
        assert_eq!(seqs(&due(&queue, &[], NOW + 60)), vec![1]);
    }

    #[test]
    fn due_orders_by_seq_not_slice_order() {
        let queue = vec![
            d(7, "b", NOW),
            d(3, "a", NOW),
            d(5, "a", NOW),
            d(4, "c", NOW),
        ];
        assert_eq!(seqs(&due(&queue, &[], NOW)), vec![3, 4, 7]);
    }

    #[test]
    fn second_receiver_is_independent() {
        let queue = vec![
            d(1, "a", NOW + 3600),
            d(2, "b", NOW),
            d(3, "a", NOW),
            d(4, "b", NOW),
        ];
        assert_eq!(seqs(&due(&queue, &[], NOW)), vec![2]);
    }

    #[test]
    fn disabled_receivers_are_skipped() {
        let queue = vec![d(1, "a", NOW), d(2, "b", NOW), d(3, "a", NOW)];
        let disabled = vec!["a".to_owned()];
        assert_eq!(seqs(&due(&queue, &disabled, NOW)), vec![2]);
        assert_eq!(next_wake(&queue, &disabled), Some(NOW));
        let all = vec!["a".to_owned(), "b".to_owned()];
        assert!(due(&queue, &all, NOW).is_empty());
        assert_eq!(next_wake(&queue, &all), None);
    }

    #[test]
    fn dead_or_delivered_head_no_longer_blocks() {
        let mut queue = vec![d(1, "a", NOW), d(2, "a", NOW), d(3, "a", NOW)];
        queue[0].state = DeliveryState::Dead;
        assert_eq!(seqs(&due(&queue, &[], NOW)), vec![2]);
        queue[1].state = DeliveryState::Delivered;
        assert_eq!(seqs(&due(&queue, &[], NOW)), vec![3]);
    }

    #[test]
    fn disabled_head_blocks_until_requeued() {
        let mut queue = vec![d(1, "a", NOW), d(2, "a", NOW)];
        assert_eq!(queue[0].record(&status(410), NOW), Verdict::DisableReceiver);
        // Even with the receiver enabled again, the later message waits.
        assert!(due(&queue, &[], NOW).is_empty());
        assert_eq!(next_wake(&queue, &[]), None);
        assert!(queue[0].requeue(NOW + 10));
        assert_eq!(queue[0].attempts, 0);
        assert_eq!(next_wake(&queue, &[]), Some(NOW + 10));
        assert_eq!(seqs(&due(&queue, &[], NOW + 10)), vec![1]);
        // Requeue only touches disabled deliveries.
        assert!(!queue[1].requeue(NOW));
    }

    #[test]
    fn enable_requeues_up_to_the_schedule_span_and_gives_up_older() {
        assert_eq!(REQUEUE_MAX_AGE_SECS, 57_155);
        let mut queue = vec![
            d(1, "a", NOW),
            d(2, "a", NOW),
            d(3, "b", NOW),
            d(4, "a", NOW),
        ];
        queue[0].created_at = NOW - 1;
        assert_eq!(queue[0].record(&status(410), NOW), Verdict::DisableReceiver);
        assert_eq!(queue[0].held_at, Some(NOW));
        assert!(queue[1].hold(NOW));
        assert!(!queue[1].hold(NOW + 1), "already held");
        assert!(queue[2].hold(NOW));
        queue[3].state = DeliveryState::Delivered;
        let later = NOW - 1 + REQUEUE_MAX_AGE_SECS + 1;
        // Seq 1 is one second too old; seq 2 exactly at the limit.
        let out = enable(&mut queue, "a", later);
        assert_eq!(
            out,
            Enabled {
                requeued: 1,
                given_up: 1
            }
        );
        assert_eq!(queue[0].state, DeliveryState::Dead);
        assert_eq!(queue[0].last_error.as_deref(), Some(TOO_OLD_TO_REQUEUE));
        assert_eq!(queue[0].settled_at(), Some(later));
        assert_eq!(queue[1].state, DeliveryState::Queued);
        assert_eq!((queue[1].attempts, queue[1].held_at), (0, None));
        assert_eq!(queue[2].state, DeliveryState::Disabled, "another receiver");
        assert_eq!(queue[3].state, DeliveryState::Delivered);
        assert_eq!(seqs(&due(&queue, &[], later)), vec![2]);
    }

    #[test]
    fn settled_at_per_state() {
        let mut q = Delivery::new(1, "a", "m", NOW);
        assert_eq!(q.settled_at(), None);
        q.hold(NOW + 5);
        assert_eq!(q.settled_at(), Some(NOW + 5));
        let mut legacy = Delivery::new(2, "a", "m", NOW);
        legacy.state = DeliveryState::Disabled;
        assert_eq!(legacy.settled_at(), Some(NOW), "no held_at: its next_at");
        let mut done = Delivery::new(3, "a", "m", NOW);
        done.record(&status(200), NOW + 9);
        assert_eq!(done.settled_at(), Some(NOW + 9));
    }

    #[test]
    fn receiver_statuses_list_configured_then_unknown_disabled() {
        let mut queue = vec![d(1, "ops", NOW), d(2, "ops", NOW), d(3, "pd", NOW)];
        queue[0].hold(NOW);
        let disabled = vec![
            ("ops".to_string(), NOW - 60, "410".to_string()),
            ("gone".to_string(), NOW - 90, "410".to_string()),
        ];
        let list = receiver_statuses(
            &[
                ("pd", WebhookFormat::Pagerduty),
                ("ops", WebhookFormat::Json),
            ],
            &disabled,
            &queue,
        );
        let names: Vec<(&str, bool, usize, usize)> = list
            .iter()
            .map(|r| (r.name.as_str(), r.enabled, r.queued, r.held))
            .collect();
        assert_eq!(
            names,
            vec![
                ("pd", true, 1, 0),
                ("ops", false, 1, 1),
                ("gone", false, 0, 0)
            ]
        );
        assert_eq!(list[2].format, None);
        assert_eq!(list[1].disabled_since, Some(NOW - 60));
        let v = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(v["format"], "json");
        assert_eq!(v["disabled_reason"], "410");
    }

    #[test]
    fn firing_then_resolved_arrive_in_order() {
        let mut queue = vec![
            Delivery::new(1, "a", "firing", NOW),
            Delivery::new(2, "a", "resolved", NOW + 1),
        ];
        let mut sent = Vec::new();
        let mut now = NOW;
        let mut failures = 3;
        while let Some(t) = next_wake(&queue, &[]) {
            now = now.max(t);
            let batch: Vec<i64> = seqs(&due(&queue, &[], now));
            for seq in batch {
                let Some(del) = queue.iter_mut().find(|d| d.seq == seq) else {
                    continue;
                };
                let result = if failures > 0 {
                    failures -= 1;
                    status(503)
                } else {
                    status(200)
                };
                if del.record(&result, now) == Verdict::Delivered {
                    sent.push(del.message_id.clone());
                }
            }
        }
        assert_eq!(sent, vec!["firing", "resolved"]);
    }

    #[test]
    fn next_wake_is_min_over_heads() {
        assert_eq!(next_wake(&[], &[]), None);
        // Seq 2 has an earlier next_at but sits behind seq 1.
        let queue = vec![
            d(1, "a", NOW + 300),
            d(2, "a", NOW + 10),
            d(3, "b", NOW + 120),
        ];
        assert_eq!(next_wake(&queue, &[]), Some(NOW + 120));
        assert_eq!(next_wake(&queue, &["b".to_owned()]), Some(NOW + 300));
        let mut settled = queue.clone();
        for del in &mut settled {
            del.state = DeliveryState::Delivered;
        }
        assert_eq!(next_wake(&settled, &[]), None);
    }

    #[test]
    fn serde_uses_snake_case() {
        let v = serde_json::to_string(&Verdict::RetryAt(5)).ok();
        assert_eq!(v.as_deref(), Some(r#"{"retry_at":5}"#));
        let s = serde_json::to_string(&DeliveryState::Disabled).ok();
        assert_eq!(s.as_deref(), Some(r#""disabled""#));
        let del = Delivery::new(9, "ops", "msg_9", NOW);
        let json = serde_json::to_string(&del).unwrap();
        let back: Delivery = serde_json::from_str(&json).unwrap();
        assert_eq!(back, del);
        let r: AttemptResult = serde_json::from_str(r#""timeout""#).unwrap();
        assert_eq!(r, AttemptResult::Timeout);
    }
}
