//! The alert store's real SQL against SQLite: series replacement and
//! contiguous series, idempotent backfill imports, rule records, bounded
//! history, silences, and the webhook outbox's lifecycle and pruning.

use bpm_edge::alert::alert_book::{silence_history, AlertBook, HistoryEntry, RuleRecord};
use bpm_edge::alert::alert_store::{
    series_set, AlertStore, OUTBOX_RETENTION_SECS, SERIES_RETENTION_SECS, SILENCE_RETENTION_SECS,
};
use bpm_edge::alert::outbox::{
    due, next_wake, AttemptResult, Delivery, DeliveryState, Enabled, Verdict, REQUEUE_MAX_AGE_SECS,
    TOO_OLD_TO_REQUEUE,
};
use bpm_edge::alert::silence::Silence;
use bpm_edge::time::BUCKET_SECS;
use std::collections::BTreeMap;

mod common;
use bpm_edge::count::fleet::Metered;
use common::Native;

/// A UTC midnight in 2025 (a multiple of the bucket length).
const DAY0: i64 = 20_400 * 86_400;
const B: i64 = BUCKET_SECS;

fn store() -> AlertStore<Native> {
    AlertStore::open(Native::in_memory()).unwrap()
}

fn counts(pairs: &[(i64, i64)]) -> BTreeMap<i64, i64> {
    pairs.iter().copied().collect()
}

fn key(metric: &str, t: i64) -> (String, i64) {
    (metric.to_string(), t)
}

fn shipped_config() -> bpm_edge::config::Config {
    bpm_edge::config::parse_toml(include_str!("../bpm.toml"), "bpm.toml").unwrap()
}

fn config_records() -> Vec<RuleRecord> {
    let config = shipped_config();
    let book = AlertBook::new(&config, vec![], DAY0);
    book.records().cloned().collect()
}

fn entry(at: i64, rule: &str) -> HistoryEntry {
    HistoryEntry {
        at,
        rule: rule.into(),
        value: None,
        metric: "logins".into(),
        from: None,
        to: None,
        notice: Some(format!("note at {at}")),
        incident: None,
        window: None,
        silence: None,
    }
}

fn silence(id: &str, rule: &str, created_at: i64) -> Silence {
    Silence {
        id: id.into(),
        rule: rule.into(),
        until: created_at + 3600,
        reason: format!("maintenance {id}"),
        author: "ops".into(),
        created_at,
    }
}

/// The outbox's pending deliveries, oldest first.
fn queue(s: &AlertStore<Native>) -> Vec<Delivery> {
    s.pending()
        .unwrap()
        .into_iter()
        .map(|i| i.delivery)
        .collect()
}

fn status(code: u16) -> AttemptResult {
    AttemptResult::Status {
        code,
        retry_after: None,
    }
}

