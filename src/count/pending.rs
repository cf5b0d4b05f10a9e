//! The counting a visitor's request leaves for its `wait_until`, as a pure
//! state machine: get the day's visitor salt when the isolate lacks it (ask
//! the salt object, or wait for the request of this isolate already
//! asking), hash the visitor and record the hits into the isolate's
//! [`FlushQueue`], then run the [`Driver`] the queue handed out, if any.
//!
//! The visitor worker's entry performs each [`Action`] (a timer, one
//! Durable Object call) and reports how it went; it decides nothing. Most
//! requests never get here: their hits are recorded at once by
//! [`PendingCount::start`] and they get no driver.
//!
//! Invariants:
//! - A request's hits are recorded exactly once. A salt that cannot be had
//!   (the object fails, or another request's fetch takes longer than
//!   [`MAX_SALT_WAIT_MS`]) only costs the visitor hash, never the hits.
//! - The raw IP address and user agent are dropped when the hits are
//!   recorded (see `visitors`).
//! - At most one action is outstanding. Asking for the next action while a
//!   fetch or a send is unreported counts that call as failed, so a batch is
//!   never left marked in flight by a lost report.

use crate::count::classify::Hit;
use crate::count::flush_queue::{Driver, FlushQueue, Step};
use crate::count::tally::Flush;
use crate::count::visitors::{visitor_hash, Salt, SaltCache, SaltStep};

/// How often a request waiting for another request's salt fetch looks again.
pub const SALT_POLL_MS: u64 = 50;
/// A request waiting for another request's salt fetch records its hits
/// without a visitor after this long.
pub const MAX_SALT_WAIT_MS: u64 = 5_000;

/// Who made a request, for unique visitors: held in memory only until it
/// is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub ip: String,
    pub user_agent: String,
}

/// One counted request, as the shell read it.
#[derive(Debug, Clone)]
pub struct CountedRequest {
    /// When it was answered (Unix seconds).
    pub at_secs: i64,
    /// The site-local day whose salt hashes its visitor.
    pub salt_day: i64,
    pub hits: Vec<Hit>,
    pub visitor: Option<Visitor>,
}

/// What the shell does next for a [`PendingCount`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Wait this many milliseconds, then ask again.
    Sleep(u64),
    /// Ask the salt object for this day's salt, report with
    /// [`PendingCount::salt_answered`], then ask again.
    FetchSalt(i64),
    /// Send this batch to the isolate's shard, report with
    /// [`PendingCount::sent`], then ask again.
    Send(Flush),
    /// The driver ran out of time; its batch stays outstanding for the next
    /// request's driver. Nothing more to do (the shell logs it).
    OutOfTime,
    /// Nothing more to do.
    Done,
}

#[derive(Debug)]
enum State {
    /// Waiting for the salt of `request.salt_day`.
    Salt {
        request: CountedRequest,
        site: String,
        waited_ms: u64,
        fetching: bool,
    },
    /// Running the driver; `in_flight` is the id of the batch being sent.
    Drive {
        driver: Driver,
        in_flight: Option<String>,
    },
    Finished,
}

/// The counting one request still has to do after its response.
#[derive(Debug)]
pub struct PendingCount {
    state: State,
}

impl PendingCount {
    /// Records `request`'s hits at once when nothing needs fetching (no
    /// visitor to hash, or the isolate has the day's salt). The work left
    /// for the request's `wait_until`, if any: getting the salt first, or
    /// running the driver the queue handed out.
    pub fn start(
        mut request: CountedRequest,
        site: &str,
        salts: &SaltCache,
        queue: &mut FlushQueue,
        now_ms: u64,
    ) -> Option<PendingCount> {
        if !request.hits.iter().any(|h| h.counted) {
            request.visitor = None;
        }
        let hash = match &request.visitor {
            None => None,
            Some(visitor) => match salts.ready(request.salt_day) {
                Some(salt) => Some(hash_of(&salt, site, visitor)),
                None => {
                    return Some(PendingCount {
                        state: State::Salt {
                            request,
                            site: site.to_string(),
                            waited_ms: 0,
                            fetching: false,
                        },
                    })
                }
            },
        };
        let driver = queue.record(now_ms, request.at_secs, &request.hits, hash)?;
        Some(PendingCount {
            state: State::Drive {
                driver,
                in_flight: None,
            },
        })
    }

