//! `SiteAlerts`, the Durable Object that keeps a site's alerts: it refreshes
//! the detector's 5-minute series (stored), the last minutes (in memory,
//! for the fast path) and the `by` rules' per-value series (in memory,
//! rebuilt daily from hour rows, see `value_series`) from the counter
//! shards, runs the [`AlertBook`] at the
//! instants `ticks` plans on every tick of the cron trigger, stores states, history
//! and silences, and delivers the webhook outbox from its alarm.
//!
//! Invariants: a notification is written to the outbox (with its final
//! `webhook-id` and body) in the same storage transaction as the rule
//! record that says it was sent, so a crash never loses or duplicates it;
//! the alarm only ever sends outbox rows, oldest first per receiver; nothing
//! is queued for a receiver a 410 disabled (the core's `dispatch` skips it)
//! until `POST /receivers/{name}/enable` re-enables it.

use crate::durable_sql::DurableSql;
use bpm_edge::alert::alert_book::{
    counted_metrics, silence_history, AlertBook, HistoryEntry, RuleRecord,
};
use bpm_edge::alert::alert_store::{
    series_set, AlertStore, OutboxItem, Posted, SERIES_RETENTION_SECS,
};
use bpm_edge::alert::annotation::{AnnotationQuery, AnnotationRequest, DEPLOY_WINDOW_SECS};
use bpm_edge::alert::dispatch::{dispatch, Dispatch, Notice};
use bpm_edge::alert::endpoint::{
    enable_route, endpoint, format_of, gone_reason, is_receiver, Endpoint, EndpointError,
};
use bpm_edge::alert::event::AfterDeploy;
use bpm_edge::alert::event::AlertEvent;
use bpm_edge::alert::health::health_change;
use bpm_edge::alert::health_reads::HealthReads;
use bpm_edge::alert::outbox::{self, AttemptResult, Delivery, Verdict};
use bpm_edge::alert::payload::{self, Destination};
use bpm_edge::alert::silence::{silence_id, SilenceRequest};
use bpm_edge::alert::tick_series::{
    add_imported, complete_buckets_to, instant_series, merge_buckets, refresh_due, split_rules,
    value_refresh, BucketCache, BuildReads, MinuteCounts, ValueRefresh, Watches,
};
use bpm_edge::alert::ticks::{
    bucket_rows, evaluation_instants, last_complete_bucket, last_complete_minute, refresh_range,
};
use bpm_edge::config::rules::{AlertRule, Split};
use bpm_edge::config::{Config, MetricKind, Stage};
use bpm_edge::count::tally::Row;
use bpm_edge::digest::preview::{DigestQuery, PreviewFormat, PreviewPeriod};
use bpm_edge::digest::schedule::{due, latest, DigestPeriod};
use bpm_edge::digest::scorecard::{
    self, visitor_hours, ReferralRows, Scorecard, REFERRAL_DIMENSIONS,
};
use bpm_edge::digest::{delivery, message};
use bpm_edge::history::simulate::{simulate, SimulateRequest};
use bpm_edge::report::alerts::{
    self as alerts_report, EnableAnswer, HistoryPage, HistoryQuery, SilenceList, SilenceView,
    StoredAlerts, TickAnswer,
};
use bpm_edge::report::overview::{self, OverviewQuery};
use bpm_edge::report::series::ShardQuery;
use bpm_edge::time::Resolution;
use bpm_edge::windows::sketch::VisitorSketch;
use bpm_edge_shell::{env_string, now_secs, random_u64, shards};
use futures_util::future::{join, join_all, select, Either};
use serde::Deserialize;
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;
use worker::{
    durable_object, AbortController, DurableObject, Env, Fetch, Headers, Method, Request,
    RequestInit, RequestRedirect, Response, Result, State,
};

/// The Durable Object binding in `wrangler.toml`.
pub const BINDING: &str = "BPM_ALERTS";
/// The body of `POST /tick`.
#[derive(Deserialize)]
struct Tick {
    /// Unix seconds (the cron trigger's scheduled time).
    now: i64,
}

/// The body of `POST /backfill`: counts per minute.
#[derive(Deserialize)]
struct Backfill {
    minutes: Vec<(String, i64, i64)>,
}

/// What the synchronous part of a tick decided.
struct Judged {
    notices: Vec<Notice>,
    /// [`AlertBook::firing_group`] after the notices.
    group: Vec<Notice>,
    history: Vec<HistoryEntry>,
    evaluated: bool,
    eval_ms: f64,
}

#[durable_object]
pub struct SiteAlerts {
    state: State,
    env: Env,
    store: std::result::Result<AlertStore<DurableSql>, String>,
    /// The stored series, mirrored in memory.
    series: RefCell<Option<BucketCache>>,
    /// The last complete minutes per metric (`ticks::bucket_rows`), re-read
    /// on every tick; never stored.
    minutes: RefCell<MinuteCounts>,
    book: RefCell<Option<AlertBook>>,
    /// The `by` rules' per-value series; `None` until built (first tick,
    /// and again after a backfill).
    watches: RefCell<Option<Watches>>,
}

