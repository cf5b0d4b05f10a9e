//! The fleet cost model: many simulated isolates run the real classifier,
//! the real [`FlushQueue`] and the real [`CounterStore`] (over any
//! [`Sql`], SQLite natively) on a simulated clock, and the model counts what
//! Cloudflare bills for counting: Durable Object requests, SQLite rows
//! written and read, and Durable Object active time. It also checks that
//! every count sent is stored exactly once, and measures how many requests'
//! counts an isolate holds at a random moment (lost if it were evicted
//! then).
//!
//! The deployed shape, not the laptop's: a site's `site_rps` is spread over
//! `site_rps / isolate_rps` isolates, each with Poisson arrivals and its own
//! shard chosen at random, as the visitor worker's `pending.rs` does. The alert object's cron
//! tick reads every shard each minute and refreshes its series (the real
//! [`AlertStore::replace_series`]); each shard's alarm runs maintenance every
//! ten minutes; each isolate fetches its day's salt once.
//!
//! Native only (the model measures the store's time with `std::time`).

use crate::alert::alert_store::AlertStore;
use crate::config::{Config, MetricKind};
use crate::count::classify::{Classifier, RequestFacts, ResponseFacts};
use crate::count::flush_queue::{Driver, FlushPolicy, FlushQueue, Step};
use crate::count::tally::Row;
use crate::history::synthetic::Rng;
use crate::report::series::ShardQuery;
use crate::sql::{Sql, SqlOutput, SqlValue};
use crate::time::Resolution;
use crate::time::BUCKET_SECS;
use crate::windows::counter_store::{CounterStore, StoreLimits};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

/// Cloudflare's prices for what counting uses (Workers Paid plan), as
/// published on the Durable Objects and Workers pricing pages, read on
/// 2026-11-30. Included amounts are per month and per account.
pub mod prices {
    /// Durable Object requests (HTTP, RPC, alarm invocations): $ per million.
    pub const DO_REQUEST_PER_M: f64 = 0.15;
    pub const DO_REQUESTS_INCLUDED: f64 = 1_000_000.0;
    /// Durable Object duration: $ per million GB-s (objects are 128 MB).
    pub const DO_GB_S_PER_M: f64 = 12.50;
    pub const DO_GB_S_INCLUDED: f64 = 400_000.0;
    pub const DO_MEMORY_GB: f64 = 0.128;
    /// SQLite rows written (inserted, updated or deleted): $ per million.
    pub const ROW_WRITTEN_PER_M: f64 = 1.00;
    pub const ROWS_WRITTEN_INCLUDED: f64 = 50_000_000.0;
    /// SQLite rows read: $ per million.
    pub const ROW_READ_PER_M: f64 = 0.001;
    pub const ROWS_READ_INCLUDED: f64 = 25_000_000_000.0;
    /// Workers requests, paid by any Worker in front of a site (bpm-edge
    /// or one that writes to Analytics Engine alike): $ per million.
    pub const WORKER_REQUEST_PER_M: f64 = 0.30;
    /// Workers CPU time: $ per million CPU milliseconds.
    pub const WORKER_CPU_MS_PER_M: f64 = 0.02;
    /// Workers Analytics Engine data points, the sampled alternative.
    pub const ANALYTICS_ENGINE_POINT_PER_M: f64 = 0.25;
}

/// Model assumptions that no local run can measure, stated once.
pub mod assumptions {
    /// Wall time a Durable Object request is billed beyond the store's own
    /// work (dispatch, input and output gates, the storage commit).
    pub const DO_REQUEST_OVERHEAD_MS: f64 = 2.0;
    /// The store's native time multiplied by this approximates its time as
    /// wasm in workerd.
    pub const WASM_SLOWDOWN: f64 = 3.0;
    /// Seconds in the month the $/month column is for.
    pub const MONTH_SECS: f64 = 30.0 * 86_400.0;
}

/// A traffic shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Requests per second to the whole site.
    pub site_rps: f64,
    /// Requests per second one isolate sees.
    pub isolate_rps: f64,
}

impl Profile {
    pub fn isolates(&self) -> usize {
        (self.site_rps / self.isolate_rps).ceil().max(1.0) as usize
    }
}

/// How a run is driven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunOptions {
    /// Simulated seconds of traffic (then the model lets every driver
    /// finish).
    pub secs: u64,
    pub seed: u64,
    /// Every shard refuses flushes in `[from, to)` simulated seconds.
    pub outage: Option<(u64, u64)>,
    /// Overrides `[storage] flush_interval_ms`.
    pub window_ms: Option<u64>,
    /// Every n-th batch a shard applied is reported to its isolate as a
    /// failure (the answer was lost): the isolate resends it.
    pub lose_every_nth_ack: Option<u64>,
}