#[test]
fn replace_series_round_trips_through_load_series() {
    let s = store();
    let from = DAY0;
    let to = DAY0 + 6 * B;
    s.replace_series("logins", from, to, &counts(&[(DAY0, 4), (DAY0 + 2 * B, 7)]))
        .unwrap();
    s.replace_series("signups", from, to, &counts(&[(DAY0 + B, 2)]))
        .unwrap();
    let loaded = s.load_series(DAY0).unwrap();
    let expected: BTreeMap<(String, i64), i64> = [
        (key("logins", DAY0), 4),
        (key("logins", DAY0 + 2 * B), 7),
        (key("signups", DAY0 + B), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(loaded, expected);
    // `from` filters older buckets out.
    let later = s.load_series(DAY0 + B).unwrap();
    assert_eq!(later.len(), 2);
    assert!(!later.contains_key(&key("logins", DAY0)));
}

#[test]
fn replace_series_clears_its_range_only() {
    let s = store();
    let all = counts(&[
        (DAY0, 1),
        (DAY0 + B, 2),
        (DAY0 + 2 * B, 3),
        (DAY0 + 3 * B, 4),
        (DAY0 + 4 * B, 5),
    ]);
    s.replace_series("logins", DAY0, DAY0 + 5 * B, &all)
        .unwrap();
    s.replace_series("signups", DAY0, DAY0 + 5 * B, &all)
        .unwrap();
    // Replace [B, 3B) of logins: bucket B gets a new count, 2B is absent
    // from the new counts (deleted); a count outside the range and a zero
    // are not written.
    s.replace_series(
        "logins",
        DAY0 + B,
        DAY0 + 3 * B,
        &counts(&[(DAY0 + B, 20), (DAY0 + 4 * B, 99), (DAY0 - B, 99)]),
    )
    .unwrap();
    let loaded = s.load_series(0).unwrap();
    assert_eq!(loaded.get(&key("logins", DAY0)), Some(&1));
    assert_eq!(loaded.get(&key("logins", DAY0 + B)), Some(&20));
    assert_eq!(loaded.get(&key("logins", DAY0 + 2 * B)), None);
    assert_eq!(loaded.get(&key("logins", DAY0 + 3 * B)), Some(&4));
    assert_eq!(loaded.get(&key("logins", DAY0 + 4 * B)), Some(&5));
    assert_eq!(loaded.get(&key("logins", DAY0 - B)), None);
    // Another metric in the same range is untouched.
    for i in 0..5 {
        assert_eq!(loaded.get(&key("signups", DAY0 + i * B)), Some(&(i + 1)));
    }
    // A zero count in range deletes without storing a row.
    s.replace_series("logins", DAY0, DAY0 + B, &counts(&[(DAY0, 0)]))
        .unwrap();
    let loaded = s.load_series(0).unwrap();
    assert_eq!(loaded.get(&key("logins", DAY0)), None);
    assert_eq!(loaded.iter().filter(|((m, _), _)| m == "logins").count(), 3);
}

#[test]
fn series_set_is_contiguous_and_sums_match_stored_counts() {
    let s = store();
    let from = DAY0;
    let to = DAY0 + 12 * B;
    s.replace_series(
        "logins",
        from,
        to,
        &counts(&[(DAY0, 3), (DAY0 + 4 * B, 5), (DAY0 + 11 * B, 8)]),
    )
    .unwrap();
    s.replace_series("other", from, to, &counts(&[(DAY0 + B, 100)]))
        .unwrap();
    // Buckets outside [from, to) must not leak into the series.
    s.replace_series(
        "logins",
        DAY0 + 12 * B,
        DAY0 + 13 * B,
        &counts(&[(DAY0 + 12 * B, 50)]),
    )
    .unwrap();
    let buckets = s.load_series(0).unwrap();
    let metrics = vec!["logins".to_string(), "signups".to_string()];
    let set = series_set(&buckets, &metrics, from, to);
    assert_eq!(set.series.len(), 2);
    assert!(!set.series.contains_key("other"));

    let logins = &set.series["logins"];
    assert_eq!(logins.start(), from);
    assert_eq!(logins.step(), B);
    assert_eq!(logins.len(), 12);
    assert_eq!(logins.end(), to);
    for i in 0..12 {
        let t = DAY0 + i * B;
        let stored = buckets.get(&key("logins", t)).copied().unwrap_or(0) as f64;
        assert_eq!(logins.sum(t, t + B), Some(stored), "bucket {i}");
    }
    assert_eq!(logins.sum(from, to), Some(16.0));
    assert_eq!(logins.sum(DAY0 + B, DAY0 + 4 * B), Some(0.0));
    assert_eq!(logins.sum(DAY0 + 4 * B, DAY0 + 5 * B), Some(5.0));
    assert_eq!(logins.sum(DAY0 + 12 * B, DAY0 + 13 * B), None);

    // A metric with nothing stored is a full series of zeros.
    let signups = &set.series["signups"];
    assert_eq!((signups.start(), signups.len()), (from, 12));
    assert_eq!(signups.sum(from, to), Some(0.0));

    // An unaligned `from`: the series still start on a bucket boundary, no
    // later than the first stored bucket after `from`, end at `to`, and
    // hold exactly the stored counts from there on.
    let set = series_set(&buckets, &metrics, from + 17, to);
    let logins = &set.series["logins"];
    let start = logins.start();
    assert_eq!(start.rem_euclid(B), 0);
    assert!(start >= from && start <= DAY0 + 4 * B, "start {start}");
    assert_eq!(logins.end(), to);
    assert_eq!(logins.sum(start, to), Some(13.0));
    let signups = &set.series["signups"];
    assert_eq!((signups.start(), signups.len()), (start, logins.len()));
}

#[test]
fn series_set_starts_at_the_earliest_stored_bucket_of_any_metric() {
    let s = store();
    let from = DAY0;
    let to = DAY0 + 12 * B;
    s.replace_series(
        "logins",
        from,
        to,
        &counts(&[(DAY0 + 3 * B, 6), (DAY0 + 7 * B, 2)]),
    )
    .unwrap();
    s.replace_series("signups", from, to, &counts(&[(DAY0 + 5 * B, 4)]))
        .unwrap();
    // Before `from`: not part of the series.
    s.replace_series("signups", DAY0 - B, DAY0, &counts(&[(DAY0 - B, 9)]))
        .unwrap();
    let buckets = s.load_series(0).unwrap();
    let metrics = vec!["logins".to_string(), "signups".to_string()];
    let set = series_set(&buckets, &metrics, from, to);
    for m in &metrics {
        let series = &set.series[m];
        assert_eq!(series.start(), DAY0 + 3 * B, "{m}");
        assert_eq!((series.len(), series.end()), (9, to), "{m}");
        // Time before the first data is not in the series (not zeros).
        assert_eq!(series.sum(from, DAY0 + 3 * B), None, "{m}");
    }
    let logins = &set.series["logins"];
    let signups = &set.series["signups"];
    assert_eq!(logins.sum(DAY0 + 3 * B, to), Some(8.0));
    assert_eq!(logins.sum(DAY0 + 4 * B, DAY0 + 7 * B), Some(0.0));
    // A metric whose data starts later has zeros before its first bucket.
    assert_eq!(signups.sum(DAY0 + 3 * B, DAY0 + 5 * B), Some(0.0));
    assert_eq!(signups.sum(DAY0 + 5 * B, DAY0 + 6 * B), Some(4.0));
    assert_eq!(signups.sum(DAY0 + 3 * B, to), Some(4.0));

    // Nothing stored in [from, to): empty series that end at `to`.
    let set = series_set(&buckets, &metrics, DAY0 + 20 * B, DAY0 + 30 * B);
    for m in &metrics {
        assert!(set.series[m].is_empty(), "{m}");
        assert_eq!(set.series[m].sum(DAY0 + 30 * B, DAY0 + 30 * B), Some(0.0));
    }
}

#[test]
fn regression_backfill_import_added_the_same_history_again_under_another_id() {
    // Version 1 recognised a whole upload by its id only: the same minutes
    // in another request (cut differently, or after the id expired) were
    // added again. Each (metric, minute, count) line is imported once now.
    let s = store();
    s.replace_series("logins", DAY0, DAY0 + 3 * B, &counts(&[(DAY0, 10)]))
        .unwrap();
    let lines = vec![
        ("logins".to_string(), DAY0 + 60, 5),
        ("logins".to_string(), DAY0 + B + 60, 7),
        ("signups".to_string(), DAY0, 2),
    ];
    let added = s.import(&lines).unwrap();
    assert_eq!(added.len(), 3);
    let after_first = s.load_series(0).unwrap();
    // Adds onto an existing bucket, creates the missing ones.
    assert_eq!(after_first.get(&key("logins", DAY0)), Some(&15));
    assert_eq!(after_first.get(&key("logins", DAY0 + B)), Some(&7));
    assert_eq!(after_first.get(&key("signups", DAY0)), Some(&2));
    // The same lines again, whole or in parts: nothing is added.
    assert!(s.import(&lines).unwrap().is_empty());
    assert!(s.import(&lines[1..]).unwrap().is_empty());
    assert_eq!(s.load_series(0).unwrap(), after_first);
    // A line with another count for a known minute is new history: added.
    let more = vec![("logins".to_string(), DAY0 + 60, 3)];
    assert_eq!(
        s.import(&more).unwrap(),
        vec![("logins".to_string(), DAY0, 3)]
    );
    assert_eq!(
        s.load_series(0).unwrap().get(&key("logins", DAY0)),
        Some(&18)
    );
}

#[test]
fn rule_records_round_trip_and_upsert_one_row_per_rule() {
    let s = store();
    assert!(s.records().unwrap().is_empty());
    let records = config_records();
    assert!(
        records.len() >= 2,
        "bpm.toml should configure several rules"
    );
    s.save_records(records.iter()).unwrap();
    let mut loaded = s.records().unwrap();
    loaded.sort_by(|a, b| a.rule.cmp(&b.rule));
    let mut expected = records.clone();
    expected.sort_by(|a, b| a.rule.cmp(&b.rule));
    assert_eq!(loaded, expected);

    // Saving again, with one record changed, keeps one row per rule and
    // the newest content.
    let mut changed = records.clone();
    changed[0].sequence = 42;
    changed[0].firing_sent = true;
    changed[0].last_sent_at = Some(DAY0 + 600);
    s.save_records(changed.iter()).unwrap();
    s.save_records(changed.iter()).unwrap();
    let loaded = s.records().unwrap();
    assert_eq!(loaded.len(), records.len());
    let first = loaded.iter().find(|r| r.rule == changed[0].rule).unwrap();
    assert_eq!(first, &changed[0]);
    for r in &changed[1..] {
        assert_eq!(loaded.iter().filter(|l| l.rule == r.rule).count(), 1);
        assert_eq!(loaded.iter().find(|l| l.rule == r.rule).unwrap(), r);
    }
}

#[test]
fn history_keeps_the_newest_entries_up_to_the_limit() {
    let s = store();
    s.append_history(&[], 3).unwrap();
    assert!(s.history(10, None).unwrap().is_empty());
    let entries: Vec<HistoryEntry> = (0..5).map(|i| entry(DAY0 + i * 60, "r")).collect();
    s.append_history(&entries[..2], 3).unwrap();
    s.append_history(&entries[2..], 3).unwrap();
    let kept = s.history(10, None).unwrap();
    assert_eq!(kept.len(), 3);
    // Newest first: entries 4, 3, 2.
    assert_eq!(
        kept,
        vec![entries[4].clone(), entries[3].clone(), entries[2].clone()]
    );
    // The limit of the read applies too.
    assert_eq!(
        s.history(2, None).unwrap(),
        vec![entries[4].clone(), entries[3].clone()]
    );
}

#[test]
fn history_filters_by_rule_newest_first() {
    let s = store();
    let entries = vec![
        entry(DAY0, "a"),
        entry(DAY0 + 60, "b"),
        entry(DAY0 + 120, "a"),
        entry(DAY0 + 180, "b"),
        entry(DAY0 + 240, "a"),
    ];
    s.append_history(&entries, 100).unwrap();
    let a = s.history(10, Some("a")).unwrap();
    assert_eq!(
        a,
        vec![entries[4].clone(), entries[2].clone(), entries[0].clone()]
    );
    let b = s.history(10, Some("b")).unwrap();
    assert_eq!(b, vec![entries[3].clone(), entries[1].clone()]);
    // The read limit counts matching entries only.
    assert_eq!(
        s.history(2, Some("a")).unwrap(),
        vec![entries[4].clone(), entries[2].clone()]
    );
    assert!(s.history(10, Some("nope")).unwrap().is_empty());
    let all = s.history(10, None).unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].at > w[1].at));
}

