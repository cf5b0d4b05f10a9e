//! `[digest]`: when a site's BPM scorecard goes out and to whom. Weekly on
//! Monday at 09:00 site-local time unless the table says otherwise; daily
//! is possible. Without `receivers` the digest is only previewed, never
//! sent.

use serde::{Deserialize, Serialize};

/// How often the digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestEvery {
    /// Each morning, about the local day before.
    Day,
    /// On `weekday`, about the 7 local days before.
    Week,
}

/// When and to whom the digest is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSettings {
    pub every: DigestEvery,
    /// The weekday a weekly digest is sent: 0 Monday … 6 Sunday. Its weeks
    /// start on that day.
    pub weekday: u8,
    /// Minutes after local midnight it is sent.
    pub at_minute: u32,
    /// Receiver names; none: previewed only.
    pub receivers: Vec<String>,
}

impl Default for DigestSettings {
    fn default() -> Self {
        DigestSettings {
            every: DigestEvery::Week,
            weekday: 0,
            at_minute: 9 * 60,
            receivers: Vec::new(),
        }
    }
}

/// Weekday names as `[digest] weekday` takes them, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// `"09:00"` → minutes after midnight.
pub fn parse_clock(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod parse {
    use super::*;
    use crate::config::checker::Checker;
    use crate::config::rules::Receiver;
    use toml::Spanned;

    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawDigest {
        every: Option<Spanned<String>>,
        weekday: Option<Spanned<String>>,
        at: Option<Spanned<String>>,
        receivers: Option<Spanned<Vec<String>>>,
    }

    pub fn check_digest(
        c: &mut Checker,
        raw: Option<&Spanned<RawDigest>>,
        receivers: &[Receiver],
    ) -> DigestSettings {
        let mut d = DigestSettings::default();
        let Some(raw) = raw else { return d };
        let r = raw.get_ref();
        if let Some(every) = &r.every {
            match every.get_ref().as_str() {
                "day" => d.every = DigestEvery::Day,
                "week" => d.every = DigestEvery::Week,
                other => c.error(
                    every.span(),
                    "digest.every",
                    format!("{other:?} is not \"week\" or \"day\""),
                ),
            }
        }
        if let Some(day) = &r.weekday {
            let lower = day.get_ref().to_ascii_lowercase();
            match WEEKDAYS.iter().position(|w| *w == lower) {
                Some(i) => d.weekday = i as u8,
                None => c.error(
                    day.span(),
                    "digest.weekday",
                    format!("{:?} is not a weekday (monday … sunday)", day.get_ref()),
                ),
            }
            if d.every == DigestEvery::Day {
                c.error(
                    day.span(),
                    "digest.weekday",
                    "a daily digest has no weekday",
                );
            }
        }
        if let Some(at) = &r.at {
            match parse_clock(at.get_ref()) {
                Some(m) => d.at_minute = m,
                None => c.error(
                    at.span(),
                    "digest.at",
                    format!("{:?} is not a local time like \"09:00\"", at.get_ref()),
                ),
            }
        }
        if let Some(list) = &r.receivers {
            for name in list.get_ref() {
                if !receivers.iter().any(|x| &x.name == name) {
                    c.error(
                        list.span(),
                        "digest.receivers",
                        format!("{name:?} is not a [[receiver]] of this file"),
                    );
                } else if !d.receivers.contains(name) {
                    d.receivers.push(name.clone());
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    const RECEIVER: &str =
        "[[receiver]]\nname = \"ops\"\nformat = \"json\"\nurl = \"http://127.0.0.1:9/h\"\n";

    fn digest(table: &str) -> Result<DigestSettings, String> {
        parse_toml(&format!("{RECEIVER}[digest]\n{table}"), "bpm.toml")
            .map(|c| c.digest)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn weekly_on_monday_at_nine_by_default() {
        let c = parse_toml(RECEIVER, "bpm.toml").unwrap();
        assert_eq!(c.digest, DigestSettings::default());
        assert_eq!(c.digest.at_minute, 540);
        let d = digest("every = \"day\"\nat = \"7:30\"\nreceivers = [\"ops\", \"ops\"]\n").unwrap();
        assert_eq!(d.every, DigestEvery::Day);
        assert_eq!(d.at_minute, 450);
        assert_eq!(d.receivers, ["ops"]);
        let w = digest("weekday = \"Friday\"\nat = \"17:05\"\n").unwrap();
        assert_eq!((w.weekday, w.at_minute), (4, 17 * 60 + 5));
    }

    #[test]
    fn bad_values_name_their_field() {
        let e = digest(
            "every = \"month\"\nweekday = \"someday\"\nat = \"25:00\"\nreceivers = [\"nobody\"]\n",
        )
        .unwrap_err();
        for field in [
            "digest.every",
            "digest.weekday",
            "digest.at",
            "digest.receivers",
        ] {
            assert!(e.contains(field), "{field}: {e}");
        }
        let e = digest("every = \"day\"\nweekday = \"monday\"\n").unwrap_err();
        assert!(e.contains("a daily digest has no weekday"), "{e}");
        assert_eq!(parse_clock("09:00"), Some(540));
        assert_eq!(parse_clock("9:5"), None);
        assert_eq!(parse_clock("24:00"), None);
    }
}
