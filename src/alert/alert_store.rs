//! The alert object's storage over any SQLite connection: the detector's
//! 5-minute series, rule records, history, silences, annotations, imported
//! backfill batches, the webhook outbox and the digests sent.
//!
//! Like the counter store, it is plain SQL behind the [`Sql`] trait, so the
//! Durable Object runs it on its own storage and the native tests run it on
//! an in-memory SQLite. Invariants: a backfill batch id is applied at most
//! once; a digest id is recorded at most once (its messages are queued
//! only by the call that recorded it); an outbox row keeps its
//! `message_id` and body for its whole life,
//! so every retry is the same message; history is bounded by the configured
//! limit, series by [`SERIES_RETENTION_SECS`], ended silences by
//! [`SILENCE_RETENTION_SECS`] (the history keeps their record).

use crate::alert::alert_book::{HistoryEntry, RuleRecord, SeriesSet};
use crate::alert::annotation::{Annotation, ANNOTATION_RETENTION_SECS};
use crate::alert::detector::CountSeries;
use crate::alert::outbox::{self, Delivery, DeliveryState, Enabled};
use crate::alert::silence::Silence;
pub use crate::alert::silence::SILENCE_RETENTION_SECS;
use crate::sql::{Sql, SqlValue, StoreError};
use crate::time::BUCKET_SECS;
use std::collections::BTreeMap;

/// Series older than this are dropped: 4 weeks of baseline behind 14 days
/// of dispersion history, plus the longest window.
pub const SERIES_RETENTION_SECS: i64 = 43 * 86_400;
/// How often the alert object prunes its store.
pub const PRUNE_EVERY_SECS: i64 = 3600;
/// Delivered, dead and held outbox rows are kept this long after they
/// settled, for inspection.
pub const OUTBOX_RETENTION_SECS: i64 = 7 * 86_400;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS series (metric TEXT NOT NULL, t INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (metric, t)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS records (rule TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS backfills (id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
    // Each imported (metric, minute, count) once, as long as series are kept.
    "CREATE TABLE IF NOT EXISTS imported_minutes (metric TEXT NOT NULL, t INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (metric, t, n)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, message_id TEXT NOT NULL, body TEXT NOT NULL, delivery TEXT NOT NULL, state TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, seq)",
    "CREATE TABLE IF NOT EXISTS disabled_receivers (receiver TEXT PRIMARY KEY, at INTEGER NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS annotations (id TEXT PRIMARY KEY, at INTEGER NOT NULL, json TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS annotations_at ON annotations (at)",
    "CREATE TABLE IF NOT EXISTS digests (id TEXT PRIMARY KEY, at INTEGER NOT NULL, json TEXT NOT NULL)",
];

/// What posting an annotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Created,
    /// The same annotation was posted before: nothing changed.
    Exists,
    /// Another annotation has that id: nothing changed.
    Conflict,
}

/// A queued message: its delivery state and the body to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub delivery: Delivery,
    pub body: String,
}

/// The alert object's tables.
pub struct AlertStore<S: Sql> {
    sql: S,
}

fn int(v: Option<&SqlValue>) -> Option<i64> {
    match v {
        Some(SqlValue::Int(i)) => Some(*i),
        _ => None,
    }
}

fn text(v: Option<&SqlValue>) -> Option<&str> {
    match v {
        Some(SqlValue::Text(s)) => Some(s),
        _ => None,
    }
}

fn state_name(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Queued => "queued",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Dead => "dead",
        DeliveryState::Disabled => "disabled",
    }
}

impl<S: Sql> AlertStore<S> {
    pub fn open(sql: S) -> Result<Self, StoreError> {
        sql.create("creating the alert tables", SCHEMA)?;
        Ok(AlertStore { sql })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self.sql.rows(
            "reading meta",
            "SELECT value FROM meta WHERE key = ?",
            vec![key.into()],
        )?;
        Ok(rows
            .first()
            .and_then(|r| text(r.first()))
            .map(str::to_string))
    }