#[test]
fn silences_are_listed_by_creation_and_deleted_once() {
    let s = store();
    assert!(s.silences().unwrap().is_empty());
    // Added newest first, listed oldest first.
    let late = silence("sil_b", "*", DAY0 + 500);
    let early = silence("sil_a", "logins_drop", DAY0 + 100);
    s.add_silence(&late).unwrap();
    s.add_silence(&early).unwrap();
    assert_eq!(s.silences().unwrap(), vec![early.clone(), late.clone()]);
    // The same id cannot be added twice.
    assert!(s.add_silence(&late).is_err());
    assert!(s.delete_silence("sil_b").unwrap());
    assert!(!s.delete_silence("sil_b").unwrap());
    assert!(!s.delete_silence("never").unwrap());
    assert_eq!(s.silences().unwrap(), vec![early]);
}

#[test]
fn enqueue_gives_increasing_seqs_and_pending_lists_oldest_first() {
    let s = store();
    let now = DAY0 + 1000;
    let d1 = s.enqueue("ops", "msg_1", r#"{"n":1}"#, now).unwrap();
    let d2 = s.enqueue("oncall", "msg_2", r#"{"n":2}"#, now + 1).unwrap();
    let d3 = s.enqueue("ops", "msg_3", r#"{"n":3}"#, now + 2).unwrap();
    assert!(d1.seq > 0);
    assert!(d1.seq < d2.seq && d2.seq < d3.seq);
    assert_eq!(d1, Delivery::new(d1.seq, "ops", "msg_1", now));
    assert_eq!(d1.state, DeliveryState::Queued);
    assert_eq!((d1.next_at, d1.attempts), (now, 0));

    let pending = s.pending().unwrap();
    let seqs: Vec<i64> = pending.iter().map(|i| i.delivery.seq).collect();
    assert_eq!(seqs, vec![d1.seq, d2.seq, d3.seq]);
    assert_eq!(pending[0].delivery, d1);
    assert_eq!(pending[1].delivery, d2);
    assert_eq!(pending[0].body, r#"{"n":1}"#);
    assert_eq!(pending[1].body, r#"{"n":2}"#);
    assert_eq!(pending[2].body, r#"{"n":3}"#);

    // The stored deliveries are due at once: the head of each receiver.
    let queue: Vec<Delivery> = pending.iter().map(|i| i.delivery.clone()).collect();
    let due_now: Vec<i64> = due(&queue, &[], now + 2).iter().map(|d| d.seq).collect();
    assert_eq!(due_now, vec![d1.seq, d2.seq]);
}

#[test]
fn a_retried_delivery_keeps_its_message_id_and_body() {
    let s = store();
    let now = DAY0 + 1000;
    let body = r#"{"status":"firing","rule":"logins_drop"}"#;
    let d = s.enqueue("ops", "msg_retry", body, now).unwrap();

    let mut item = s.pending().unwrap().remove(0);
    let verdict = item.delivery.record(&status(503), now + 1);
    assert!(matches!(verdict, Verdict::RetryAt(at) if at > now + 1));
    s.update_delivery(&item.delivery).unwrap();

    let pending = s.pending().unwrap();
    assert_eq!(pending.len(), 1);
    let again = &pending[0];
    assert_eq!(again.delivery.seq, d.seq);
    assert_eq!(again.delivery.attempts, 1);
    assert!(again.delivery.next_at > d.next_at);
    assert_eq!(again.delivery.last_status, Some(503));
    assert_eq!(again.delivery.state, DeliveryState::Queued);
    assert_eq!(again.delivery.message_id, "msg_retry");
    assert_eq!(again.body, body);
    // Not due before its retry time, due at it.
    let queue = vec![again.delivery.clone()];
    assert!(due(&queue, &[], now + 1).is_empty());
    assert_eq!(due(&queue, &[], again.delivery.next_at).len(), 1);

    // The retry succeeds: no longer pending, shown as delivered.
    let mut d = again.delivery.clone();
    let at = d.next_at;
    assert_eq!(d.record(&status(200), at), Verdict::Delivered);
    s.update_delivery(&d).unwrap();
    assert!(s.pending().unwrap().is_empty());
    let recent = s.recent(10).unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].delivery.state, DeliveryState::Delivered);
    assert_eq!(recent[0].delivery.delivered_at, Some(at));
    assert_eq!(recent[0].delivery.attempts, 2);
    assert_eq!(recent[0].delivery.message_id, "msg_retry");
    assert_eq!(recent[0].body, body);
}

#[test]
fn recent_lists_every_state_newest_first_and_pending_includes_disabled() {
    let s = store();
    let now = DAY0;
    let a = s.enqueue("ops", "m1", "b1", now).unwrap();
    let mut b = s.enqueue("gone", "m2", "b2", now).unwrap();
    let c = s.enqueue("ops", "m3", "b3", now).unwrap();
    assert_eq!(b.record(&status(410), now + 1), Verdict::DisableReceiver);
    s.update_delivery(&b).unwrap();
    let recent: Vec<i64> = s
        .recent(10)
        .unwrap()
        .iter()
        .map(|i| i.delivery.seq)
        .collect();
    assert_eq!(recent, vec![c.seq, b.seq, a.seq]);
    let recent2: Vec<i64> = s
        .recent(2)
        .unwrap()
        .iter()
        .map(|i| i.delivery.seq)
        .collect();
    assert_eq!(recent2, vec![c.seq, b.seq]);
    let pending = s.pending().unwrap();
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[1].delivery.state, DeliveryState::Disabled);
}

#[test]
fn disabled_receivers_are_recorded_once_and_sorted() {
    let s = store();
    assert!(s.disabled_receivers().unwrap().is_empty());
    s.disable_receiver("zeta", DAY0, "410 Gone").unwrap();
    s.disable_receiver("alpha", DAY0 + 5, "410 Gone").unwrap();
    // A second disable keeps the first record.
    s.disable_receiver("zeta", DAY0 + 9, "again").unwrap();
    assert_eq!(
        s.disabled_receivers().unwrap(),
        vec![
            ("alpha".to_string(), DAY0 + 5, "410 Gone".to_string()),
            ("zeta".to_string(), DAY0, "410 Gone".to_string()),
        ]
    );
}

#[test]
fn prune_drops_old_series_and_settled_outbox_rows_only() {
    let s = store();
    let now = DAY0 + 60 * 86_400;
    let old_t = now - SERIES_RETENTION_SECS - B;
    let fresh_t = now - SERIES_RETENTION_SECS + B;
    s.replace_series(
        "logins",
        old_t,
        fresh_t + B,
        &counts(&[(old_t, 3), (fresh_t, 4)]),
    )
    .unwrap();

    let old = now - OUTBOX_RETENTION_SECS - 60;
    let fresh = now - OUTBOX_RETENTION_SECS + 60;
    // Delivered long ago: pruned.
    let mut old_delivered = s.enqueue("ops", "old_delivered", "x", old - 10).unwrap();
    old_delivered.record(&status(200), old);
    s.update_delivery(&old_delivered).unwrap();
    // Queued long ago but delivered recently: kept.
    let mut late_delivered = s.enqueue("ops", "late_delivered", "x", old - 10).unwrap();
    late_delivered.record(&status(204), fresh);
    s.update_delivery(&late_delivered).unwrap();
    // Delivered recently: kept.
    let mut fresh_delivered = s.enqueue("ops", "fresh_delivered", "x", fresh).unwrap();
    fresh_delivered.record(&status(200), fresh);
    s.update_delivery(&fresh_delivered).unwrap();
    // Still queued however old: kept.
    let old_queued = s.enqueue("oncall", "old_queued", "x", old - 10).unwrap();
    // Held (its receiver answered 410) long ago: pruned like any settled
    // row. Until regression_one_410_disabled_a_receiver_for_good these were
    // kept, and re-read, forever.
    let mut old_disabled = s.enqueue("gone", "old_disabled", "x", old - 10).unwrap();
    old_disabled.record(&status(410), old);
    s.update_delivery(&old_disabled).unwrap();
    // Held recently: kept.
    let mut fresh_disabled = s.enqueue("gone", "fresh_disabled", "x", old - 10).unwrap();
    fresh_disabled.record(&status(410), fresh);
    s.update_delivery(&fresh_disabled).unwrap();

    s.prune(now).unwrap();

    let series = s.load_series(0).unwrap();
    assert_eq!(series.get(&key("logins", old_t)), None);
    assert_eq!(series.get(&key("logins", fresh_t)), Some(&4));

    let mut left: Vec<String> = s
        .recent(100)
        .unwrap()
        .into_iter()
        .map(|i| i.delivery.message_id)
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            "fresh_delivered",
            "fresh_disabled",
            "late_delivered",
            "old_queued"
        ]
    );
    let pending: Vec<i64> = s
        .pending()
        .unwrap()
        .iter()
        .map(|i| i.delivery.seq)
        .collect();
    assert_eq!(pending, vec![old_queued.seq, fresh_disabled.seq]);
}

#[test]
fn prune_forgets_imported_minutes_only_with_their_series() {
    let s = store();
    let now = DAY0 + 60 * 86_400;
    let old = vec![("logins".to_string(), now - SERIES_RETENTION_SECS - 600, 1)];
    let fresh = vec![("logins".to_string(), now - B, 1)];
    assert_eq!(s.import(&old).unwrap().len(), 1);
    assert_eq!(s.import(&fresh).unwrap().len(), 1);
    s.prune(now).unwrap();
    // A fresh minute is still known; an expired one is gone with its bucket.
    assert!(s.import(&fresh).unwrap().is_empty());
    assert_eq!(s.import(&old).unwrap().len(), 1);
    assert_eq!(
        s.load_series(0).unwrap().get(&key("logins", now - B)),
        Some(&1)
    );
}

#[test]
fn meta_round_trips_and_overwrites() {
    let s = store();
    assert_eq!(s.meta("cursor").unwrap(), None);
    s.set_meta("cursor", "1").unwrap();
    s.set_meta("cursor", "2").unwrap();
    assert_eq!(s.meta("cursor").unwrap().as_deref(), Some("2"));
    // A time reads as a number; an unreadable one as unset.
    assert_eq!(s.meta_time("cursor").unwrap(), Some(2));
    assert_eq!(s.meta_time("last_at").unwrap(), None);
    s.set_meta("last_at", "soon").unwrap();
    assert_eq!(s.meta_time("last_at").unwrap(), None);
}

#[test]
fn prune_keeps_a_recently_dead_row_that_was_queued_long_ago() {
    let s = store();
    let now = DAY0 + 60 * 86_400;
    let queued = now - OUTBOX_RETENTION_SECS - 86_400;
    // The receiver answered 410; it was re-enabled (requeued) a day ago,
    // and every attempt since failed until the schedule ran out.
    let mut d = s.enqueue("ops", "died_recently", "body", queued).unwrap();
    assert_eq!(d.record(&status(410), queued + 1), Verdict::DisableReceiver);
    let mut t = now - 86_400;
    assert!(d.requeue(t));
    loop {
        match d.record(&status(500), t) {
            Verdict::RetryAt(at) => t = at,
            Verdict::Dead => break,
            v => panic!("unexpected verdict {v:?}"),
        }
    }
    assert_eq!(d.state, DeliveryState::Dead);
    assert!(t > now - 86_400 && t < now, "died within the last day");
    s.update_delivery(&d).unwrap();
    s.prune(now).unwrap();
    let left: Vec<String> = s
        .recent(10)
        .unwrap()
        .into_iter()
        .map(|i| i.delivery.message_id)
        .collect();
    assert_eq!(
        left,
        vec!["died_recently"],
        "a dead row is kept for inspection"
    );
}

#[test]
fn regression_every_tick_rewrote_two_hours_of_series() {
    // Each tick re-reads two hours (24 buckets) per metric; version 1
    // deleted and re-inserted all of them (48 rows a metric a minute, about
    // 14 million billed rows a month for 7 metrics). Only changes are
    // written now.
    let metered = Metered::new(Native::in_memory());
    let s = AlertStore::open(&metered).unwrap();
    let t0 = 1_764_000_000 - 1_764_000_000 % BUCKET_SECS;
    let mut counts: BTreeMap<i64, i64> = (0..24).map(|i| (t0 + i * BUCKET_SECS, 10 + i)).collect();
    let to = t0 + 24 * BUCKET_SECS;
    s.replace_series("logins", t0, to, &counts).unwrap();
    let first = metered.rows_written();
    assert_eq!(first, 24);
    // The next tick: the same two hours, one bucket grew.
    *counts.get_mut(&(t0 + 23 * BUCKET_SECS)).unwrap() += 3;
    s.replace_series("logins", t0, to, &counts).unwrap();
    assert_eq!(metered.rows_written() - first, 1);
    // A bucket that fell to zero is removed; the rest stays.
    counts.insert(t0, 0);
    s.replace_series("logins", t0, to, &counts).unwrap();
    assert_eq!(metered.rows_written() - first, 2);
    let loaded = s.load_series(t0).unwrap();
    assert_eq!(loaded.len(), 23);
    assert_eq!(loaded[&("logins".to_string(), t0 + 23 * BUCKET_SECS)], 36);
}

#[test]
fn regression_expired_silences_were_kept_forever_and_read_every_tick() {
    // Every silence ever created stayed in the table, and every tick read
    // them all. Ended ones now leave it SILENCE_RETENTION_SECS after their
    // end; the history line written at creation keeps the record.
    let config = shipped_config();
    let s = store();
    let now = DAY0 + 400 * 86_400;
    let limit = config.alerting.history_limit;
    let mk = |id: &str, rule: &str, until: i64| Silence {
        id: id.into(),
        rule: rule.into(),
        until,
        reason: format!("reason {id}"),
        author: "ops".into(),
        created_at: until - 3600,
    };
    // A year of silences, one a day, all ended long ago…
    for day in 0..365 {
        let old = mk(&format!("sil_{day:03}"), "logins_drop", DAY0 + day * 86_400);
        s.add_silence(&old).unwrap();
        s.append_history(
            &[silence_history(
                &config,
                &old,
                "silence created",
                old.created_at,
            )],
            limit,
        )
        .unwrap();
    }
    // …one ended just inside the retention, one ended just outside it, one
    // active, and one on every rule.
    let recent = mk(
        "sil_recent",
        "logins_drop",
        now - SILENCE_RETENTION_SECS + 60,
    );
    let just_out = mk(
        "sil_just_out",
        "logins_drop",
        now - SILENCE_RETENTION_SECS - 1,
    );
    let active = mk("sil_active", "signups_drop", now + 3600);
    let all = mk("sil_all", "*", now + 600);
    for x in [&recent, &just_out, &active, &all] {
        s.add_silence(x).unwrap();
        s.append_history(
            &[silence_history(&config, x, "silence created", x.created_at)],
            limit,
        )
        .unwrap();
    }
    assert_eq!(s.silences().unwrap().len(), 369);
    assert_eq!(s.prune_silences(now).unwrap(), 366);
    let ids: Vec<String> = s.silences().unwrap().into_iter().map(|x| x.id).collect();
    assert_eq!(ids, vec!["sil_recent", "sil_all", "sil_active"]);
    // Pruning again finds nothing; prune() prunes silences too.
    assert_eq!(s.prune_silences(now).unwrap(), 0);
    s.add_silence(&mk("sil_again", "*", now - SILENCE_RETENTION_SECS - 5))
        .unwrap();
    s.prune(now).unwrap();
    assert_eq!(s.silences().unwrap().len(), 3);

    // The pruned ones are still in the history, whole.
    let history = s.history(1000, Some("logins_drop")).unwrap();
    let kept = history
        .iter()
        .find(|h| h.silence.as_ref().is_some_and(|x| x.id == "sil_just_out"))
        .expect("the pruned silence's history line");
    assert_eq!(kept.silence.as_ref(), Some(&just_out));
    assert_eq!(kept.notice.as_deref(), Some("silence created"));
    assert_eq!(
        (kept.rule.as_str(), kept.metric.as_str()),
        ("logins_drop", "logins")
    );
    // A silence of every rule is listed under each rule's history.
    let signups = s.history(1000, Some("signups_drop")).unwrap();
    let rules: Vec<&str> = signups.iter().map(|h| h.rule.as_str()).collect();
    assert_eq!(rules, vec!["*", "signups_drop"]);
    assert_eq!(signups[0].metric, "");
}

#[test]
fn take_silence_returns_the_deleted_silence_once() {
    let s = store();
    let x = silence("sil_x", "logins_drop", DAY0);
    s.add_silence(&x).unwrap();
    assert_eq!(s.take_silence("sil_x").unwrap(), Some(x));
    assert_eq!(s.take_silence("sil_x").unwrap(), None);
}

#[test]
fn regression_one_410_disabled_a_receiver_for_good() {
    // One 410 disabled "ops": nothing re-enabled it, every notification
    // after it was still queued for it and never pruned, so a year later
    // hundreds of rows were re-read on every tick. Now its queue is held,
    // nothing new is queued (alert_book::dispatch skips it), held rows age
    // out, and re-enabling sends what is recent.
    let config = shipped_config();
    let s = store();
    let t = DAY0;
    let mut first = s.enqueue("ops", "evt_a_1", "firing", t).unwrap();
    let behind = s.enqueue("ops", "evt_a_2", "resolved", t + 300).unwrap();
    let other = s.enqueue("oncall", "evt_a_1", "trigger", t).unwrap();
    assert_eq!(first.record(&status(410), t + 1), Verdict::DisableReceiver);
    s.update_delivery(&first).unwrap();
    let held = s
        .disable_receiver("ops", t + 1, "the endpoint answered 410 Gone to evt_a_1")
        .unwrap();
    assert_eq!(held, 1, "the message behind the 410 is held too");
    let behind_now = s
        .pending()
        .unwrap()
        .into_iter()
        .find(|i| i.delivery.seq == behind.seq)
        .unwrap();
    assert_eq!(behind_now.delivery.state, DeliveryState::Disabled);
    assert_eq!(behind_now.delivery.held_at, Some(t + 1));

    // Shown as disabled, since when and why, with what it holds.
    let statuses = s.receiver_statuses(&config.receivers).unwrap();
    let ops = statuses.iter().find(|r| r.name == "ops").unwrap();
    assert!(!ops.enabled);
    assert_eq!(ops.disabled_since, Some(t + 1));
    assert_eq!(
        ops.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone to evt_a_1")
    );
    assert_eq!((ops.queued, ops.held), (0, 2));
    let oncall = statuses.iter().find(|r| r.name == "oncall").unwrap();
    assert!(oncall.enabled && oncall.disabled_since.is_none());
    assert_eq!((oncall.queued, oncall.held), (1, 0));
    // Nothing of ops is due, whatever the time; oncall is unaffected.
    let disabled = s.disabled_names().unwrap();
    let due_now: Vec<i64> = due(&queue(&s), &disabled, i64::MAX)
        .iter()
        .map(|d| d.seq)
        .collect();
    assert_eq!(due_now, vec![other.seq]);

    // A year of ticks queues nothing more for ops (dispatch skips it), and
    // the held rows leave the outbox a week after they were held.
    s.prune(t + OUTBOX_RETENTION_SECS - 60).unwrap();
    assert_eq!(s.pending().unwrap().len(), 3);
    s.prune(t + 365 * 86_400).unwrap();
    let left: Vec<String> = s
        .pending()
        .unwrap()
        .into_iter()
        .map(|i| format!("{}:{}", i.delivery.receiver, i.delivery.message_id))
        .collect();
    assert_eq!(
        left,
        vec!["oncall:evt_a_1"],
        "only the live queue is re-read"
    );
    // Still disabled until someone says otherwise.
    assert_eq!(s.disabled_names().unwrap(), vec!["ops"]);
}

#[test]
fn enabling_a_receiver_requeues_recent_held_messages_in_order() {
    let s = store();
    let t = DAY0;
    let mut first = s.enqueue("ops", "m1", "b1", t).unwrap();
    let second = s.enqueue("ops", "m2", "b2", t + 60).unwrap();
    first.record(&status(410), t + 1);
    s.update_delivery(&first).unwrap();
    s.disable_receiver("ops", t + 1, "410").unwrap();
    // Re-enabled an hour later: both go out again, oldest first.
    let (was, outcome) = s.enable_receiver("ops", t + 3600).unwrap();
    assert!(was);
    assert_eq!((outcome.requeued, outcome.given_up), (2, 0));
    assert!(s.disabled_receivers().unwrap().is_empty());
    let queue = queue(&s);
    assert!(queue
        .iter()
        .all(|d| d.state == DeliveryState::Queued && d.attempts == 0));
    let seqs: Vec<i64> = queue.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, vec![first.seq, second.seq]);
    let due_now: Vec<i64> = due(&queue, &[], t + 3600).iter().map(|d| d.seq).collect();
    assert_eq!(
        due_now,
        vec![first.seq],
        "oldest first, the second waits its turn"
    );
    assert_eq!(next_wake(&queue, &[]), Some(t + 3600));
    // Enabling an enabled receiver changes nothing.
    assert_eq!(
        s.enable_receiver("ops", t + 3601).unwrap(),
        (false, Enabled::default())
    );
}

