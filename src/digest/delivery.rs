//! Who gets the digest and what each receiver gets: the `[digest]`
//! receivers (or the Worker var `BPM_DIGEST_RECEIVERS`, comma-separated,
//! which overrides them without a rebuild), of the formats a scorecard
//! reads well in: `json` (the generic JSON with its HTML body) and `slack`.
//! A PagerDuty or Alertmanager receiver takes alerts, not reports: it is
//! left out, and said so.

use crate::config::rules::{Receiver, WebhookFormat};
use crate::config::sitetime::SiteTime;
use crate::config::Config;
use crate::digest::message;
use crate::digest::scorecard::Scorecard;

/// The receivers the digest goes to, and the names left out with why.
pub fn receivers<'a>(
    config: &'a Config,
    var: Option<&str>,
) -> (Vec<&'a Receiver>, Vec<(String, &'static str)>) {
    let names: Vec<String> = match var {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        None => config.digest.receivers.clone(),
    };
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for name in names {
        match config.receiver(&name) {
            None => left_out.push((name, "is not a [[receiver]]")),
            Some(r) if matches!(r.format, WebhookFormat::Json | WebhookFormat::Slack) => {
                if !out.iter().any(|x: &&Receiver| x.name == r.name) {
                    out.push(r);
                }
            }
            Some(_) => left_out.push((name, "takes alerts, not the digest (json or slack only)")),
        }
    }
    (out, left_out)
}

/// The body `receiver` gets for `card`: `json` (the digest's generic JSON,
/// rendered once for every receiver and the record) or its Slack message.
pub fn body(card: &Scorecard, zone: &SiteTime, json: &str, receiver: &Receiver) -> Option<String> {
    match receiver.format {
        WebhookFormat::Json => Some(json.to_string()),
        WebhookFormat::Slack => serde_json::to_string(&message::slack(card, zone)).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    #[test]
    fn the_var_overrides_the_table_and_alert_only_formats_are_left_out() {
        let text = format!(
            "{}\n[digest]\nreceivers = [\"ops\", \"marketing\", \"oncall\"]\n",
            include_str!("../../bpm.toml")
        );
        let config = parse_toml(&text, "bpm.toml").unwrap();
        let (to, left_out) = receivers(&config, None);
        let names: Vec<&str> = to.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ops", "marketing"]);
        assert_eq!(left_out.len(), 1);
        assert_eq!(left_out[0].0, "oncall");
        let (to, left_out) = receivers(&config, Some(" ops , ops,nobody,"));
        assert_eq!(to.len(), 1);
        assert_eq!(
            left_out,
            vec![("nobody".to_string(), "is not a [[receiver]]")]
        );
        let shipped = parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        assert!(receivers(&shipped, None).0.is_empty());
    }
}
