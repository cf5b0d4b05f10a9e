//! Fixtures shared by the alert pipeline's unit tests: the "shop" site
//! with a `logins_drop` rule and a `traffic_down` rule that inhibits every
//! other rule (`inhibits = ["*"]`), both notifying the receiver `ops`
//! after a `group_wait` of 60 s.

use crate::alert::alert_book::SeriesSet;
use crate::alert::detector::CountSeries;
use crate::alert::silence::Silence;
use crate::config::Config;
use crate::time::{BUCKET_SECS, WEEK};

/// The shop site's `[site]`, `[alerting]` (a `group_wait` of 60 s) and its
/// `logins` metric, which both test sites start with.
const SHOP_WITH_LOGINS: &str = r#"
[site]
name = "shop"
url = "https://shop.example"

[alerting]
group_wait = "60s"

[[metric]]
name = "logins"
stage = "retention"
description = "Logins"
owner = "identity"
match = { method = "POST", path = "/login" }
"#;

/// The rest of the shop site's `bpm.toml`.
const CONFIG: &str = r#"
[[metric]]
name = "traffic"
stage = "other"
description = "All requests"
match = { path = "/**" }

[[receiver]]
name = "ops"
url = "https://hooks.example/ops"

[[alert]]
name = "logins_drop"
metric = "logins"
severity = "critical"
receivers = ["ops"]

[[alert]]
name = "traffic_down"
metric = "traffic"
severity = "critical"
receivers = ["ops"]
inhibits = ["*"]
"#;

/// The shop site's config, validated.
pub fn config() -> Config {
    shop_with(CONFIG)
}

/// The shop site with its logins metric and `rest`, validated.
fn shop_with(rest: &str) -> Config {
    crate::config::parse_toml(&format!("{SHOP_WITH_LOGINS}{rest}"), "test.toml").unwrap()
}

/// The silence `sil_1` of `rule` (or `*`) until `until`.
pub fn silence(rule: &str, until: i64) -> Silence {
    Silence {
        id: "sil_1".into(),
        rule: rule.into(),
        until,
        reason: "maintenance".into(),
        author: "ops".into(),
        created_at: 0,
    }
}

/// The end of the five weeks of baseline the test series start with.
pub const T0: i64 = 5 * WEEK;

/// Five flat weeks at `rate` per bucket, from 0 to [`T0`], then `tail`.
pub fn weeks_then(rate: f64, tail: impl IntoIterator<Item = f64>) -> CountSeries {
    let mut counts = vec![rate; (T0 / BUCKET_SECS) as usize];
    counts.extend(tail);
    CountSeries::from_counts(0, BUCKET_SECS, &counts)
}

/// The rest of a site whose two rules notify an Alertmanager receiver `am`
/// (one group: the site), `logins_drop` also the JSON receiver `ops`.
const GROUPED: &str = r#"
[[metric]]
name = "signups"
stage = "activation"
description = "Signups"
match = { method = "POST", path = "/signup" }

[[receiver]]
name = "am"
format = "alertmanager"
url = "https://am.example/hook"

[[receiver]]
name = "ops"
url = "https://hooks.example/ops"

[[alert]]
name = "logins_drop"
metric = "logins"
severity = "critical"
receivers = ["am", "ops"]

[[alert]]
name = "signups_drop"
metric = "signups"
severity = "critical"
receivers = ["am"]
"#;

/// The grouped site's config, validated.
pub fn grouped() -> Config {
    shop_with(GROUPED)
}

/// Five flat weeks of logins and signups, then two overlapping outages.
pub fn two_outages() -> SeriesSet {
    let mk = |down: std::ops::Range<usize>| {
        weeks_then(
            50.0,
            (0..60).map(|i| if down.contains(&i) { 0.0 } else { 50.0 }),
        )
    };
    let mut s = SeriesSet::default();
    // Logins stop for 30 minutes; signups stop a quarter of an hour
    // later and stay down until well after logins recovered.
    s.series.insert("logins".into(), mk(0..6));
    s.series.insert("signups".into(), mk(3..30));
    s
}