    /// What to do next at `now_ms`.
    pub fn next(&mut self, now_ms: u64, salts: &mut SaltCache, queue: &mut FlushQueue) -> Action {
        if let State::Salt { .. } = self.state {
            if let Some(action) = self.next_for_salt(now_ms, salts, queue) {
                return action;
            }
        }
        let State::Drive { driver, in_flight } = &mut self.state else {
            return Action::Done;
        };
        if let Some(id) = in_flight.take() {
            queue.failed(&id, now_ms);
        }
        match queue.step(driver, now_ms) {
            Step::Sleep(until) => Action::Sleep(until.saturating_sub(now_ms)),
            Step::Send(flush) => {
                *in_flight = Some(flush.id.clone());
                Action::Send(flush)
            }
            Step::Done => {
                self.state = State::Finished;
                Action::Done
            }
            Step::OutOfTime => {
                self.state = State::Finished;
                Action::OutOfTime
            }
        }
    }

    /// The salt phase: an action while the salt is still to come, or `None`
    /// once the hits are recorded (the state is then the driver's, or
    /// finished).
    fn next_for_salt(
        &mut self,
        now_ms: u64,
        salts: &mut SaltCache,
        queue: &mut FlushQueue,
    ) -> Option<Action> {
        let State::Salt {
            request,
            site,
            waited_ms,
            fetching,
        } = &mut self.state
        else {
            return None;
        };
        let day = request.salt_day;
        if std::mem::take(fetching) {
            salts.failed(day, now_ms as f64);
        }
        let hash = match salts.step(day, now_ms as f64) {
            SaltStep::Fetch => {
                *fetching = true;
                return Some(Action::FetchSalt(day));
            }
            SaltStep::Wait if *waited_ms < MAX_SALT_WAIT_MS => {
                *waited_ms += SALT_POLL_MS;
                return Some(Action::Sleep(SALT_POLL_MS));
            }
            SaltStep::Ready(salt) => request
                .visitor
                .as_ref()
                .map(|visitor| hash_of(&salt, site, visitor)),
            SaltStep::Wait | SaltStep::GiveUp => None,
        };
        let driver = queue.record(now_ms, request.at_secs, &request.hits, hash);
        self.state = match driver {
            Some(driver) => State::Drive {
                driver,
                in_flight: None,
            },
            None => State::Finished,
        };
        None
    }

    /// The salt object's answer to [`Action::FetchSalt`] (`None`: no salt,
    /// the shell has logged why). Ignored unless a fetch is outstanding.
    pub fn salt_answered(&mut self, now_ms: u64, salt: Option<Salt>, salts: &mut SaltCache) {
        let State::Salt {
            request, fetching, ..
        } = &mut self.state
        else {
            return;
        };
        if !std::mem::take(fetching) {
            return;
        }
        match salt {
            Some(salt) => salts.fetched(request.salt_day, salt),
            None => salts.failed(request.salt_day, now_ms as f64),
        }
    }

    /// Whether the shard acknowledged the batch of [`Action::Send`].
    /// Ignored unless a send is outstanding.
    pub fn sent(&mut self, now_ms: u64, acknowledged: bool, queue: &mut FlushQueue) {
        let State::Drive { in_flight, .. } = &mut self.state else {
            return;
        };
        let Some(id) = in_flight.take() else {
            return;
        };
        if acknowledged {
            queue.acknowledged(&id);
        } else {
            queue.failed(&id, now_ms);
        }
    }
}