#[test]
fn enabling_a_receiver_gives_up_held_messages_older_than_the_schedule() {
    let s = store();
    let t = DAY0;
    let mut old = s.enqueue("ops", "m_old", "b", t).unwrap();
    old.record(&status(410), t + 1);
    s.update_delivery(&old).unwrap();
    s.disable_receiver("ops", t + 1, "410").unwrap();
    let enabled_at = t + REQUEUE_MAX_AGE_SECS + 1;
    let (was, outcome) = s.enable_receiver("ops", enabled_at).unwrap();
    assert!(was);
    assert_eq!((outcome.requeued, outcome.given_up), (0, 1));
    let rows = s.recent(10).unwrap();
    assert_eq!(rows[0].delivery.state, DeliveryState::Dead);
    assert_eq!(
        rows[0].delivery.last_error.as_deref(),
        Some(TOO_OLD_TO_REQUEUE)
    );
    // Nothing blocks the receiver now: a new message is due at once.
    let fresh = s.enqueue("ops", "m_new", "b", enabled_at).unwrap();
    let queue = queue(&s);
    let due_now: Vec<i64> = due(&queue, &[], enabled_at).iter().map(|d| d.seq).collect();
    assert_eq!(due_now, vec![fresh.seq]);
    // The given-up row is kept for inspection, then pruned.
    s.prune(enabled_at + OUTBOX_RETENTION_SECS - 1).unwrap();
    assert_eq!(s.recent(10).unwrap().len(), 2);
    s.prune(enabled_at + OUTBOX_RETENTION_SECS + 1).unwrap();
    assert_eq!(s.recent(10).unwrap().len(), 1);
}

