//! The isolate's write policy, as a pure state machine: which requests'
//! counts go into which batch, when a batch is sent to the counter shard,
//! and what happens when a send fails. The visitor worker (through
//! `count::pending`) and the fleet cost model (`count::fleet`) drive the
//! same code; only the clock and the transport differ.
//!
//! A *generation* is the open [`Tally`]: every request recorded until it is
//! drained into a batch. The first request of a generation gets a
//! [`Driver`], which its `wait_until` runs: sleep until the generation's
//! window has passed, drain it into a batch, send it, retry on failure.
//! The other requests of the generation wait for nothing (no timer, no
//! polling): the driver's `wait_until` keeps the isolate alive for them.
//!
//! Invariants:
//! - At most one batch is outstanding (sent or waiting for a retry). It
//!   keeps its id until the shard acknowledges it, so a batch whose
//!   acknowledgement was lost is recognised by the shard as a duplicate and
//!   counted once.
//! - A batch is drained no later than `life - send_budget` after the first
//!   request of its generation, so its driver has `send_budget` left to
//!   deliver it before `wait_until` runs out.
//! - A driver that runs out of time leaves its batch outstanding; the next
//!   recorded request arms a new driver, which sends that batch first, under
//!   the same id. Counts are lost only if the isolate dies before any later
//!   request arrives (see [`FlushQueue::at_risk`]).

use crate::config::StorageSettings;
use crate::count::classify::Hit;
use crate::count::tally::{Flush, Tally};

/// How long a Workers `wait_until` may run after the response, less a
/// margin: a driver never plans work past this.
pub const DRIVER_LIFE_MS: u64 = 28_000;
/// Time kept, at the end of a driver's life, for sending and retrying.
pub const SEND_BUDGET_MS: u64 = 8_000;
/// The longest flush window a configuration may ask for.
pub const MAX_WINDOW_MS: u64 = DRIVER_LIFE_MS - SEND_BUDGET_MS;
/// First retry delay; doubled per attempt up to [`MAX_RETRY_MS`].
pub const FIRST_RETRY_MS: u64 = 250;
pub const MAX_RETRY_MS: u64 = 4_000;
/// How often a driver looks again while another driver's send is in flight
/// (only when two generations overlap a slow send).
pub const IN_FLIGHT_POLL_MS: u64 = 25;
/// The shell gives up waiting for one send's answer after this long.
pub const SEND_TIMEOUT_MS: u64 = 5_000;
/// A send still marked in flight this long after it began belongs to a
/// driver the runtime cancelled: the batch may be sent again (same id).
pub const STALE_SEND_MS: u64 = 2 * SEND_TIMEOUT_MS;

/// The knobs of the policy, from `[storage]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// How long a generation stays open after its first request.
    pub window_ms: u64,
    /// A generation with this many requests is sent at once.
    pub max_requests: u64,
    /// K: distinct values per metric and referral dimension in one batch.
    pub max_values: usize,
}

impl FlushPolicy {
    /// The policy `[storage]` sets.
    pub fn of(storage: &StorageSettings) -> Self {
        FlushPolicy {
            window_ms: u64::from(storage.flush_interval_ms),
            max_requests: u64::from(storage.flush_max_events),
            max_values: storage.max_dimension_values as usize,
        }
    }

    /// The window actually used: at least 1 ms, at most [`MAX_WINDOW_MS`].
    pub fn window(&self) -> u64 {
        self.window_ms.clamp(1, MAX_WINDOW_MS)
    }
}

/// The right to send one generation, handed to the `wait_until` of the
/// request that opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver {
    pub generation: u64,
    /// Past this (ms), the driver plans nothing more.
    pub deadline_ms: u64,
}

/// What a driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Sleep until this time (ms), then ask again.
    Sleep(u64),
    /// Send this batch, then report with [`FlushQueue::acknowledged`] or
    /// [`FlushQueue::failed`], then ask again.
    Send(Flush),
    /// The driver's generation is durable.
    Done,
    /// Out of time: the batch stays outstanding for the next driver.
    OutOfTime,
}

#[derive(Debug)]
struct Outstanding {
    flush: Flush,
    /// Retries wait until this time (ms).
    retry_at_ms: u64,
    attempts: u32,
    in_flight: bool,
    sent_at_ms: u64,
}

/// One isolate's counts that are not yet durable.
#[derive(Debug)]
pub struct FlushQueue {
    policy: FlushPolicy,
    isolate: String,
    /// Metric names by index, for the batches' rows.
    names: Vec<String>,
    tally: Tally,
    generation: u64,
    opened_at_ms: u64,
    /// The generation whose driver is running, if any.
    armed: Option<u64>,
    /// Whether the open generation already has an early ("full") driver.
    early_driver: bool,
    outstanding: Option<Outstanding>,
}