fn hash_of(salt: &Salt, site: &str, visitor: &Visitor) -> u64 {
    visitor_hash(salt, site, &visitor.ip, &visitor.user_agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::agent::AgentKind;
    use crate::count::flush_queue::{FlushPolicy, DRIVER_LIFE_MS};
    use crate::count::visitors::SALT_LEN;

    const WINDOW_MS: u64 = 10_000;
    const DAY: i64 = 20_000;

    fn queue() -> FlushQueue {
        let policy = FlushPolicy {
            window_ms: WINDOW_MS,
            max_requests: 1_000,
            max_values: 50,
        };
        FlushQueue::new(policy, "iso".into(), vec!["logins".into()])
    }

    fn request(counted: bool, visitor: bool) -> CountedRequest {
        CountedRequest {
            at_secs: 1_700_000_000,
            salt_day: DAY,
            hits: vec![Hit {
                metric: 0,
                kind: AgentKind::Browser,
                counted,
                status_class: 2,
                latency_bucket: 1,
                dimensions: Vec::new(),
            }],
            visitor: visitor.then(|| Visitor {
                ip: "203.0.113.7".into(),
                user_agent: "Mozilla/5.0".into(),
            }),
        }
    }

    fn salt() -> Salt {
        Salt::new([9; SALT_LEN])
    }

    /// A fresh isolate's cache (holding `cached`, if given) and queue, and
    /// the pending count `request` leaves in them.
    fn started(
        request: CountedRequest,
        cached: Option<Salt>,
    ) -> (SaltCache, FlushQueue, PendingCount) {
        let (mut salts, mut q) = (SaltCache::default(), queue());
        if let Some(salt) = cached {
            salts.fetched(DAY, salt);
        }
        let pending = PendingCount::start(request, "shop", &salts, &mut q, 0)
            .expect("the generation's first request has work left");
        (salts, q, pending)
    }

    /// Runs `pending` to the end: sleeps pass, every send is acknowledged,
    /// every salt fetch answers `salt`. The batches sent, in order.
    fn run(
        pending: &mut PendingCount,
        mut now: u64,
        salts: &mut SaltCache,
        q: &mut FlushQueue,
        salt: Option<Salt>,
    ) -> (Vec<Flush>, Action) {
        let mut sent = Vec::new();
        for _ in 0..1_000 {
            match pending.next(now, salts, q) {
                Action::Sleep(ms) => now += ms,
                Action::FetchSalt(_) => pending.salt_answered(now, salt.clone(), salts),
                Action::Send(flush) => {
                    sent.push(flush);
                    pending.sent(now, true, q);
                }
                last => return (sent, last),
            }
        }
        panic!("the pending count never finished");
    }

    fn has_visitor_sketch(flush: &Flush) -> bool {
        !flush.sketches.is_empty()
    }

    #[test]
    fn a_request_without_a_visitor_is_recorded_at_once_and_drives_its_batch() {
        let (mut salts, mut q) = (SaltCache::default(), queue());
        let mut pending = PendingCount::start(request(true, false), "shop", &salts, &mut q, 0)
            .expect("the generation's first request gets a driver");
        assert_eq!(q.at_risk(), 1, "recorded before any action");
        assert_eq!(
            pending.next(0, &mut salts, &mut q),
            Action::Sleep(WINDOW_MS)
        );
        let (sent, last) = run(&mut pending, WINDOW_MS, &mut salts, &mut q, None);
        assert_eq!(last, Action::Done);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].counted(), 1);
        assert_eq!(q.at_risk(), 0);
    }

    #[test]
    fn a_later_request_of_the_generation_has_nothing_pending() {
        let (salts, mut q) = (SaltCache::default(), queue());
        assert!(PendingCount::start(request(true, false), "shop", &salts, &mut q, 0).is_some());
        assert!(PendingCount::start(request(true, false), "shop", &salts, &mut q, 5).is_none());
        assert_eq!(q.at_risk(), 2);
    }

    #[test]
    fn a_cached_salt_hashes_the_visitor_without_waiting() {
        let (mut salts, mut q, mut pending) = started(request(true, true), Some(salt()));
        let (sent, _) = run(&mut pending, 0, &mut salts, &mut q, None);
        assert!(has_visitor_sketch(&sent[0]));
    }

    #[test]
    fn a_missing_salt_is_fetched_first_then_the_hits_are_recorded_with_the_visitor() {
        let (mut salts, mut q, mut pending) = started(request(true, true), None);
        assert_eq!(q.at_risk(), 0, "nothing recorded before the salt");
        assert_eq!(pending.next(0, &mut salts, &mut q), Action::FetchSalt(DAY));
        pending.salt_answered(3, Some(salt()), &mut salts);
        assert_eq!(salts.ready(DAY), Some(salt()), "the isolate keeps it");
        assert_eq!(
            pending.next(3, &mut salts, &mut q),
            Action::Sleep(WINDOW_MS)
        );
        assert_eq!(q.at_risk(), 1);
        let (sent, last) = run(&mut pending, 3 + WINDOW_MS, &mut salts, &mut q, None);
        assert_eq!(last, Action::Done);
        assert!(has_visitor_sketch(&sent[0]));
    }

    #[test]
    fn a_failed_salt_fetch_still_records_the_hits_without_a_visitor() {
        let (mut salts, mut q, mut pending) = started(request(true, true), None);
        let (sent, last) = run(&mut pending, 0, &mut salts, &mut q, None);
        assert_eq!(last, Action::Done);
        assert_eq!(sent[0].counted(), 1);
        assert!(!has_visitor_sketch(&sent[0]));
    }

    #[test]
    fn a_request_waits_for_another_requests_fetch_then_uses_its_salt() {
        let (mut salts, mut q, mut first) = started(request(true, true), None);
        let mut second =
            PendingCount::start(request(true, true), "shop", &salts, &mut q, 0).unwrap();
        assert_eq!(first.next(0, &mut salts, &mut q), Action::FetchSalt(DAY));
        assert_eq!(
            second.next(0, &mut salts, &mut q),
            Action::Sleep(SALT_POLL_MS)
        );
        first.salt_answered(20, Some(salt()), &mut salts);
        // The first records and owns the generation's driver; the second
        // records into the same generation and has nothing more to do.
        assert_eq!(first.next(20, &mut salts, &mut q), Action::Sleep(WINDOW_MS));
        assert_eq!(second.next(50, &mut salts, &mut q), Action::Done);
        let (sent, _) = run(&mut first, 20 + WINDOW_MS, &mut salts, &mut q, None);
        assert_eq!(sent[0].counted(), 2);
    }

    #[test]
    fn a_request_stops_waiting_for_a_slow_fetch_and_counts_without_a_visitor() {
        let (mut salts, mut q, mut first) = started(request(true, true), None);
        let mut second =
            PendingCount::start(request(true, true), "shop", &salts, &mut q, 0).unwrap();
        assert_eq!(first.next(0, &mut salts, &mut q), Action::FetchSalt(DAY));
        let mut now = 0;
        let mut sleeps = 0;
        while let Action::Sleep(ms) = second.next(now, &mut salts, &mut q) {
            if q.at_risk() > 0 {
                break;
            }
            now += ms;
            sleeps += 1;
        }
        assert_eq!(sleeps, MAX_SALT_WAIT_MS / SALT_POLL_MS);
        assert_eq!(q.at_risk(), 1, "recorded, without a visitor");
    }

    #[test]
    fn an_uncounted_request_needs_no_salt() {
        let (salts, mut q) = (SaltCache::default(), queue());
        let pending = PendingCount::start(request(false, true), "shop", &salts, &mut q, 0);
        assert!(pending.is_some(), "recorded at once, with a driver");
        assert_eq!(q.at_risk(), 1);
    }

    /// A generation's batch, sent when its window has passed, then either
    /// reported failed or not reported at all before asking again: the
    /// first send, the backoff and the resend.
    fn resent(report_failure: bool) -> (Flush, u64, Flush) {
        let (mut salts, mut q, mut pending) = started(request(true, false), None);
        let Action::Send(first) = pending.next(WINDOW_MS, &mut salts, &mut q) else {
            panic!("the window has passed: send");
        };
        if report_failure {
            pending.sent(WINDOW_MS, false, &mut q);
        }
        let Action::Sleep(backoff) = pending.next(WINDOW_MS, &mut salts, &mut q) else {
            panic!("a failed send backs off");
        };
        let Action::Send(again) = pending.next(WINDOW_MS + backoff, &mut salts, &mut q) else {
            panic!("then retries");
        };
        (first, backoff, again)
    }

    #[test]
    fn a_failed_send_is_retried_under_the_same_id() {
        let (first, _, again) = resent(true);
        assert_eq!(again.id, first.id);
    }

    #[test]
    fn an_unreported_send_counts_as_failed_not_in_flight() {
        // The shell asks again without reporting: the batch is retried after
        // a backoff instead of waiting out a stale in-flight mark.
        let (first, backoff, again) = resent(false);
        assert!(backoff < 1_000, "backoff {backoff} ms");
        assert_eq!(again.id, first.id);
    }

    #[test]
    fn a_driver_past_its_life_leaves_the_batch_for_the_next_request() {
        let (mut salts, mut q, mut pending) = started(request(true, false), None);
        assert_eq!(
            pending.next(DRIVER_LIFE_MS, &mut salts, &mut q),
            Action::OutOfTime
        );
        assert_eq!(
            pending.next(DRIVER_LIFE_MS, &mut salts, &mut q),
            Action::Done
        );
        assert_eq!(q.at_risk(), 1);
    }

    #[test]
    fn late_or_repeated_reports_change_nothing() {
        let (mut salts, mut q, mut pending) = started(request(true, false), None);
        pending.salt_answered(0, Some(salt()), &mut salts);
        assert_eq!(salts.ready(DAY), None, "no fetch was outstanding");
        pending.sent(0, true, &mut q);
        assert_eq!(q.at_risk(), 1, "no send was outstanding");
    }
}
