//! Fixtures shared by the alert pipeline's unit tests: the "shop" site
//! with a `logins_drop` rule and a `traffic_down` rule that inhibits every
//! other rule (`inhibits = ["*"]`), both notifying the receiver `ops`
//! after a `group_wait` of 60 s.

use crate::alert::alert_book::SeriesSet;
use crate::alert::detector::CountSeries;
use crate::alert::silence::Silence;
use crate::config::Config;
use crate::time::{BUCKET_SECS, WEEK};

/// The shop site's `bpm.toml`.
const CONFIG: &str = r#"
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
    crate::config::parse_toml(CONFIG, "test.toml").unwrap()
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

/// A site whose two rules notify an Alertmanager receiver `am` (one group:
/// the site), `logins_drop` also the JSON receiver `ops`.
const GROUPED: &str = r#"
[site]
name = "shop"
url = "https://shop.example"

[alerting]
group_wait = "60s"

[[metric]]
name = "logins"
stage = "retention"
description = "Logins"
match = { method = "POST", path = "/login" }

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
    crate::config::parse_toml(GROUPED, "test.toml").unwrap()
}

/// Five flat weeks of logins and signups, then two overlapping outages.
pub fn two_outages() -> SeriesSet {
    let n = (5 * WEEK / BUCKET_SECS) as usize;
    let mk = |down: std::ops::Range<usize>| {
        let mut v = vec![50.0; n];
        v.extend((0..60).map(|i| if down.contains(&i) { 0.0 } else { 50.0 }));
        CountSeries::from_counts(0, BUCKET_SECS, &v)
    };
    let mut s = SeriesSet::default();
    // Logins stop for 30 minutes; signups stop a quarter of an hour
    // later and stay down until well after logins recovered.
    s.series.insert("logins".into(), mk(0..6));
    s.series.insert("signups".into(), mk(3..30));
    s
}
