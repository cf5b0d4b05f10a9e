//! Unique visitors' real SQL against SQLite: sketches merged into a shard
//! exactly once per batch, read per hour or merged, expired with hour rows,
//! never stored with an IP; and the salt store's daily rotation.

use bpm_edge::count::tally::{Batch, Flush, Row, SketchRow};
use bpm_edge::count::visitors::{visitor_hash, Salt, SaltError};
use bpm_edge::report::uniques::SketchQuery;
use bpm_edge::sql::{Sql, SqlValue};
use bpm_edge::time::HOUR;
use bpm_edge::windows::counter_store::{CounterStore, StoreLimits};
use bpm_edge::windows::salt_store::{SaltStore, SaltStoreError};
use bpm_edge::windows::sketch::VisitorSketch;
use std::cell::Cell;

mod common;
use common::Native;

const DAY0: i64 = 20_400 * 86_400;
const H: i64 = HOUR;
const LIMITS: StoreLimits = StoreLimits {
    max_values: 50,
    retention_days: (8, 400, 0),
};

fn store() -> CounterStore<Native> {
    CounterStore::open(Native::in_memory(), LIMITS).unwrap()
}

/// The sketch of visitors `ids` (hashed as the worker does, under `salt`).
fn visitors(ids: std::ops::Range<u32>) -> VisitorSketch {
    let salt = Salt::new([7; 32]);
    let mut s = VisitorSketch::new();
    for i in ids {
        s.insert_hash(visitor_hash(
            &salt,
            "demo",
            &format!("198.51.100.{}", i % 250),
            &format!("agent {}", i / 250),
        ));
    }
    s
}

fn flush(id: &str, sketches: Vec<(i64, VisitorSketch)>) -> Flush {
    Flush {
        id: id.into(),
        requests: 1,
        rows: vec![Row(DAY0, "logins".into(), "count".into(), String::new(), 1)],
        sketches: sketches
            .into_iter()
            .map(|(h, s)| SketchRow(h, "logins".into(), s))
            .collect(),
    }
}

fn read(s: &CounterStore<Native>, from: i64, to: i64, hourly: bool) -> Vec<(i64, u64)> {
    s.read_sketches(&SketchQuery {
        metric: "logins".into(),
        from,
        to,
        hourly,
    })
    .unwrap()
    .into_iter()
    .map(|(h, sk)| (h, sk.count()))
    .collect()
}

#[test]
fn sketches_merge_per_hour_once_per_batch() {
    let s = store();
    let a = s
        .apply_flush(
            flush(
                "i-0",
                vec![(DAY0, visitors(0..30)), (DAY0 + H, visitors(0..5))],
            ),
            DAY0,
        )
        .unwrap();
    assert!(a.applied);
    // Another isolate saw visitors 20..60 in the first hour.
    s.apply_flush(flush("j-0", vec![(DAY0, visitors(20..60))]), DAY0)
        .unwrap();
    // A retried batch changes nothing (and max-merging would not either).
    let again = s
        .apply_flush(flush("j-0", vec![(DAY0, visitors(100..200))]), DAY0)
        .unwrap();
    assert!(!again.applied);
    assert_eq!(
        read(&s, DAY0, DAY0 + 2 * H, true),
        vec![(DAY0, 60), (DAY0 + H, 5)]
    );
    // Merged over the range: a union, not 60 + 5.
    assert_eq!(read(&s, DAY0, DAY0 + 2 * H, false), vec![(DAY0, 60)]);
    // `to` is exclusive; an empty range has no sketch.
    assert_eq!(read(&s, DAY0 + H, DAY0 + 2 * H, false), vec![(DAY0 + H, 5)]);
    assert_eq!(read(&s, DAY0 + 5 * H, DAY0 + 6 * H, false), vec![]);
    // A plain batch (backfill) still applies; one with nothing new does not.
    let plain = Batch {
        id: "b-0".into(),
        requests: 0,
        rows: vec![bpm_edge::count::tally::Row(
            DAY0,
            "logins".into(),
            "count".into(),
            String::new(),
            1,
        )],
    };
    assert!(s.apply(plain).unwrap().applied);
    let empty = Batch {
        id: "b-1".into(),
        requests: 0,
        rows: vec![],
    };
    assert!(!s.apply(empty).unwrap().applied);
}