/// What one run counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetReport {
    pub profile_site_rps: f64,
    pub profile_isolate_rps: f64,
    pub isolates: usize,
    pub secs: u64,
    /// Visitor requests, and those that hit at least one metric.
    pub requests: u64,
    pub counted_requests: u64,
    /// Flush attempts that reached a shard (failed ones included).
    pub flush_requests: u64,
    /// Reads by the alert tick, shard alarms, the alert object's own tick,
    /// salt fetches.
    pub other_do_requests: u64,
    pub shard_rows_written: u64,
    pub alert_rows_written: u64,
    /// Rows statements returned: a lower bound of rows read.
    pub rows_returned: u64,
    /// Billed Durable Object time (see [`assumptions`]), seconds.
    pub do_active_secs: f64,
    /// Hits sent by the classifier and found in storage afterwards, per
    /// metric (`count`, `bot`, `client` and `browser` rows).
    pub hits_sent: BTreeMap<String, u64>,
    pub hits_stored: BTreeMap<String, u64>,
    /// Mean requests whose counts one isolate holds (not yet acknowledged)
    /// at a random moment: lost if it is evicted then.
    pub at_risk_per_isolate: f64,
    /// Requests still not acknowledged when the run ended.
    pub left_in_isolates: u64,
}

impl FleetReport {
    pub fn exact(&self) -> bool {
        self.hits_sent == self.hits_stored
    }

    pub fn do_requests(&self) -> u64 {
        self.flush_requests + self.other_do_requests
    }

    pub fn rows_written(&self) -> u64 {
        self.shard_rows_written + self.alert_rows_written
    }

    pub fn rows_per_request(&self) -> f64 {
        self.rows_written() as f64 / self.requests.max(1) as f64
    }

    pub fn do_requests_per_request(&self) -> f64 {
        self.do_requests() as f64 / self.requests.max(1) as f64
    }

    /// $ per million visitor requests at marginal prices (no included
    /// amounts): what counting adds, Durable Objects and SQLite.
    pub fn dollars_per_million(&self) -> f64 {
        let per = 1_000_000.0 / self.requests.max(1) as f64;
        per * (self.do_requests() as f64 * prices::DO_REQUEST_PER_M
            + self.rows_written() as f64 * prices::ROW_WRITTEN_PER_M
            + self.rows_returned as f64 * prices::ROW_READ_PER_M
            + self.do_active_secs * prices::DO_MEMORY_GB * prices::DO_GB_S_PER_M)
            / 1_000_000.0
    }

    /// $ per month for counting at this rate all month, after the account's
    /// included amounts.
    pub fn dollars_per_month(&self) -> f64 {
        let scale = assumptions::MONTH_SECS / self.secs.max(1) as f64;
        let bill = |used: f64, included: f64, per_m: f64| {
            ((used * scale - included).max(0.0)) * per_m / 1_000_000.0
        };
        bill(
            self.do_requests() as f64,
            prices::DO_REQUESTS_INCLUDED,
            prices::DO_REQUEST_PER_M,
        ) + bill(
            self.rows_written() as f64,
            prices::ROWS_WRITTEN_INCLUDED,
            prices::ROW_WRITTEN_PER_M,
        ) + bill(
            self.rows_returned as f64,
            prices::ROWS_READ_INCLUDED,
            prices::ROW_READ_PER_M,
        ) + bill(
            self.do_active_secs * prices::DO_MEMORY_GB,
            prices::DO_GB_S_INCLUDED,
            prices::DO_GB_S_PER_M,
        )
    }

    /// Visitor requests per month at this rate.
    pub fn requests_per_month(&self) -> f64 {
        self.requests as f64 * assumptions::MONTH_SECS / self.secs.max(1) as f64
    }
}

/// Counts what statements write and return, around any connection.
pub struct Metered<S: Sql> {
    inner: S,
    written: Cell<u64>,
    returned: Cell<u64>,
}

impl<S: Sql> Metered<S> {
    /// Rows every statement so far inserted, updated or deleted.
    pub fn rows_written(&self) -> u64 {
        self.written.get()
    }

    pub fn new(inner: S) -> Self {
        Metered {
            inner,
            written: Cell::new(0),
            returned: Cell::new(0),
        }
    }
}