#[test]
fn prune_holds_messages_left_queued_for_a_disabled_receiver() {
    // Rows written before disabling held them: queued behind a 410, for a
    // receiver in the disabled table. Prune holds them, then ages them out.
    let s = store();
    let t = DAY0;
    // The old shell queued for a disabled receiver all the same.
    s.disable_receiver("ops", t, "410").unwrap();
    s.enqueue("ops", "m1", "b", t).unwrap();
    assert_eq!(
        s.pending().unwrap()[0].delivery.state,
        DeliveryState::Queued
    );
    s.prune(t + 60).unwrap();
    assert_eq!(
        s.pending().unwrap()[0].delivery.state,
        DeliveryState::Disabled
    );
    s.prune(t + 60 + OUTBOX_RETENTION_SECS + 1).unwrap();
    assert!(s.pending().unwrap().is_empty());
}

#[test]
fn pruning_runs_at_most_once_an_hour() {
    use bpm_edge::alert::alert_store::PRUNE_EVERY_SECS;
    let s = store();
    let now = DAY0 + 50 * 86_400;
    s.replace_series("logins", DAY0, DAY0 + B, &counts(&[(DAY0, 5)]))
        .unwrap();
    assert!(s.prune_when_due(now).unwrap());
    // The bucket was older than the series retention.
    assert!(s.load_series(0).unwrap().is_empty());
    s.replace_series("logins", DAY0, DAY0 + B, &counts(&[(DAY0, 5)]))
        .unwrap();
    assert!(!s.prune_when_due(now + PRUNE_EVERY_SECS - 1).unwrap());
    assert_eq!(s.load_series(0).unwrap().len(), 1);
    assert!(s.prune_when_due(now + PRUNE_EVERY_SECS).unwrap());
    assert!(s.load_series(0).unwrap().is_empty());
}