impl FlushQueue {
    /// `isolate` makes batch ids unique across isolates (random per
    /// isolate); `names` are the configured metrics' names by index.
    pub fn new(policy: FlushPolicy, isolate: String, names: Vec<String>) -> Self {
        FlushQueue {
            policy,
            isolate,
            names,
            tally: Tally::new(policy.max_values),
            generation: 0,
            opened_at_ms: 0,
            armed: None,
            early_driver: false,
            outstanding: None,
        }
    }

    pub fn policy(&self) -> FlushPolicy {
        self.policy
    }

    /// Records one request's hits (and its visitor hash, if any), answered
    /// at `at_secs`. Returns a driver when this request must run one: it
    /// opened a generation, it found no driver running (an earlier one ran
    /// out of time), or it filled the generation.
    pub fn record(
        &mut self,
        now_ms: u64,
        at_secs: i64,
        hits: &[Hit],
        visitor: Option<u64>,
    ) -> Option<Driver> {
        if self.tally.requests() == 0 {
            self.opened_at_ms = now_ms;
        }
        self.tally.record(at_secs, hits);
        if let Some(hash) = visitor {
            self.tally.record_visitor(at_secs, hits, hash);
        }
        let driver = Driver {
            generation: self.generation,
            deadline_ms: now_ms + DRIVER_LIFE_MS,
        };
        if self.armed != Some(self.generation) {
            self.armed = Some(self.generation);
            return Some(driver);
        }
        if self.tally.requests() >= self.policy.max_requests && !self.early_driver {
            self.early_driver = true;
            return Some(driver);
        }
        None
    }

    /// The next thing `driver` does at `now_ms`.
    pub fn step(&mut self, driver: &Driver, now_ms: u64) -> Step {
        let step = self.plan(driver, now_ms);
        if matches!(step, Step::Done | Step::OutOfTime) && self.armed == Some(driver.generation) {
            self.armed = None;
        }
        step
    }

    fn plan(&mut self, driver: &Driver, now_ms: u64) -> Step {
        if now_ms >= driver.deadline_ms {
            return Step::OutOfTime;
        }
        let sleep = |until: u64| {
            if until >= driver.deadline_ms {
                Step::OutOfTime
            } else {
                Step::Sleep(until.max(now_ms))
            }
        };
        if let Some(out) = &mut self.outstanding {
            if out.in_flight && now_ms < out.sent_at_ms + STALE_SEND_MS {
                return sleep(now_ms + IN_FLIGHT_POLL_MS);
            }
            if !out.in_flight && now_ms < out.retry_at_ms {
                return sleep(out.retry_at_ms);
            }
            out.in_flight = true;
            out.sent_at_ms = now_ms;
            out.attempts += 1;
            return Step::Send(out.flush.clone());
        }
        if self.generation > driver.generation || self.tally.is_empty() {
            return Step::Done;
        }
        let due = (self.opened_at_ms + self.policy.window())
            .min(driver.deadline_ms.saturating_sub(SEND_BUDGET_MS));
        if now_ms < due && self.tally.requests() < self.policy.max_requests {
            return Step::Sleep(due);
        }
        Step::Send(self.drain(now_ms))
    }

    /// Closes the open generation into the outstanding batch, in flight
    /// from `now_ms`. Out of line: it runs a window after the generation's
    /// first request, and the Workers runtime compiles a WebAssembly
    /// function when it is first called, so it stays out of the code a
    /// fresh isolate's first request compiles.
    #[inline(never)]
    fn drain(&mut self, now_ms: u64) -> Flush {
        let id = format!("{}-{}", self.isolate, self.generation);
        let flush = self.tally.drain_flush(id, &self.names);
        // The next generation arms a driver of its own on its first request.
        self.generation += 1;
        self.early_driver = false;
        self.outstanding = Some(Outstanding {
            flush: flush.clone(),
            retry_at_ms: now_ms,
            attempts: 1,
            in_flight: true,
            sent_at_ms: now_ms,
        });
        flush
    }

    /// The shard acknowledged batch `id`.
    pub fn acknowledged(&mut self, id: &str) {
        if self.outstanding.as_ref().is_some_and(|o| o.flush.id == id) {
            self.outstanding = None;
        }
    }