#[test]
fn large_hours_go_dense_and_stay_within_the_error_bound() {
    let s = store();
    for (i, part) in [0..20_000u32, 15_000..40_000, 39_000..50_000]
        .into_iter()
        .enumerate()
    {
        s.apply_flush(flush(&format!("i-{i}"), vec![(DAY0, visitors(part))]), DAY0)
            .unwrap();
    }
    let got = read(&s, DAY0, DAY0 + H, true)[0].1 as f64;
    let rel = (got - 50_000.0) / 50_000.0;
    assert!(
        rel.abs() < 3.0 * bpm_edge::windows::sketch::STANDARD_ERROR,
        "{got}"
    );
}

#[test]
fn sketches_expire_with_hour_rows_and_unreadable_ones_are_replaced() {
    let sql = Native::in_memory();
    let s = CounterStore::open(sql, LIMITS).unwrap();
    s.apply_flush(flush("i-0", vec![(DAY0, visitors(0..3))]), DAY0)
        .unwrap();
    s.apply_flush(flush("i-1", vec![(DAY0 + 2 * H, visitors(0..4))]), DAY0)
        .unwrap();
    // 400 days later, the first hour is past retention, the other not yet.
    s.maintain(DAY0 + 400 * 86_400 + H + 60).unwrap();
    assert_eq!(
        read(&s, DAY0 - H, DAY0 + 3 * H, true),
        vec![(DAY0 + 2 * H, 4)]
    );

    // A corrupt stored sketch is skipped on reads and replaced on writes.
    let (s, raw, _db) = on_file("corrupt");
    s.apply_flush(flush("i-0", vec![(DAY0, visitors(0..3))]), DAY0)
        .unwrap();
    s.fold().unwrap();
    raw.exec(
        "UPDATE visitor_sketches SET sketch = ?",
        vec![SqlValue::Blob(vec![9, 9, 9])],
    )
    .unwrap();
    assert_eq!(read(&s, DAY0, DAY0 + H, true), vec![]);
    s.apply_flush(flush("i-1", vec![(DAY0, visitors(0..2))]), DAY0)
        .unwrap();
    assert_eq!(read(&s, DAY0, DAY0 + H, true), vec![(DAY0, 2)]);
}

/// Deletes its database file when dropped.
struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A store on a fresh database file, and a second connection to it.
fn on_file(name: &str) -> (CounterStore<Native>, Native, TempDb) {
    let path = std::env::temp_dir().join(format!(
        "bpm-visitor-store-{name}-{}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let s = CounterStore::open(Native(rusqlite::Connection::open(&path).unwrap()), LIMITS).unwrap();
    let raw = Native(rusqlite::Connection::open(&path).unwrap());
    (s, raw, TempDb(path))
}

#[test]
fn stored_sketches_hold_no_ip_address() {
    let (s, raw, _db) = on_file("no-ip");
    s.apply_flush(flush("i-0", vec![(DAY0, visitors(0..300))]), DAY0)
        .unwrap();
    s.fold().unwrap();
    let rows = raw
        .exec("SELECT sketch FROM visitor_sketches", vec![])
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1);
    let bytes = rows[0][0].blob().unwrap();
    for needle in [&b"198.51.100."[..], b"agent", &[198, 51, 100]] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn salts_rotate_daily_keep_yesterday_and_never_change() {
    let store = SaltStore::open(Native::in_memory()).unwrap();
    let made = Cell::new(0u8);
    let fresh = || {
        made.set(made.get() + 1);
        Salt::new([made.get(); 32])
    };
    let day1 = store.salt_for(100, 100, fresh).unwrap();
    // Asked again, the same day keeps its salt.
    assert_eq!(store.salt_for(100, 100, fresh).unwrap(), day1);
    assert_eq!(made.get(), 1);
    // Next day: a new salt; yesterday's is still served (late flushes).
    let day2 = store.salt_for(101, 101, fresh).unwrap();
    assert_ne!(day2, day1);
    assert_eq!(store.salt_for(100, 101, fresh).unwrap(), day1);
    // An isolate slightly ahead at midnight may ask for tomorrow.
    let day3 = store.salt_for(102, 101, fresh).unwrap();
    assert_eq!(store.days().unwrap(), vec![100, 101, 102]);
    // Two days on, the day before yesterday is gone and refused.
    assert_eq!(store.salt_for(102, 102, fresh).unwrap(), day3);
    assert_eq!(store.days().unwrap(), vec![101, 102]);
    assert_eq!(
        store.salt_for(100, 102, fresh),
        Err(SaltStoreError::Refused(SaltError::OutsideWindow {
            day: 100,
            today: 102
        }))
    );
    assert!(store.salt_for(104, 102, fresh).is_err());
    assert_eq!(made.get(), 3);
}