    /// A meta value that holds a Unix time (`last_at`, `refreshed_to`,
    /// `pruned_at`); `None` when unset or unreadable.
    pub fn meta_time(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.meta(key)?.and_then(|v| v.parse().ok()))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.sql.rows(
            "writing meta",
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// Every stored bucket in `[from, to)`, as `(metric, t) → n`.
    pub fn load_series(&self, from: i64) -> Result<BTreeMap<(String, i64), i64>, StoreError> {
        let rows = self.sql.rows(
            "reading the series",
            "SELECT metric, t, n FROM series WHERE t >= ?",
            vec![from.into()],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((
                    (text(r.first())?.to_string(), int(r.get(1))?),
                    int(r.get(2))?,
                ))
            })
            .collect())
    }

    /// Makes the stored buckets of `metric` in `[from, to)` equal `counts`
    /// (zeros are not stored), writing only the buckets that changed: a
    /// tick re-reads two hours, of which usually one bucket moved, and
    /// every row written is billed.
    pub fn replace_series(
        &self,
        metric: &str,
        from: i64,
        to: i64,
        counts: &BTreeMap<i64, i64>,
    ) -> Result<(), StoreError> {
        let stored: BTreeMap<i64, i64> = self
            .sql
            .rows(
                "reading series buckets",
                "SELECT t, n FROM series WHERE metric = ? AND t >= ? AND t < ?",
                vec![metric.into(), from.into(), to.into()],
            )?
            .iter()
            .filter_map(|r| Some((r.first()?.int()?, r.get(1)?.int()?)))
            .collect();
        for t in stored.keys() {
            if counts.get(t).is_none_or(|n| *n <= 0) {
                self.sql.rows(
                    "clearing a series bucket",
                    "DELETE FROM series WHERE metric = ? AND t = ?",
                    vec![metric.into(), (*t).into()],
                )?;
            }
        }
        for (t, n) in counts.range(from..to).filter(|(_, n)| **n > 0) {
            if stored.get(t) == Some(n) {
                continue;
            }
            self.sql.rows(
                "writing a series bucket",
                "INSERT INTO series (metric, t, n) VALUES (?, ?, ?) ON CONFLICT (metric, t) DO UPDATE SET n = excluded.n",
                vec![metric.into(), (*t).into(), (*n).into()],
            )?;
        }
        Ok(())
    }

    /// Imports minute counts `(metric, minute, n)` into the 5-minute
    /// series, in one transaction. A line already imported with the same
    /// count is skipped (kept as long as the series), so importing the same
    /// history again, whole or cut differently, adds nothing. Returns what
    /// was added per `(metric, bucket)`.
    pub fn import(
        &self,
        minutes: &[(String, i64, i64)],
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let mut spans: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (metric, t, _) in minutes {
            let span = spans.entry(metric.as_str()).or_insert((*t, *t));
            span.0 = span.0.min(*t);
            span.1 = span.1.max(*t);
        }
        self.sql.transaction("importing history", || {
            let mut known: std::collections::HashSet<(String, i64, i64)> = Default::default();
            for (metric, (from, to)) in &spans {
                for r in self.sql.rows(
                    "checking imported minutes",
                    "SELECT t, n FROM imported_minutes WHERE metric = ? AND t >= ? AND t <= ?",
                    vec![(*metric).into(), (*from).into(), (*to).into()],
                )? {
                    if let (Some(t), Some(n)) = (
                        r.first().and_then(SqlValue::int),
                        r.get(1).and_then(SqlValue::int),
                    ) {
                        known.insert((metric.to_string(), t, n));
                    }
                }
            }
            let mut added: BTreeMap<(String, i64), i64> = BTreeMap::new();
            for (metric, t, n) in minutes {
                if *n <= 0 || !known.insert((metric.clone(), *t, *n)) {
                    continue;
                }
                self.sql.rows(
                    "recording an imported minute",
                    "INSERT INTO imported_minutes (metric, t, n) VALUES (?, ?, ?)",
                    vec![metric.as_str().into(), (*t).into(), (*n).into()],
                )?;
                let bucket = t.div_euclid(BUCKET_SECS) * BUCKET_SECS;
                let slot = added.entry((metric.clone(), bucket)).or_insert(0);
                *slot = slot.saturating_add(*n);
            }
            for ((metric, t), n) in &added {
                self.sql.rows(
                    "importing a bucket",
                    "INSERT INTO series (metric, t, n) VALUES (?, ?, ?) ON CONFLICT (metric, t) DO UPDATE SET n = n + excluded.n",
                    vec![metric.as_str().into(), (*t).into(), (*n).into()],
                )?;
            }
            Ok(added.into_iter().map(|((m, t), n)| (m, t, n)).collect())
        })
    }

    pub fn records(&self) -> Result<Vec<RuleRecord>, StoreError> {
        let rows = self
            .sql
            .rows("reading rule records", "SELECT json FROM records", vec![])?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(text(r.first())?).ok())
            .collect())
    }

    pub fn save_records<'a>(
        &self,
        records: impl Iterator<Item = &'a RuleRecord>,
    ) -> Result<(), StoreError> {
        for r in records {
            let json = serde_json::to_string(r).map_err(|e| StoreError {
                doing: "encoding a rule record",
                cause: e.to_string(),
            })?;
            self.sql.rows(
                "writing a rule record",
                "INSERT INTO records (rule, json) VALUES (?, ?) ON CONFLICT (rule) DO UPDATE SET json = excluded.json",
                vec![r.key().as_str().into(), json.as_str().into()],
            )?;
        }
        Ok(())
    }

    /// Deletes the records stored under `keys` ([`RuleRecord::key`]).
    pub fn delete_records(&self, keys: &[String]) -> Result<(), StoreError> {
        for k in keys {
            self.sql.rows(
                "deleting a rule record",
                "DELETE FROM records WHERE rule = ?",
                vec![k.as_str().into()],
            )?;
        }
        Ok(())
    }

    pub fn append_history(&self, entries: &[HistoryEntry], limit: u32) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        for e in entries {
            let json = serde_json::to_string(e).unwrap_or_default();
            self.sql.rows(
                "appending history",
                "INSERT INTO history (at, json) VALUES (?, ?)",
                vec![e.at.into(), json.as_str().into()],
            )?;
        }
        self.sql.rows(
            "trimming history",
            "DELETE FROM history WHERE id <= (SELECT MAX(id) FROM history) - ?",
            vec![i64::from(limit).into()],
        )?;
        Ok(())
    }

    /// Newest first, optionally for one rule (which includes the lines of
    /// silences of all rules, `*`).
    pub fn history(&self, limit: u32, rule: Option<&str>) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self.sql.rows(
            "reading history",
            "SELECT json FROM history ORDER BY id DESC",
            vec![],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str::<HistoryEntry>(text(r.first())?).ok())
            .filter(|e| rule.is_none_or(|r| e.rule == r || (e.rule == "*" && e.silence.is_some())))
            .take(limit as usize)
            .collect())
    }

    pub fn add_silence(&self, s: &Silence) -> Result<(), StoreError> {
        let json = serde_json::to_string(s).unwrap_or_default();
        self.sql.rows(
            "writing a silence",
            "INSERT INTO silences (id, json) VALUES (?, ?)",
            vec![s.id.as_str().into(), json.as_str().into()],
        )?;
        Ok(())
    }

    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let rows = self
            .sql
            .rows("reading silences", "SELECT json FROM silences", vec![])?;
        let mut out: Vec<Silence> = rows
            .iter()
            .filter_map(|r| serde_json::from_str(text(r.first())?).ok())
            .collect();
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    /// Returns whether a silence with that id existed.
    pub fn delete_silence(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.take_silence(id)?.is_some())
    }

    /// Deletes a silence and returns it (`None`: no such id; a row that
    /// does not decode is deleted all the same).
    pub fn take_silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        let rows = self.sql.rows(
            "deleting a silence",
            "DELETE FROM silences WHERE id = ? RETURNING json",
            vec![id.into()],
        )?;
        Ok(rows.first().map(|r| {
            text(r.first())
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_else(|| Silence {
                    id: id.to_string(),
                    rule: String::new(),
                    until: 0,
                    reason: String::new(),
                    author: String::new(),
                    created_at: 0,
                })
        }))
    }

    /// Stores `a` unless its id is taken (see [`Posted`]).
    pub fn add_annotation(&self, a: &Annotation) -> Result<Posted, StoreError> {
        let json = serde_json::to_string(a).unwrap_or_default();
        let rows = self.sql.rows(
            "writing an annotation",
            "INSERT INTO annotations (id, at, json) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            vec![a.id.as_str().into(), a.at.into(), json.as_str().into()],
        )?;
        if !rows.is_empty() {
            return Ok(Posted::Created);
        }
        let stored = self.sql.rows(
            "reading an annotation",
            "SELECT json FROM annotations WHERE id = ?",
            vec![a.id.as_str().into()],
        )?;
        let same = stored
            .first()
            .and_then(|r| serde_json::from_str::<Annotation>(text(r.first())?).ok())
            .is_some_and(|b| &b == a);
        Ok(if same {
            Posted::Exists
        } else {
            Posted::Conflict
        })
    }

    /// Records the digest `id` (its JSON, queued at `at`); false if it was
    /// already recorded, when it must not be queued again.
    pub fn record_digest(&self, id: &str, at: i64, json: &str) -> Result<bool, StoreError> {
        let rows = self.sql.rows(
            "recording a digest",
            "INSERT INTO digests (id, at, json) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            vec![id.into(), at.into(), json.into()],
        )?;
        Ok(!rows.is_empty())
    }

    /// Whether the digest `id` was recorded.
    pub fn digest_recorded(&self, id: &str) -> Result<bool, StoreError> {
        let rows = self.sql.rows(
            "reading a digest",
            "SELECT id FROM digests WHERE id = ?",
            vec![id.into()],
        )?;
        Ok(!rows.is_empty())
    }

    /// The last digest recorded: its JSON.
    pub fn last_digest(&self) -> Result<Option<String>, StoreError> {
        let rows = self.sql.rows(
            "reading the last digest",
            "SELECT json FROM digests ORDER BY at DESC, id DESC LIMIT 1",
            vec![],
        )?;
        Ok(rows
            .first()
            .and_then(|r| text(r.first()))
            .map(str::to_string))
    }

    /// The annotations dated in `[from, to)`, oldest first.
    pub fn annotations(&self, from: i64, to: i64) -> Result<Vec<Annotation>, StoreError> {
        let rows = self.sql.rows(
            "reading annotations",
            "SELECT json FROM annotations WHERE at >= ? AND at < ? ORDER BY at, id",
            vec![from.into(), to.into()],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(text(r.first())?).ok())
            .collect())
    }

    /// Returns whether an annotation with that id existed.
    pub fn delete_annotation(&self, id: &str) -> Result<bool, StoreError> {
        let rows = self.sql.rows(
            "deleting an annotation",
            "DELETE FROM annotations WHERE id = ? RETURNING id",
            vec![id.into()],
        )?;
        Ok(!rows.is_empty())
    }

    /// Deletes the silences that [`Silence::expired`] at `now`; returns how
    /// many. Their record is the history line written when each was created.
    pub fn prune_silences(&self, now: i64) -> Result<usize, StoreError> {
        let expired: Vec<String> = self
            .silences()?
            .into_iter()
            .filter(|s| s.expired(now))
            .map(|s| s.id)
            .collect();
        for id in &expired {
            self.sql.rows(
                "pruning a silence",
                "DELETE FROM silences WHERE id = ?",
                vec![id.as_str().into()],
            )?;
        }
        Ok(expired.len())
    }

    /// Queues a message; returns its delivery.
    pub fn enqueue(
        &self,
        receiver: &str,
        message_id: &str,
        body: &str,
        now: i64,
    ) -> Result<Delivery, StoreError> {
        let rows = self.sql.rows(
            "queueing a message",
            "INSERT INTO outbox (receiver, message_id, body, delivery, state) VALUES (?, ?, ?, '', 'queued') RETURNING seq",
            vec![receiver.into(), message_id.into(), body.into()],
        )?;
        let seq = rows.first().and_then(|r| int(r.first())).unwrap_or(0);
        let d = Delivery::new(seq, receiver, message_id, now);
        self.update_delivery(&d)?;
        Ok(d)
    }

    pub fn update_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let json = serde_json::to_string(d).unwrap_or_default();
        self.sql.rows(
            "updating a delivery",
            "UPDATE outbox SET delivery = ?, state = ? WHERE seq = ?",
            vec![
                json.as_str().into(),
                state_name(d.state).into(),
                d.seq.into(),
            ],
        )?;
        Ok(())
    }

    /// Every queued or disabled message, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.items(
            "SELECT delivery, body FROM outbox WHERE state IN ('queued', 'disabled') ORDER BY seq",
        )
    }

    /// The newest messages in any state, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        let mut items = self.items("SELECT delivery, body FROM outbox ORDER BY seq DESC")?;
        items.truncate(limit as usize);
        Ok(items)
    }

    fn items(&self, stmt: &str) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = self.sql.rows("reading the outbox", stmt, vec![])?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(OutboxItem {
                    delivery: serde_json::from_str(text(r.first())?).ok()?,
                    body: text(r.get(1))?.to_string(),
                })
            })
            .collect())
    }

    /// The state and queue of every configured receiver (in `receivers`'
    /// order), then of any disabled one no longer configured (see
    /// [`outbox::receiver_statuses`]).
    pub fn receiver_statuses(
        &self,
        receivers: &[crate::config::rules::Receiver],
    ) -> Result<Vec<outbox::ReceiverStatus>, StoreError> {
        let queue: Vec<Delivery> = self.pending()?.into_iter().map(|i| i.delivery).collect();
        let configured: Vec<(&str, crate::config::rules::WebhookFormat)> = receivers
            .iter()
            .map(|r| (r.name.as_str(), r.format))
            .collect();
        Ok(outbox::receiver_statuses(
            &configured,
            &self.disabled_receivers()?,
            &queue,
        ))
    }

    pub fn disabled_receivers(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let rows = self.sql.rows(
            "reading disabled receivers",
            "SELECT receiver, at, reason FROM disabled_receivers ORDER BY receiver",
            vec![],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((
                    text(r.first())?.to_string(),
                    int(r.get(1))?,
                    text(r.get(2))?.to_string(),
                ))
            })
            .collect())
    }

    /// Names of the disabled receivers (what `outbox::due` skips).
    pub fn disabled_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .disabled_receivers()?
            .into_iter()
            .map(|(r, _, _)| r)
            .collect())
    }

    /// Disables `receiver` (a second disable keeps the first record) and
    /// holds every message queued for it, in one transaction: nothing is
    /// attempted for it until [`AlertStore::enable_receiver`], and held
    /// messages are pruned like settled ones. Returns how many were held.
    pub fn disable_receiver(
        &self,
        receiver: &str,
        now: i64,
        reason: &str,
    ) -> Result<usize, StoreError> {
        self.sql.transaction("disabling a receiver", || {
            self.sql.rows(
                "disabling a receiver",
                "INSERT INTO disabled_receivers (receiver, at, reason) VALUES (?, ?, ?) ON CONFLICT (receiver) DO NOTHING",
                vec![receiver.into(), now.into(), reason.into()],
            )?;
            self.hold_queued(receiver, now)
        })
    }

    /// Holds the queued messages of `receiver`; returns how many.
    fn hold_queued(&self, receiver: &str, now: i64) -> Result<usize, StoreError> {
        let rows = self.sql.rows(
            "reading a receiver's queue",
            "SELECT delivery FROM outbox WHERE receiver = ? AND state = 'queued' ORDER BY seq",
            vec![receiver.into()],
        )?;
        let mut held = 0;
        for r in &rows {
            let Some(mut d) =
                text(r.first()).and_then(|j| serde_json::from_str::<Delivery>(j).ok())
            else {
                continue;
            };
            if d.hold(now) {
                self.update_delivery(&d)?;
                held += 1;
            }
        }
        Ok(held)
    }

    /// Re-enables `receiver` in one transaction: removes its disabled
    /// record and settles its held messages as [`outbox::enable`] decides
    /// (recent ones requeued in order, older ones given up). Also frees
    /// held messages of a receiver that has no disabled record. Returns
    /// whether it was disabled, and what happened to its messages.
    pub fn enable_receiver(&self, receiver: &str, now: i64) -> Result<(bool, Enabled), StoreError> {
        self.sql.transaction("enabling a receiver", || {
            let was = self.sql.rows(
                "enabling a receiver",
                "DELETE FROM disabled_receivers WHERE receiver = ? RETURNING receiver",
                vec![receiver.into()],
            )?;
            let rows = self.sql.rows(
                "reading held messages",
                "SELECT delivery FROM outbox WHERE receiver = ? AND state = 'disabled' ORDER BY seq",
                vec![receiver.into()],
            )?;
            let mut held: Vec<Delivery> = rows
                .iter()
                .filter_map(|r| serde_json::from_str(text(r.first())?).ok())
                .collect();
            let outcome = outbox::enable(&mut held, receiver, now);
            for d in &held {
                self.update_delivery(d)?;
            }
            Ok((!was.is_empty(), outcome))
        })
    }

    /// [`AlertStore::prune`] at most once per [`PRUNE_EVERY_SECS`] (the
    /// last time is kept in `pruned_at`). Whether it pruned.
    pub fn prune_when_due(&self, now: i64) -> Result<bool, StoreError> {
        let last = self.meta_time("pruned_at")?.unwrap_or(0);
        if now - last < PRUNE_EVERY_SECS {
            return Ok(false);
        }
        // Marked first: a prune that fails is not retried before its time.
        self.set_meta("pruned_at", &now.to_string())?;
        self.prune(now)?;
        Ok(true)
    }

    /// Drops old series buckets, settled outbox rows, expired silences and
    /// old backfill ids.
    pub fn prune(&self, now: i64) -> Result<(), StoreError> {
        self.prune_silences(now)?;
        self.sql.rows(
            "pruning the series",
            "DELETE FROM series WHERE t < ?",
            vec![(now - SERIES_RETENTION_SECS).into()],
        )?;
        // Messages still queued for a disabled receiver (written before
        // disabling held them) are held now, so they age out too.
        for receiver in self.disabled_names()? {
            self.hold_queued(&receiver, now)?;
        }
        let settled = self.items(
            "SELECT delivery, body FROM outbox WHERE state IN ('delivered', 'dead', 'disabled')",
        )?;
        for item in settled {
            let d = &item.delivery;
            if d.settled_at()
                .is_some_and(|t| t < now - OUTBOX_RETENTION_SECS)
            {
                self.sql.rows(
                    "pruning the outbox",
                    "DELETE FROM outbox WHERE seq = ?",
                    vec![d.seq.into()],
                )?;
            }
        }
        self.sql.rows(
            "pruning backfill ids",
            "DELETE FROM backfills WHERE at < ?",
            vec![(now - SERIES_RETENTION_SECS).into()],
        )?;
        self.sql.rows(
            "pruning annotations",
            "DELETE FROM annotations WHERE at < ?",
            vec![(now - ANNOTATION_RETENTION_SECS).into()],
        )?;
        self.sql.rows(
            "pruning imported minutes",
            "DELETE FROM imported_minutes WHERE t < ?",
            vec![(now - SERIES_RETENTION_SECS).into()],
        )?;
        Ok(())
    }
}

/// Builds the detector's series from stored buckets: for each metric, a
/// contiguous 5-minute series up to `to` (absent buckets are 0).
///
/// The series start at the earliest stored bucket of any of the metrics
/// (not at `from`): time before the first data is unknown, not zero, and
/// counting it as zero would make baselines that reach back into it look
/// like drops.
pub fn series_set(
    buckets: &BTreeMap<(String, i64), i64>,
    metrics: &[String],
    from: i64,
    to: i64,
) -> SeriesSet {
    let first = metrics
        .iter()
        .filter_map(|m| {
            buckets
                .range((m.clone(), from)..(m.clone(), to))
                .next()
                .map(|((_, t), _)| *t)
        })
        .min()
        .unwrap_or(to);
    let from = from.max(first).div_euclid(BUCKET_SECS) * BUCKET_SECS;
    let mut set = SeriesSet::default();
    for m in metrics {
        let points = buckets
            .range((m.clone(), from)..(m.clone(), to))
            .map(|((_, t), n)| (*t, *n as f64));
        set.series.insert(
            m.clone(),
            CountSeries::from_sparse(from, to, BUCKET_SECS, points),
        );
    }
    set
}
