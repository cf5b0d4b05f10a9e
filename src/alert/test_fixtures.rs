//! Fixtures shared by the alert pipeline's unit tests: the "shop" site
//! with a `logins_drop` rule and a `traffic_down` rule that inhibits every
//! other rule (`inhibits = ["*"]`), both notifying the receiver `ops`
//! after a `group_wait` of 60 s.

use crate::alert::silence::Silence;
use crate::config::Config;

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