    /// Sending batch `id` failed at `now_ms`: it stays outstanding and is
    /// retried after a backoff, under the same id.
    pub fn failed(&mut self, id: &str, now_ms: u64) {
        if let Some(out) = self.outstanding.as_mut().filter(|o| o.flush.id == id) {
            out.in_flight = false;
            let shift = out.attempts.saturating_sub(1).min(16);
            out.retry_at_ms = now_ms + (FIRST_RETRY_MS << shift).min(MAX_RETRY_MS);
        }
    }

    /// Requests whose counts would be lost if the isolate died now: the
    /// open generation and the outstanding batch.
    pub fn at_risk(&self) -> u64 {
        self.tally.requests() + self.outstanding.as_ref().map_or(0, |o| o.flush.requests)
    }

    /// Send attempts of the outstanding batch so far (0 when none).
    pub fn attempts(&self) -> u32 {
        self.outstanding.as_ref().map_or(0, |o| o.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FlushPolicy = FlushPolicy {
        window_ms: 20_000,
        max_requests: 100,
        max_values: 50,
    };

    fn hit() -> Vec<Hit> {
        vec![Hit {
            metric: 0,
            kind: crate::count::agent::AgentKind::Browser,
            counted: true,
            status_class: 2,
            latency_bucket: 3,
            dimensions: Vec::new(),
        }]
    }

    fn queue() -> FlushQueue {
        FlushQueue::new(POLICY, "iso".into(), vec!["a".into()])
    }

    fn sent(step: Step) -> Flush {
        match step {
            Step::Send(f) => f,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn only_the_first_request_of_a_generation_gets_a_driver() {
        let mut q = queue();
        let d = q.record(1_000, 1, &hit(), None).expect("a driver");
        assert_eq!(d.generation, 0);
        for i in 1..10 {
            assert_eq!(q.record(1_000 + i * 500, 1, &hit(), None), None);
        }
        // Sleeps until the window closes, then sends all ten at once.
        assert_eq!(q.step(&d, 1_000), Step::Sleep(21_000));
        let f = sent(q.step(&d, 21_000));
        assert_eq!((f.id.as_str(), f.requests, f.counted()), ("iso-0", 10, 10));
        q.acknowledged(&f.id);
        assert_eq!(q.step(&d, 21_010), Step::Done);
        assert_eq!(q.at_risk(), 0);
        // The next request opens generation 1 with its own driver.
        assert_eq!(q.record(30_000, 30, &hit(), None).unwrap().generation, 1);
    }

    #[test]
    fn a_failed_send_is_retried_under_the_same_id_with_backoff() {
        let mut q = queue();
        let d = q.record(0, 0, &hit(), None).unwrap();
        let first = sent(q.step(&d, 20_000));
        q.failed(&first.id, 20_050);
        assert_eq!(q.step(&d, 20_050), Step::Sleep(20_300));
        let second = sent(q.step(&d, 20_300));
        assert_eq!(second, first);
        q.failed(&second.id, 20_400);
        assert_eq!(q.step(&d, 20_400), Step::Sleep(20_900));
        let third = sent(q.step(&d, 20_900));
        assert_eq!(third.id, first.id);
        assert_eq!(q.attempts(), 3);
        q.acknowledged(&third.id);
        assert_eq!(q.step(&d, 21_000), Step::Done);
    }

    #[test]
    fn a_lost_acknowledgement_resends_the_same_batch_not_a_new_one() {
        // The shard applied the batch but the answer was lost: the isolate
        // sees a failure and resends the identical batch (same id, same
        // rows), which the shard recognises as a duplicate.
        let mut q = queue();
        let d = q.record(0, 0, &hit(), None).unwrap();
        q.record(10, 0, &hit(), None);
        let f = sent(q.step(&d, 20_000));
        q.failed(&f.id, 25_000); // timed out waiting for the answer
        q.record(25_100, 25, &hit(), None); // a new request meanwhile
        let again = sent(q.step(&d, 25_250));
        assert_eq!(again, f);
        assert_eq!(
            again.counted(),
            2,
            "the new request is not in the resent batch"
        );
        q.acknowledged(&again.id);
        assert_eq!(q.at_risk(), 1);
    }

    #[test]
    fn a_driver_out_of_time_leaves_the_batch_to_the_next_request() {
        let mut q = queue();
        let d = q.record(0, 0, &hit(), None).unwrap();
        let f = sent(q.step(&d, 20_000));
        // The shard is down for the rest of this driver's life.
        q.failed(&f.id, 20_000);
        let mut now = 20_000;
        loop {
            match q.step(&d, now) {
                Step::Sleep(t) => now = t,
                Step::Send(again) => {
                    assert_eq!(again.id, f.id);
                    q.failed(&again.id, now);
                }
                Step::OutOfTime => break,
                Step::Done => panic!("not delivered"),
            }
        }
        assert!(now < d.deadline_ms);
        assert_eq!(q.at_risk(), 1);
        // A request a minute later arms a new driver; it resends the old
        // batch first (same id), then its own generation.
        let d2 = q.record(90_000, 90, &hit(), None).expect("a new driver");
        let resent = sent(q.step(&d2, 90_000));
        assert_eq!(resent.id, f.id);
        q.acknowledged(&resent.id);
        assert_eq!(q.step(&d2, 90_001), Step::Sleep(110_000));
        let next = sent(q.step(&d2, 110_000));
        assert_ne!(next.id, f.id);
        assert_eq!(next.counted(), 1);
        q.acknowledged(&next.id);
        assert_eq!(q.step(&d2, 110_001), Step::Done);
        assert_eq!(q.at_risk(), 0);
    }

    #[test]
    fn a_full_generation_is_sent_at_once_by_an_early_driver() {
        let mut q = queue();
        let d = q.record(0, 0, &hit(), None).unwrap();
        let mut early = None;
        for i in 1..100 {
            if let Some(e) = q.record(i, 0, &hit(), None) {
                assert!(early.is_none(), "one early driver per generation");
                early = Some(e);
            }
        }
        let early = early.expect("the 100th request drives");
        let f = sent(q.step(&early, 100));
        assert_eq!(f.requests, 100);
        // Requests during the send open generation 1 with its own driver,
        // which waits for the send in flight before sending its own.
        let d1 = q
            .record(120, 0, &hit(), None)
            .expect("driver of generation 1");
        assert_eq!(q.step(&d1, 5_000), Step::Sleep(5_000 + IN_FLIGHT_POLL_MS));
        q.acknowledged(&f.id);
        assert_eq!(q.step(&early, 200), Step::Done);
        assert_eq!(q.step(&d, 20_000), Step::Done);
        assert_eq!(sent(q.step(&d1, 20_145)).requests, 1);
    }

    #[test]
    fn the_longest_configurable_window_fits_one_wait_until() {
        // `storage.flush_interval_ms` accepts at most 20,000 (config.rs).
        assert_eq!(MAX_WINDOW_MS, 20_000);
        const { assert!(MAX_WINDOW_MS + SEND_BUDGET_MS <= DRIVER_LIFE_MS) };
        const { assert!(DRIVER_LIFE_MS < 30_000, "Workers allow 30 s of wait_until") };
    }

    #[test]
    fn a_send_whose_driver_was_cancelled_is_taken_over() {
        let mut q = queue();
        let d = q.record(0, 0, &hit(), None).unwrap();
        let f = sent(q.step(&d, 20_000));
        // The driver is cancelled mid-send and never reports. The next
        // generation's driver waits a while, then sends the batch again.
        let d1 = q.record(21_000, 21, &hit(), None).unwrap();
        assert_eq!(q.step(&d1, 21_000), Step::Sleep(21_000 + IN_FLIGHT_POLL_MS));
        let again = sent(q.step(&d1, 20_000 + STALE_SEND_MS));
        assert_eq!(again.id, f.id);
    }

    #[test]
    fn a_generation_is_drained_in_time_for_its_send_budget() {
        let policy = FlushPolicy {
            window_ms: 60_000, // asks for more than wait_until allows
            ..POLICY
        };
        let mut q = FlushQueue::new(policy, "iso".into(), vec!["a".into()]);
        let d = q.record(0, 0, &hit(), None).unwrap();
        assert_eq!(q.step(&d, 0), Step::Sleep(MAX_WINDOW_MS));
    }

    #[test]
    fn counts_sent_equal_counts_recorded_over_many_generations() {
        let mut q = queue();
        let mut drivers = Vec::new();
        let mut delivered = 0;
        let mut sends = 0;
        let mut now = 0;
        for i in 0..1_000u64 {
            now = i * 700;
            if let Some(d) = q.record(now, (now / 1000) as i64, &hit(), None) {
                drivers.push(d);
            }
            // Every third batch fails once.
            for d in &drivers {
                if let Step::Send(f) = q.step(d, now) {
                    sends += 1;
                    if sends % 3 == 0 && q.attempts() == 1 {
                        q.failed(&f.id, now);
                    } else {
                        delivered += f.counted();
                        q.acknowledged(&f.id);
                    }
                }
            }
        }
        for _ in 0..100 {
            now += 1_000;
            for d in &drivers {
                if let Step::Send(f) = q.step(d, now) {
                    delivered += f.counted();
                    q.acknowledged(&f.id);
                }
            }
        }
        assert_eq!(delivered, 1_000);
        assert_eq!(q.at_risk(), 0);
    }
}