impl<S: Sql> Sql for &Metered<S> {
    fn exec(&self, sql: &str, binds: Vec<SqlValue>) -> Result<SqlOutput, String> {
        let out = self.inner.exec(sql, binds)?;
        self.written.set(self.written.get() + out.rows_written);
        self.returned
            .set(self.returned.get() + out.rows.len() as u64);
        Ok(out)
    }
}

/// The model's draws from the seeded generator of `synthetic`.
impl Rng {
    fn pick<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| *w).sum();
        let mut r = (self.next_u64() % u64::from(total.max(1))) as u32;
        for (item, w) in items {
            if r < *w {
                return item;
            }
            r -= w;
        }
        &items[items.len() - 1].0
    }

    /// Exponential inter-arrival time at `rate` per second, in ms.
    fn gap_ms(&mut self, rate: f64) -> u64 {
        let u = self.uniform();
        ((-u.ln() / rate) * 1000.0).max(1.0) as u64
    }
}

/// One simulated request: what the proxy hands the classifier.
struct SimRequest {
    method: &'static str,
    target: String,
    referer: Option<&'static str>,
    user_agent: &'static str,
    status: u16,
    location: Option<&'static str>,
}

const BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const CRAWLER: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const PAGES: &[(&str, u32)] = &[
    ("/", 4),
    ("/pricing", 3),
    ("/blog/launch", 2),
    ("/blog/pricing-update", 1),
];
const REFERRERS: &[(Option<&str>, u32)] = &[
    (Some("https://www.google.com/search?q=demo+shop"), 30),
    (Some("https://www.bing.com/search?q=demo+shop"), 6),
    (Some("https://duckduckgo.com/"), 5),
    (Some("https://t.co/a1b2c3"), 7),
    (Some("https://www.facebook.com/"), 5),
    (Some("https://www.linkedin.com/feed/"), 4),
    (Some("https://www.reddit.com/r/webdev/"), 4),
    (None, 35),
];
const CAMPAIGNS: &[(&str, u32)] = &[
    (
        "utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch",
        5,
    ),
    (
        "utm_source=twitter&utm_medium=social&utm_campaign=spring_launch",
        3,
    ),
    (
        "utm_source=partner&utm_medium=cpc&utm_campaign=partner_q2",
        2,
    ),
    (
        "utm_source=newsletter&utm_medium=email&utm_campaign=pricing_update",
        2,
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Crawler,
    Marketing,
    Campaign,
    LoginPage,
    LoginPost,
    Dashboard,
    Signup,
    Subscribe,
}

/// The demo's request mix (scripts/traffic.mjs), flattened to requests:
/// referral views with sources and UTM, login page views, logins (12 %
/// wrong password), dashboards, signups, subscriptions, 5 % crawlers.
const MIX: &[(Kind, u32)] = &[
    (Kind::Crawler, 73),
    (Kind::Marketing, 550),
    (Kind::Campaign, 100),
    (Kind::LoginPage, 350),
    (Kind::LoginPost, 200),
    (Kind::Dashboard, 176),
    (Kind::Signup, 60),
    (Kind::Subscribe, 20),
];

fn request(rng: &mut Rng) -> SimRequest {
    let page = |rng: &mut Rng| rng.pick(PAGES).to_string();
    let plain = |method, target: String, status| SimRequest {
        method,
        target,
        referer: None,
        user_agent: BROWSER,
        status,
        location: None,
    };
    match rng.pick(MIX) {
        Kind::Crawler => SimRequest {
            user_agent: CRAWLER,
            ..plain("GET", page(rng), 200)
        },
        Kind::Marketing => SimRequest {
            referer: *rng.pick(REFERRERS),
            ..plain("GET", page(rng), 200)
        },
        Kind::Campaign => {
            let target = format!("{}?{}", page(rng), rng.pick(CAMPAIGNS));
            plain("GET", target, 200)
        }
        Kind::LoginPage => plain("GET", "/login".into(), 200),
        Kind::LoginPost if rng.uniform() < 0.12 => plain("POST", "/login".into(), 200),
        Kind::LoginPost => SimRequest {
            location: Some("/dashboard"),
            ..plain("POST", "/login".into(), 302)
        },
        Kind::Dashboard => plain("GET", "/dashboard".into(), 200),
        Kind::Signup => plain("POST", "/signup".into(), 302),
        Kind::Subscribe => plain("POST", "/billing/subscribe".into(), 200),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival(usize),
    Wake(usize),
    Tick,
    Alarm,
    Sample,
}

struct SimIsolate {
    queue: FlushQueue,
    shard: usize,
}

/// Unix seconds where the simulated clock starts (a Monday 10:00 UTC).
pub const START_SECS: i64 = 1_763_373_600;

/// Runs `profile` over shards opened by `open_sql` (one call per shard and
/// one for the alert object) and reports what it cost.
pub fn simulate<S: Sql>(
    config: &Config,
    profile: Profile,
    options: RunOptions,
    mut open_sql: impl FnMut() -> S,
) -> FleetReport {
    let classifier = Classifier::new(config.clone());
    let storage = &config.storage;
    let limits = StoreLimits {
        max_values: storage.max_dimension_values as usize,
        retention_days: (
            storage.minute_retention_days,
            storage.hour_retention_days,
            storage.day_retention_days,
        ),
    };
    let policy = FlushPolicy {
        window_ms: options
            .window_ms
            .unwrap_or(u64::from(storage.flush_interval_ms)),
        max_requests: u64::from(storage.flush_max_events),
        max_values: limits.max_values,
    };
    let names: Vec<String> = config.metrics.iter().map(|m| m.name.clone()).collect();
    let counted: Vec<String> = config
        .metrics
        .iter()
        .filter(|m| matches!(m.kind, MetricKind::Counted { .. }))
        .map(|m| m.name.clone())
        .collect();
    let shard_conns: Vec<Metered<S>> = (0..storage.shards.max(1))
        .map(|_| Metered::new(open_sql()))
        .collect();
    let alert_conn = Metered::new(open_sql());
    let mut report = FleetReport {
        profile_site_rps: profile.site_rps,
        profile_isolate_rps: profile.isolate_rps,
        isolates: profile.isolates(),
        secs: options.secs,
        ..FleetReport::default()
    };
    let shards: Vec<CounterStore<&Metered<S>>> = shard_conns
        .iter()
        .filter_map(|c| CounterStore::open(c, limits).ok())
        .collect();
    let Ok(alerts) = AlertStore::open(&alert_conn) else {
        return report;
    };
    if shards.len() != shard_conns.len() {
        return report;
    }
    let mut rng = Rng(options.seed);
    let rate = profile.site_rps / report.isolates as f64;
    let mut isolates: Vec<SimIsolate> = (0..report.isolates)
        .map(|i| SimIsolate {
            queue: FlushQueue::new(policy, format!("iso{i}"), names.clone()),
            shard: (rng.next_u64() % shards.len() as u64) as usize,
        })
        .collect();
    // One salt fetch per isolate (the run is shorter than a day).
    report.other_do_requests += report.isolates as u64;
    let start_ms = START_SECS as u64 * 1000;
    let end_ms = start_ms + options.secs * 1000;
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, at: u64, e: Event| {
        seq += 1;
        events.push(Reverse((at, seq, e)));
    };
    for i in 0..isolates.len() {
        let at = start_ms + rng.gap_ms(rate);
        push(&mut events, at, Event::Arrival(i));
    }
    push(&mut events, start_ms + 60_000, Event::Tick);
    push(&mut events, start_ms + 600_000, Event::Alarm);
    push(&mut events, start_ms + 5_000, Event::Sample);
    let mut drivers: Vec<Option<(usize, Driver)>> = Vec::new();
    let mut hits = Vec::new();
    let mut samples = 0u64;
    let mut at_risk_sum = 0u64;
    let charge = |report: &mut FleetReport, started: Instant| {
        report.do_active_secs += started.elapsed().as_secs_f64() * assumptions::WASM_SLOWDOWN
            + assumptions::DO_REQUEST_OVERHEAD_MS / 1000.0;
    };
    // Drain: after the traffic stops, let drivers finish (a minute).
    let drain_until = end_ms + 60_000;
    while let Some(Reverse((now, _, event))) = events.pop() {
        if now > drain_until {
            break;
        }
        let secs = (now / 1000) as i64;
        match event {
            Event::Arrival(i) => {
                if now >= end_ms {
                    continue;
                }
                let req = request(&mut rng);
                report.requests += 1;
                hits.clear();
                classifier.classify(
                    &RequestFacts {
                        method: req.method,
                        target: req.target.as_bytes(),
                        host: "www.example.com",
                        referer: req.referer.map(str::as_bytes),
                        user_agent: Some(req.user_agent.as_bytes()),
                        cf: Default::default(),
                    },
                    &ResponseFacts {
                        status: req.status,
                        location: req.location,
                        latency_ms: 40.0,
                    },
                    &mut hits,
                );
                if !hits.is_empty() {
                    report.counted_requests += 1;
                    for hit in &hits {
                        *report
                            .hits_sent
                            .entry(names[hit.metric].clone())
                            .or_insert(0) += 1;
                    }
                    let visitor = rng.next_u64() % 20_000;
                    if let Some(d) = isolates[i].queue.record(now, secs, &hits, Some(visitor)) {
                        drivers.push(Some((i, d)));
                        push(&mut events, now, Event::Wake(drivers.len() - 1));
                    }
                }
                let next = now + rng.gap_ms(rate);
                push(&mut events, next, Event::Arrival(i));
            }
            Event::Wake(k) => {
                let Some((i, driver)) = drivers.get(k).copied().flatten() else {
                    continue;
                };
                loop {
                    match isolates[i].queue.step(&driver, now) {
                        Step::Sleep(until) => {
                            push(&mut events, until, Event::Wake(k));
                            break;
                        }
                        Step::Send(flush) => {
                            report.flush_requests += 1;
                            let down = options.outage.is_some_and(|(a, b)| {
                                let t = (now - start_ms) / 1000;
                                t >= a && t < b
                            });
                            let started = Instant::now();
                            let id = flush.id.clone();
                            let ok =
                                !down && shards[isolates[i].shard].apply_flush(flush, secs).is_ok();
                            charge(&mut report, started);
                            let ok = ok
                                && options.lose_every_nth_ack.is_none_or(|n| {
                                    !report.flush_requests.is_multiple_of(n.max(1))
                                });
                            if ok {
                                isolates[i].queue.acknowledged(&id);
                            } else {
                                isolates[i].queue.failed(&id, now);
                            }
                        }
                        Step::Done | Step::OutOfTime => {
                            drivers[k] = None;
                            break;
                        }
                    }
                }
            }
            Event::Tick => {
                // The alert object's cron tick: read the last two hours of
                // minute counts from every shard, store changed buckets.
                report.other_do_requests += 1;
                let started = Instant::now();
                let complete = (secs - 45).div_euclid(BUCKET_SECS) * BUCKET_SECS;
                let from = (complete - 2 * 3600).div_euclid(BUCKET_SECS) * BUCKET_SECS;
                let query = ShardQuery {
                    step: Resolution::Minute,
                    from,
                    to: complete + BUCKET_SECS,
                    metrics: counted.clone(),
                    dims: vec!["count".into()],
                };
                let mut per_metric: BTreeMap<&str, BTreeMap<i64, i64>> = counted
                    .iter()
                    .map(|m| (m.as_str(), BTreeMap::new()))
                    .collect();
                for shard in &shards {
                    report.other_do_requests += 1;
                    let shard_started = Instant::now();
                    for r in shard.read(&query).unwrap_or_default() {
                        if let Some(m) = per_metric.get_mut(r.metric()) {
                            let t = r.t().div_euclid(BUCKET_SECS) * BUCKET_SECS;
                            *m.entry(t).or_insert(0) += r.n() as i64;
                        }
                    }
                    charge(&mut report, shard_started);
                }
                for (metric, counts) in &per_metric {
                    let _ = alerts.replace_series(metric, from, complete, counts);
                }
                charge(&mut report, started);
                push(&mut events, now + 60_000, Event::Tick);
            }
            Event::Alarm => {
                for shard in &shards {
                    report.other_do_requests += 1;
                    let started = Instant::now();
                    let _ = shard.maintain(secs);
                    charge(&mut report, started);
                }
                push(&mut events, now + 600_000, Event::Alarm);
            }
            Event::Sample => {
                if now < end_ms {
                    samples += isolates.len() as u64;
                    at_risk_sum += isolates.iter().map(|s| s.queue.at_risk()).sum::<u64>();
                    push(&mut events, now + 5_000, Event::Sample);
                }
            }
        }
    }
    report.left_in_isolates = isolates.iter().map(|s| s.queue.at_risk()).sum();
    report.at_risk_per_isolate = at_risk_sum as f64 / samples.max(1) as f64;
    // What storage holds: every counted metric's count and not-counted rows.
    let everything = ShardQuery {
        step: Resolution::Day,
        from: START_SECS - 86_400,
        to: START_SECS + options.secs as i64 + 86_400,
        metrics: counted,
        dims: ["count", "bot", "client", "browser"]
            .map(String::from)
            .to_vec(),
    };
    for shard in &shards {
        for r in shard.read(&everything).unwrap_or_default() {
            *report
                .hits_stored
                .entry(r.metric().to_string())
                .or_insert(0) += Row::n(&r);
        }
    }
    report.shard_rows_written = shard_conns.iter().map(|c| c.written.get()).sum();
    report.alert_rows_written = alert_conn.written.get();
    report.rows_returned =
        shard_conns.iter().map(|c| c.returned.get()).sum::<u64>() + alert_conn.returned.get();
    report
}