impl DurableObject for SiteAlerts {
    fn new(state: State, env: Env) -> Self {
        let store = AlertStore::open(DurableSql::new(state.storage())).map_err(|e| e.to_string());
        if let Err(e) = &store {
            worker::console_error!("bpm-edge: alert storage unusable: {e}");
        }
        SiteAlerts {
            state,
            env,
            store,
            series: RefCell::new(None),
            minutes: RefCell::new(BTreeMap::new()),
            book: RefCell::new(None),
            watches: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let (store, config) = match (&self.store, bpm_edge_shell::site_of_object(&self.state)) {
            (Ok(s), Some(c)) => (s, c),
            (Err(e), _) => return Response::error(format!("alert storage unusable: {e}"), 500),
            (_, None) => {
                return Response::error(
                    "no site of the compiled configuration has this object",
                    500,
                )
            }
        };
        let config = config.config();
        let path = req.path();
        let now = now_secs();
        let result: Answer = match (req.method(), path.as_str()) {
            (Method::Post, "/tick") => {
                let tick: Tick = req.json().await?;
                self.tick(store, config, tick.now).await
            }
            (Method::Get, "/alerts") => self.alerts(store, config, now),
            (Method::Get, "/overview") => {
                let url = req.url()?;
                match OverviewQuery::parse(url.query().unwrap_or(""), config) {
                    Ok(q) => self.overview(store, config, &q, now).await,
                    Err(e) => Err(Failure::BadRequest(e.to_string())),
                }
            }
            (Method::Get, "/history") => {
                let url = req.url()?;
                let query = HistoryQuery::parse(url.query().unwrap_or(""));
                store
                    .history(query.limit, query.rule.as_deref())
                    .map_err(internal)
                    .and_then(|h| serde_json::to_value(HistoryPage::new(&h)).map_err(internal))
            }
            (Method::Get, "/silences") => store.silences().map_err(internal).and_then(|list| {
                serde_json::to_value(SilenceList::new(&list, now)).map_err(internal)
            }),
            (Method::Post, "/silences") => {
                let body: SilenceRequest = match req.json().await {
                    Ok(b) => b,
                    Err(e) => return json_status(400, &json!({ "error": format!("body: {e}") })),
                };
                match body.into_silence(config, silence_id(random_u64()), now) {
                    // The history keeps the silence once it is pruned.
                    Ok(s) => match store.add_silence(&s).and_then(|()| {
                        store.append_history(
                            &[silence_history(config, &s, "silence created", now)],
                            config.alerting.history_limit,
                        )
                    }) {
                        Ok(()) => return json_status(201, &SilenceView::listed(&s, now)),
                        Err(e) => Err(internal(e)),
                    },
                    Err(e) => Err(Failure::BadRequest(e.to_string())),
                }
            }
            (Method::Delete, p) if p.starts_with("/silences/") => {
                let id = p.trim_start_matches("/silences/");
                let deleted = store.take_silence(id).and_then(|taken| {
                    let Some(s) = taken else { return Ok(false) };
                    store.append_history(
                        &[silence_history(config, &s, "silence deleted", now)],
                        config.alerting.history_limit,
                    )?;
                    Ok(true)
                });
                match deleted {
                    Ok(true) => Ok(json!({ "deleted": id })),
                    Ok(false) => Err(Failure::NotFound(format!("no silence {id:?}"))),
                    Err(e) => Err(internal(e)),
                }
            }
            (Method::Post, p) if enabled_receiver(p).is_some() => {
                let name = enabled_receiver(p).unwrap_or_default();
                self.enable_receiver(store, config, name, now).await
            }
            (Method::Post, "/annotations") => {
                let text = req.text().await?;
                let posted = serde_json::from_str::<AnnotationRequest>(&text)
                    .map_err(|e| Failure::BadRequest(format!("body: {e}")))
                    .and_then(|r| {
                        r.into_annotation(now)
                            .map_err(|e| Failure::BadRequest(e.to_string()))
                    })
                    .and_then(|a| {
                        let posted = store.add_annotation(&a).map_err(internal)?;
                        Ok((a, posted))
                    });
                match posted {
                    Ok((a, Posted::Created)) => return json_status(201, &a.view()),
                    Ok((a, Posted::Exists)) => serde_json::to_value(a.view()).map_err(internal),
                    Ok((a, Posted::Conflict)) => {
                        return json_status(
                            409,
                            &json!({ "error": format!("another annotation has the id {:?}", a.id) }),
                        )
                    }
                    Err(e) => Err(e),
                }
            }
            (Method::Get, "/annotations") => {
                let url = req.url()?;
                match AnnotationQuery::parse(url.query().unwrap_or(""), now) {
                    Ok(q) => store
                        .annotations(q.from, q.to)
                        .map_err(internal)
                        .map(|list| {
                            let views: Vec<_> = list
                                .iter()
                                .filter(|a| q.wants(a))
                                .map(|a| a.view())
                                .collect();
                            json!({ "annotations": views })
                        }),
                    Err(e) => Err(Failure::BadRequest(e.to_string())),
                }
            }
            (Method::Delete, p) if p.starts_with("/annotations/") => {
                let id = p.trim_start_matches("/annotations/");
                match store.delete_annotation(id) {
                    Ok(true) => Ok(json!({ "deleted": id })),
                    Ok(false) => Err(Failure::NotFound(format!("no annotation {id:?}"))),
                    Err(e) => Err(internal(e)),
                }
            }
            (Method::Get, "/digest") => {
                let url = req.url()?;
                match DigestQuery::parse(url.query().unwrap_or("")) {
                    Ok(q) => self.digest(store, config, q, now).await,
                    Err(e) => Err(Failure::BadRequest(e.to_string())),
                }
            }
            (Method::Post, "/simulate") => {
                // serde_json itself, so unknown fields are refused.
                let text = req.text().await?;
                let body: SimulateRequest = match serde_json::from_str(&text) {
                    Ok(b) => b,
                    Err(e) => return json_status(400, &json!({ "error": format!("body: {e}") })),
                };
                match body.edited_rule(config) {
                    Ok(rule) => store
                        .load_series(now - SERIES_RETENTION_SECS)
                        .map_err(internal)
                        .and_then(|series| {
                            let days = body.judged_days();
                            serde_json::to_value(simulate(config, rule, &series, days, now))
                                .map_err(internal)
                        }),
                    Err(e) if e.status() == 404 => Err(Failure::NotFound(e.to_string())),
                    Err(e) => Err(Failure::BadRequest(e.to_string())),
                }
            }
            (Method::Post, "/backfill") => {
                let b: Backfill = req.json().await?;
                match store.import(&b.minutes) {
                    Ok(added) => {
                        if let Some(cache) = self.series.borrow_mut().as_mut() {
                            add_imported(cache, &added);
                        }
                        // The shards got the same lines with their
                        // dimensions: re-read the per-value series.
                        if !added.is_empty() {
                            *self.watches.borrow_mut() = None;
                        }
                        Ok(json!({ "applied": !added.is_empty() }))
                    }
                    Err(e) => Err(internal(e)),
                }
            }
            _ => Err(Failure::NotFound("not found".into())),
        };
        match result {
            Ok(v) => json_status(200, &v),
            Err(failure) => {
                if failure.status() >= 500 {
                    worker::console_error!("bpm-edge: alerts: {failure}");
                }
                json_status(failure.status(), &json!({ "error": failure.to_string() }))
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let (Ok(store), Some(c)) = (&self.store, bpm_edge_shell::site_of_object(&self.state))
        else {
            return Response::ok("");
        };
        if let Err(e) = self.deliver_due(store, c.config()).await {
            worker::console_error!("bpm-edge: webhook delivery: {e}");
        }
        self.schedule_alarm(store).await;
        Response::ok("")
    }
}

/// Names, in each firing event, the deploy its drop began after (within an
/// hour; see `AfterDeploy::find`). Annotations that cannot be read name
/// nothing: the alert goes out all the same.
fn name_deploys(store: &AlertStore<DurableSql>, notices: &mut [Notice]) {
    let firing = || {
        notices
            .iter()
            .filter(|n| n.event.status == bpm_edge::alert::event::EventStatus::Firing)
    };
    let (Some(earliest), Some(latest)) = (
        firing().map(|n| n.event.drop_began()).min(),
        firing().map(|n| n.event.at).max(),
    ) else {
        return;
    };
    let annotations = match store.annotations(earliest - DEPLOY_WINDOW_SECS, latest + 1) {
        Ok(a) => a,
        Err(e) => {
            worker::console_error!("bpm-edge: reading annotations for an alert: {e}");
            return;
        }
    };
    for n in notices.iter_mut() {
        n.event.after_deploy = AfterDeploy::find(&annotations, &n.event);
    }
}

/// Why a request to the alert object failed: the status it answers, and
/// its message as the `error`.
#[derive(Debug)]
enum Failure {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 404: no such route, silence or receiver.
    NotFound(String),
    /// 500: its storage failed, or the book is unavailable.
    Internal(String),
    /// 503: the counter shards could not be read.
    ShardsUnavailable(String),
}

impl Failure {
    fn status(&self) -> u16 {
        match self {
            Failure::BadRequest(_) => 400,
            Failure::NotFound(_) => 404,
            Failure::Internal(_) => 500,
            Failure::ShardsUnavailable(_) => 503,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BadRequest(m)
            | Failure::NotFound(m)
            | Failure::Internal(m)
            | Failure::ShardsUnavailable(m) => f.write_str(m),
        }
    }
}

/// What a request to the alert object answers with a `200`, or why not.
type Answer<T = serde_json::Value> = std::result::Result<T, Failure>;

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

impl SiteAlerts {
    /// One tick: refresh the series, evaluate if a new bucket completed,
    /// decide notifications, queue them, and wake the outbox.
    async fn tick(&self, store: &AlertStore<DurableSql>, config: &Config, now: i64) -> Answer {
        let at = last_complete_bucket(now);
        let metrics = counted_metrics(config);
        self.refresh(store, config, &metrics, last_complete_minute(now))
            .await?;
        // The book says which values have open alerts (kept watched).
        self.load_book(store, config, at)?;
        // The `by` rules' series failing to refresh must not hold up the
        // other rules: their instances skip this tick (see `judge`).
        if let Err(e) = self.refresh_values(config, last_complete_minute(now)).await {
            worker::console_error!("bpm-edge: refreshing the by rules' series: {e}");
        }
        let Judged {
            mut notices,
            group,
            history,
            evaluated,
            eval_ms,
        } = self.judge(store, config, &metrics, at, now)?;
        for n in notices.iter_mut() {
            if n.event.status == bpm_edge::alert::event::EventStatus::Firing {
                n.event.health = self.health(config, &n.event).await;
                n.event.explanation = self.explanation(config, &n.event).await;
                if let Some(book) = self.book.borrow_mut().as_mut() {
                    book.explained(&n.event);
                }
            }
        }
        name_deploys(store, &mut notices);
        // The outbox runs on real time even when a tick is driven at another
        // instant (`wrangler dev --test-scheduled` with `time=`).
        let queued = self
            .queue(store, config, &notices, &group, now_secs())
            .map_err(internal)?;
        if let Some(book) = self.book.borrow_mut().as_mut() {
            store.save_records(book.records()).map_err(internal)?;
            store
                .delete_records(&book.take_dropped())
                .map_err(internal)?;
        }
        store
            .append_history(&history, config.alerting.history_limit)
            .map_err(internal)?;
        store
            .set_meta("last_evaluation_ms", &format!("{eval_ms:.1}"))
            .map_err(internal)?;
        self.maybe_prune(store, now);
        // The digest must not hold up alerting: a failure is logged, and
        // the next tick tries again.
        let digests = match self.send_digest(store, config, now).await {
            Ok(n) => n,
            Err(e) => {
                worker::console_error!("bpm-edge: digest: {e}");
                0
            }
        };
        if queued + digests > 0 {
            self.schedule_alarm(store).await;
        }
        serde_json::to_value(TickAnswer::new(
            now,
            at,
            evaluated,
            eval_ms,
            history.len(),
            queued,
        ))
        .map_err(internal)
    }

    /// Builds the alert book from the stored records unless it is loaded;
    /// rules without a record start `learning` at `at`.
    fn load_book(&self, store: &AlertStore<DurableSql>, config: &Config, at: i64) -> Answer<()> {
        if self.book.borrow().is_none() {
            let book = AlertBook::new(config, store.records().map_err(internal)?, at);
            *self.book.borrow_mut() = Some(book);
        }
        Ok(())
    }

    /// The synchronous part of a tick: evaluates the book if a new bucket
    /// completed and decides the notifications.
    fn judge(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        metrics: &[String],
        at: i64,
        now: i64,
    ) -> Answer<Judged> {
        let started = worker::js_sys::Date::now();
        let last_at: Option<i64> = store.meta_time("last_at").map_err(internal)?;
        let mut history: Vec<HistoryEntry> = Vec::new();
        let instants = evaluation_instants(last_at, now);
        let evaluated = !instants.is_empty();
        self.load_book(store, config, at)?;
        let mut book_slot = self.book.borrow_mut();
        let Some(book) = book_slot.as_mut() else {
            return Err(Failure::Internal("alert book unavailable".into()));
        };
        for &t in &instants {
            let series = self.with_cache(|cache| {
                let watches = self.watches.borrow();
                instant_series(cache, &self.minutes.borrow(), watches.as_ref(), metrics, t)
            });
            history.extend(book.evaluate(config, &series, t, &config.time));
            store
                .set_meta("last_at", &t.to_string())
                .map_err(internal)?;
        }
        let eval_ms = worker::js_sys::Date::now() - started;
        let silences = store.silences().map_err(internal)?;
        let (notices, notes) = book.notify(config, &silences, now);
        let group = book.firing_group(config, &silences, now);
        history.extend(notes);
        Ok(Judged {
            notices,
            group,
            history,
            evaluated,
            eval_ms,
        })
    }

    /// Re-reads recent minute counts from the counter shards, up to the
    /// last complete `minute`, into the 5-minute series (all retained
    /// minutes on the first tick) and the fast path's minutes.
    async fn refresh(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        metrics: &[String],
        minute: i64,
    ) -> Answer<()> {
        if self.series.borrow().is_none() {
            let loaded = store
                .load_series(minute - SERIES_RETENTION_SECS)
                .map_err(internal)?;
            *self.series.borrow_mut() = Some(loaded);
        }
        if metrics.is_empty() {
            return Ok(());
        }
        let refreshed_to: Option<i64> = store.meta_time("refreshed_to").map_err(internal)?;
        let (from, to) = refresh_range(refreshed_to, minute, config.storage.minute_retention_days);
        let query = ShardQuery {
            step: Resolution::Minute,
            from,
            to,
            metrics: metrics.to_vec(),
            dims: vec!["count".into()],
        };
        let rows = shards::read_rows(&self.env, config, &query)
            .await
            .map_err(Failure::ShardsUnavailable)?;
        let bucketed = bucket_rows(
            rows.iter()
                .map(|r| (r.metric(), r.t(), i64::try_from(r.n()).unwrap_or(i64::MAX))),
            metrics,
            minute,
        );
        // Only complete buckets are stored; the one in progress is re-read
        // on the next tick.
        let complete_to = complete_buckets_to(minute);
        let mut cache = self.series.borrow_mut();
        for (metric, counts) in &bucketed.buckets {
            store
                .replace_series(metric, from, complete_to, counts)
                .map_err(internal)?;
            if let Some(c) = cache.as_mut() {
                merge_buckets(c, metric, counts, from, complete_to);
            }
        }
        *self.minutes.borrow_mut() = bucketed.minutes;
        store
            .set_meta("refreshed_to", &complete_to.to_string())
            .map_err(internal)?;
        Ok(())
    }

    /// Builds the `by` rules' per-value series (on the first tick, after a
    /// backfill, and on a new day), else re-reads their recent minutes, as
    /// [`value_refresh`] decides; a build reads what [`BuildReads`] says.
    async fn refresh_values(&self, config: &Config, minute: i64) -> Answer<()> {
        let rules = split_rules(config);
        if rules.is_empty() {
            return Ok(());
        }
        let plan = value_refresh(
            self.watches.borrow().as_ref(),
            minute,
            config.storage.minute_retention_days,
        );
        match plan {
            ValueRefresh::Reread { from } => {
                let mut read = Vec::new();
                for &(rule, split) in &rules {
                    let rows = self
                        .split_rows(config, Resolution::Minute, (rule, split), (from, minute))
                        .await?;
                    read.push((rule.name.clone(), rows));
                }
                if let Some(w) = self.watches.borrow_mut().as_mut() {
                    w.reread(read, from, minute);
                }
            }
            ValueRefresh::Build { day } => {
                let mut series = BTreeMap::new();
                for &(rule, split) in &rules {
                    let reads = BuildReads::new(rule, minute);
                    let hours = self
                        .split_rows(config, Resolution::Hour, (rule, split), reads.hours)
                        .await?;
                    let minutes = self
                        .split_rows(config, Resolution::Minute, (rule, split), reads.minutes)
                        .await?;
                    let open = self
                        .book
                        .borrow()
                        .as_ref()
                        .map(|b| b.open_values(&rule.name))
                        .unwrap_or_default();
                    let values = reads.value_series(split, &hours, &minutes, &open);
                    series.insert(rule.name.clone(), values);
                }
                *self.watches.borrow_mut() = Some(Watches {
                    built_day: day,
                    refreshed_to: minute,
                    series,
                });
            }
        }
        Ok(())
    }

    /// The digest of the latest period due (or the one before), as it
    /// would go out.
    async fn digest(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        q: DigestQuery,
        now: i64,
    ) -> Answer {
        let zone = &config.time;
        let period = match q.period {
            PreviewPeriod::Latest => latest(&config.digest, zone, now),
            PreviewPeriod::Previous => latest(&config.digest, zone, now).previous(zone),
            PreviewPeriod::Sent => {
                let sent = store.last_digest().map_err(internal)?;
                // Before the first: `null`, not an error (the dashboard
                // then shows the preview).
                let Some(json) = sent else {
                    return Ok(serde_json::Value::Null);
                };
                return serde_json::from_str(&json).map_err(internal);
            }
        };
        let card = self.scorecard(store, config, period, now).await?;
        match q.format {
            PreviewFormat::Json => {
                serde_json::to_value(message::json(&card, zone, &period.id(&config.site.name)))
                    .map_err(internal)
            }
            PreviewFormat::Slack => Ok(message::slack(&card, zone)),
        }
    }

    /// The scorecard of `period`: its numbers from the stored series,
    /// history and annotations, its referral rows (hours) from the shards.
    async fn scorecard(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        period: DigestPeriod,
        now: i64,
    ) -> Answer<Scorecard> {
        let zone = &config.time;
        let before = period.previous(zone);
        let buckets = store
            .load_series(now - SERIES_RETENTION_SECS)
            .map_err(internal)?;
        // Newest first as stored: the scorecard takes them in time order.
        let mut history = store.history(u32::MAX, None).map_err(internal)?;
        history.reverse();
        let annotations = store
            .annotations(period.from, period.to)
            .map_err(internal)?;
        let dims: Vec<String> = REFERRAL_DIMENSIONS.iter().map(|d| d.to_string()).collect();
        let mut referrals = ReferralRows::default();
        let referral_metrics = config
            .metrics
            .iter()
            .filter(|m| m.stage == Stage::Referral && matches!(m.kind, MetricKind::Counted { .. }));
        for m in referral_metrics {
            for (range, rows) in [
                ((period.from, period.to), &mut referrals.now),
                ((before.from, before.to), &mut referrals.before),
            ] {
                let read = self
                    .read_rows(config, Resolution::Hour, &m.name, &dims, range)
                    .await
                    .map_err(Failure::ShardsUnavailable)?;
                rows.extend(read);
            }
        }
        let (now_hours, before_hours) = (visitor_hours(&period), visitor_hours(&before));
        let mut card = scorecard::build(
            config,
            zone,
            period,
            &buckets,
            &history,
            &referrals,
            &annotations,
        );
        // Unique visitors of each counted BPM, both periods at once; a BPM
        // whose sketches cannot be read shows none, the rest stands.
        let env = &self.env;
        let visitors = config
            .metrics
            .iter()
            .filter(|m| matches!(m.kind, MetricKind::Counted { .. }))
            .map(|m| async move {
                let read = |(from, to)| shards::read_uniques(env, config, &m.name, from, to);
                let (now, before) = join(read(now_hours), read(before_hours)).await;
                let count =
                    |r: std::result::Result<VisitorSketch, String>| r.ok().map(|s| s.count());
                (m.name.as_str(), count(now), count(before))
            });
        for (metric, now, before) in join_all(visitors).await {
            card.set_visitors(metric, now, before);
        }
        Ok(card)
    }

    /// Queues the digest due at `now` (the tick's time) to its receivers,
    /// once per period: the id is recorded in the same synchronous step as
    /// the messages are queued, so a second tick, or a restarted object,
    /// finds it recorded and queues nothing. Returns the messages queued.
    async fn send_digest(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        now: i64,
    ) -> Answer<usize> {
        let var = env_string(&self.env, "BPM_DIGEST_RECEIVERS");
        let (to, left_out) = delivery::receivers(config, var.as_deref());
        if to.is_empty() {
            return Ok(0);
        }
        let site = &config.site.name;
        let Some(period) = due(&config.digest, &config.time, now) else {
            return Ok(0);
        };
        let id = period.id(site);
        if store.digest_recorded(&id).map_err(internal)? {
            return Ok(0);
        }
        for (name, why) in left_out {
            worker::console_log!("bpm-edge: digest receiver {name:?} {why}; left out");
        }
        let card = self.scorecard(store, config, period, now).await?;
        let zone = &config.time;
        let json = serde_json::to_string(&message::json(&card, zone, &id)).map_err(internal)?;
        // Nothing awaited from here: the record and the messages are
        // written together.
        if !store
            .record_digest(&id, now_secs(), &json)
            .map_err(internal)?
        {
            return Ok(0);
        }
        let mut queued = 0;
        for receiver in to {
            if let Err(why) = self.endpoint(receiver) {
                worker::console_error!("bpm-edge: digest to {:?} skipped: {why}", receiver.name);
                continue;
            }
            if let Some(body) = delivery::body(&card, zone, &json, receiver) {
                store
                    .enqueue(&receiver.name, &id, &body, now_secs())
                    .map_err(internal)?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// `metric`'s rows of `dims` at `step` in `[from, to)`, from every shard.
    async fn read_rows(
        &self,
        config: &Config,
        step: Resolution,
        metric: &str,
        dims: &[String],
        (from, to): (i64, i64),
    ) -> std::result::Result<Vec<Row>, String> {
        let query = ShardQuery {
            step,
            from,
            to,
            metrics: vec![metric.to_string()],
            dims: dims.to_vec(),
        };
        shards::read_rows(&self.env, config, &query).await
    }

    /// The minute rows of `metric`'s `dims` in the `window` seconds before
    /// `to`.
    async fn window_rows(
        &self,
        config: &Config,
        metric: &str,
        dims: &[String],
        window: i64,
        to: i64,
    ) -> std::result::Result<Vec<Row>, String> {
        let range = (to - window, to);
        self.read_rows(config, Resolution::Minute, metric, dims, range)
            .await
    }

    /// A `by` rule's rows of its dimension at `step` in `range`.
    async fn split_rows(
        &self,
        config: &Config,
        step: Resolution,
        (rule, split): (&AlertRule, Split),
        range: (i64, i64),
    ) -> Answer<Vec<Row>> {
        let dims = [split.dimension.as_str().to_string()];
        self.read_rows(config, step, &rule.metric, &dims, range)
            .await
            .map_err(Failure::ShardsUnavailable)
    }

    /// Status mix and p95 of the event's metric in its window against the
    /// same window a week earlier (site time).
    async fn health(
        &self,
        config: &Config,
        e: &AlertEvent,
    ) -> Option<bpm_edge::alert::event::HealthChange> {
        let reads = HealthReads::new(config, &e.metric.name, e.window, e.at);
        let read = |to: i64| self.window_rows(config, &reads.metric, &reads.dims, reads.window, to);
        let [now_to, before_to] = reads.ends;
        let now_rows = read(now_to).await.ok()?;
        let before_rows = read(before_to).await.ok()?;
        Some(health_change(&now_rows, &before_rows))
    }

    /// Where the event's drop happened: its metric's dimensions in its
    /// window against the same window on each of the previous days (see
    /// `explain`), read concurrently. `None` when a read fails or nothing
    /// stands out.
    async fn explanation(
        &self,
        config: &Config,
        e: &AlertEvent,
    ) -> Option<bpm_edge::alert::explain::Explanation> {
        let (metric, dims) = bpm_edge::alert::explain::dimensions_of(config, &e.metric.name)?;
        let names: Vec<String> = dims.iter().map(|(d, _)| d.clone()).collect();
        let read = |to: i64| self.window_rows(config, &metric, &names, e.window, to);
        let ends = bpm_edge::alert::explain::reference_ends(e.at, &config.time);
        let (now, before) = futures_util::future::join(
            read(e.at),
            futures_util::future::join_all(ends.into_iter().map(read)),
        )
        .await;
        let before: Vec<_> = before
            .into_iter()
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        let counts =
            bpm_edge::alert::explain::dimension_counts(&metric, &dims, &now.ok()?, &before);
        Some(bpm_edge::alert::explain::explain(&counts)).filter(|x| !x.is_empty())
    }

    /// Renders each receiver's messages and writes them to the outbox, as
    /// [`dispatch`] routes them (nothing for a disabled receiver).
    fn queue(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        notices: &[Notice],
        group: &[Notice],
        now: i64,
    ) -> std::result::Result<usize, bpm_edge::sql::StoreError> {
        if notices.is_empty() {
            return Ok(0);
        }
        let external = config.dashboard_url();
        let disabled = store.disabled_names()?;
        let (routed, skipped) = dispatch(config, notices, group, &disabled);
        for name in skipped {
            worker::console_log!("bpm-edge: receiver {name:?} is disabled; nothing queued");
        }
        let mut queued = 0;
        for Dispatch {
            receiver,
            events,
            group,
        } in routed
        {
            let target = match self.endpoint(receiver) {
                Ok(t) => t,
                Err(why) => {
                    worker::console_error!("bpm-edge: receiver {:?} skipped: {why}", receiver.name);
                    continue;
                }
            };
            let dest = Destination {
                receiver: &receiver.name,
                format: receiver.format,
                routing_key: target.routing_key(),
                external_url: &external,
            };
            for m in payload::render_group(&dest, &events, &group) {
                store.enqueue(&receiver.name, &m.id, &m.body, now)?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Sends every due message (at most one per receiver, oldest first).
    async fn deliver_due(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
    ) -> std::result::Result<(), String> {
        let now = now_secs();
        let items = store.pending().map_err(|e| e.to_string())?;
        let disabled: Vec<String> = store.disabled_names().map_err(|e| e.to_string())?;
        let queue: Vec<_> = items.iter().map(|i| i.delivery.clone()).collect();
        let due: Vec<i64> = outbox::due(&queue, &disabled, now)
            .iter()
            .map(|d| d.seq)
            .collect();
        for seq in due {
            let Some(item) = items.iter().find(|i| i.delivery.seq == seq) else {
                continue;
            };
            let result = self.attempt(config, item).await;
            let mut d = item.delivery.clone();
            let verdict = d.record_for(format_of(config, &d.receiver), &result, now_secs());
            store.update_delivery(&d).map_err(|e| e.to_string())?;
            if verdict == Verdict::DisableReceiver {
                let reason = gone_reason(&d.message_id);
                let held = store
                    .disable_receiver(&d.receiver, now_secs(), &reason)
                    .map_err(|e| e.to_string())?;
                worker::console_error!(
                    "bpm-edge: receiver {:?} disabled ({reason}); {held} more message(s) held",
                    d.receiver
                );
            }
        }
        Ok(())
    }

    /// The receiver's endpoint, or why it cannot be sent to (a var or
    /// secret it needs is not set). Unusable receivers get nothing queued.
    fn endpoint<'r>(
        &self,
        receiver: &'r bpm_edge::config::rules::Receiver,
    ) -> std::result::Result<Endpoint<'r>, EndpointError> {
        endpoint(receiver, |name| env_string(&self.env, name))
    }

    /// One HTTP attempt: signed, no redirects followed, 15 s timeout.
    async fn attempt(&self, config: &Config, item: &OutboxItem) -> AttemptResult {
        let d = &item.delivery;
        let Some(receiver) = config.receiver(&d.receiver) else {
            return AttemptResult::NetworkError(format!(
                "receiver {:?} is no longer configured",
                d.receiver
            ));
        };
        let target = match self.endpoint(receiver) {
            Ok(t) => t,
            Err(why) => return AttemptResult::NetworkError(why.to_string()),
        };
        let headers = match target.headers(&d.message_id, now_secs(), &item.body) {
            Ok(list) => {
                let headers = Headers::new();
                for (name, value) in list {
                    let _ = headers.set(name, &value);
                }
                headers
            }
            Err(why) => return AttemptResult::NetworkError(why.to_string()),
        };
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual)
            .with_body(Some(worker::wasm_bindgen::JsValue::from_str(&item.body)));
        let req = match Request::new_with_init(&target.url, &init) {
            Ok(r) => r,
            Err(e) => return AttemptResult::NetworkError(format!("bad URL: {e}")),
        };
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let send = Box::pin(fetch.send_with_signal(&signal));
        let timer = Box::pin(worker::Delay::from(Duration::from_millis(
            outbox::TIMEOUT_MS,
        )));
        let outcome = select(send, timer).await;
        let result = match outcome {
            Either::Left((Ok(resp), _)) => {
                let retry_after = resp.headers().get("retry-after").ok().flatten();
                AttemptResult::Status {
                    code: resp.status_code(),
                    retry_after,
                }
            }
            Either::Left((Err(e), _)) => AttemptResult::NetworkError(e.to_string()),
            Either::Right(_) => AttemptResult::Timeout,
        };
        if result == AttemptResult::Timeout {
            controller.abort();
        }
        result
    }

    async fn schedule_alarm(&self, store: &AlertStore<DurableSql>) {
        let Ok(items) = store.pending() else { return };
        let disabled: Vec<String> = store.disabled_names().unwrap_or_default();
        let queue: Vec<_> = items.into_iter().map(|i| i.delivery).collect();
        if let Some(t) = outbox::next_wake(&queue, &disabled) {
            // An integer alarm time is an offset from now in workers-rs.
            let delay = outbox::alarm_delay_ms(t, worker::js_sys::Date::now());
            if let Err(e) = self.state.storage().set_alarm(delay).await {
                worker::console_error!("bpm-edge: setting the outbox alarm failed: {e}");
            }
        }
    }

    fn maybe_prune(&self, store: &AlertStore<DurableSql>, now: i64) {
        if let Err(e) = store.prune_when_due(now) {
            worker::console_error!("bpm-edge: pruning alerts: {e}");
        }
    }

    /// The rule records: the live book's, else the stored ones.
    fn records(&self, store: &AlertStore<DurableSql>) -> Answer<Vec<RuleRecord>> {
        match self.book.borrow().as_ref() {
            Some(b) => Ok(b.records().cloned().collect()),
            None => store.records().map_err(internal),
        }
    }

    /// Runs `f` on the cached 5-minute series (empty until loaded).
    fn with_cache<T>(&self, f: impl FnOnce(&BucketCache) -> T) -> T {
        let cache = self.series.borrow();
        f(cache.as_ref().unwrap_or(&BucketCache::new()))
    }

    /// Mission Control's data. Refreshes the series from the shards first
    /// when no tick has since the last bucket completed (a deployment whose
    /// cron has not run yet, or `wrangler dev` without scheduled ticks).
    async fn overview(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        query: &OverviewQuery,
        now: i64,
    ) -> Answer {
        let at = last_complete_bucket(now);
        let metrics = counted_metrics(config);
        let refreshed_to: Option<i64> = store.meta_time("refreshed_to").map_err(internal)?;
        if refresh_due(refreshed_to, now) || self.series.borrow().is_none() {
            self.refresh(store, config, &metrics, last_complete_minute(now))
                .await?;
        }
        let records = self.records(store)?;
        let silences = store.silences().map_err(internal)?;
        let from = query.series_from(now);
        let series = self.with_cache(|cache| series_set(cache, &metrics, from, at).series);
        let built = overview::build(config, &series, &records, &silences, query, now);
        serde_json::to_value(built).map_err(internal)
    }

    /// `POST /receivers/{name}/enable`: re-enables a receiver a 410
    /// disabled; its recent held messages go out again, in order.
    async fn enable_receiver(
        &self,
        store: &AlertStore<DurableSql>,
        config: &Config,
        name: &str,
        now: i64,
    ) -> Answer {
        let disabled = store.disabled_names().map_err(internal)?;
        if !is_receiver(config, &disabled, name) {
            return Err(Failure::NotFound(format!("no receiver named {name:?}")));
        }
        let (was_disabled, outcome) = store.enable_receiver(name, now).map_err(internal)?;
        if was_disabled {
            worker::console_log!(
                "bpm-edge: receiver {name:?} re-enabled; {} held message(s) requeued, {} too old",
                outcome.requeued,
                outcome.given_up
            );
        }
        if outcome.requeued > 0 {
            self.schedule_alarm(store).await;
        }
        serde_json::to_value(EnableAnswer::new(name, was_disabled, &outcome)).map_err(internal)
    }

    /// `GET /alerts`: the rules' states, silences, deliveries and receivers
    /// (see [`alerts_report::report`]).
    fn alerts(&self, store: &AlertStore<DurableSql>, config: &Config, now: i64) -> Answer {
        let records = self.records(store)?;
        let silences = store.silences().map_err(internal)?;
        let deliveries: Vec<Delivery> = store
            .recent(alerts_report::RECENT_DELIVERIES)
            .map_err(internal)?
            .into_iter()
            .map(|i| i.delivery)
            .collect();
        let receivers = store
            .receiver_statuses(&config.receivers)
            .map_err(internal)?;
        let evaluated_at = store.meta_time("last_at").map_err(internal)?;
        let evaluation_ms = store.meta("last_evaluation_ms").map_err(internal)?;
        let stored = StoredAlerts {
            records: &records,
            silences: &silences,
            deliveries: &deliveries,
            receivers: &receivers,
            evaluated_at,
            evaluation_ms: evaluation_ms.as_deref(),
        };
        serde_json::to_value(alerts_report::report(config, stored, now)).map_err(internal)
    }
}

fn json_status<T: serde::Serialize>(status: u16, body: &T) -> Result<Response> {
    Ok(Response::from_json(body)?.with_status(status))
}

/// The receiver a `/receivers/{name}/enable` path names.
fn enabled_receiver(path: &str) -> Option<&str> {
    path.strip_prefix('/').and_then(enable_route)
}

/// Calls the site's alert object.
pub async fn call(
    env: &Env,
    config: &Config,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<Response> {
    let stub = env
        .durable_object(BINDING)?
        .id_from_name(&config.site.name)?
        .get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(b) = body {
        init.with_body(Some(worker::wasm_bindgen::JsValue::from_str(&b)));
    }
    let req = Request::new_with_init(&format!("https://site-alerts{path}"), &init)?;
    stub.fetch_with_request(req).await
}