#[test]
fn annotations_are_posted_once_by_id_listed_by_time_deleted_and_pruned() {
    use bpm_edge::alert::alert_store::Posted;
    use bpm_edge::alert::annotation::{Annotation, AnnotationKind, ANNOTATION_RETENTION_SECS};
    let s = store();
    let note = |id: &str, at: i64, text: &str| Annotation {
        id: id.into(),
        kind: AnnotationKind::Deploy,
        at,
        text: text.into(),
        link: None,
        version: Some("2f9c1e0".into()),
    };
    let a = note("deploy-1", 1_000, "release");
    assert_eq!(s.add_annotation(&a).unwrap(), Posted::Created);
    // A retried CI step posts the same annotation again: nothing changes.
    assert_eq!(s.add_annotation(&a).unwrap(), Posted::Exists);
    assert_eq!(
        s.add_annotation(&note("deploy-1", 1_000, "other text"))
            .unwrap(),
        Posted::Conflict
    );
    s.add_annotation(&note("deploy-0", 500, "earlier")).unwrap();
    s.add_annotation(&note("deploy-2", 9_000, "later")).unwrap();
    let ids = |from, to| -> Vec<String> {
        s.annotations(from, to)
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    };
    assert_eq!(ids(0, 10_000), ["deploy-0", "deploy-1", "deploy-2"]);
    assert_eq!(ids(600, 9_000), ["deploy-1"]);
    assert_eq!(s.annotations(0, 10_000).unwrap()[1], a);
    assert!(s.delete_annotation("deploy-1").unwrap());
    assert!(!s.delete_annotation("deploy-1").unwrap());
    s.prune(600 + ANNOTATION_RETENTION_SECS).unwrap();
    assert_eq!(ids(0, i64::MAX), ["deploy-2"]);
}

#[test]
fn a_digest_is_recorded_once_and_the_last_one_is_kept() {
    let s = store();
    assert_eq!(s.last_digest().unwrap(), None);
    assert!(!s.digest_recorded("digest:demo:1").unwrap());
    assert!(s.record_digest("digest:demo:1", 100, "{\"n\":1}").unwrap());
    // The cron firing twice, or a restarted object: already recorded.
    assert!(!s.record_digest("digest:demo:1", 160, "{\"n\":2}").unwrap());
    assert!(s.digest_recorded("digest:demo:1").unwrap());
    assert_eq!(s.last_digest().unwrap().as_deref(), Some("{\"n\":1}"));
    assert!(s.record_digest("digest:demo:2", 700, "{\"n\":3}").unwrap());
    assert_eq!(s.last_digest().unwrap().as_deref(), Some("{\"n\":3}"));
}
