//! Reading Cloudflare Logpush `http_requests` records (JSON lines, the log
//! a Cloudflare user actually has) into the facts the classifier takes, as
//! `accesslog` does for nginx/Apache lines.
//!
//! Fields read, all optional but the method, URI and a status:
//! `ClientRequestMethod`, `ClientRequestURI` (path and query),
//! `ClientRequestHost`, `ClientRequestReferer`, `ClientRequestUserAgent`,
//! `EdgeResponseStatus` (else `OriginResponseStatus`), `EdgeStartTimestamp`
//! (Unix seconds, ms, µs or ns, as the job's `timestamp_format` writes it,
//! or RFC 3339), `OriginResponseDurationMs`, `BotScore`,
//! `VerifiedBotCategory`, and a `location` in the custom `ResponseHeaders`
//! field when the job logs it (then `location` conditions can be replayed,
//! unlike from an access log).
//!
//! A record that is not such an object yields `None`; nothing here panics
//! on arbitrary input.

use crate::count::agent::CfSignals;
use crate::count::classify::{RequestFacts, ResponseFacts};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One Logpush `http_requests` record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogpushRecord {
    client_request_method: Option<String>,
    #[serde(rename = "ClientRequestURI")]
    client_request_uri: Option<String>,
    client_request_host: Option<String>,
    client_request_referer: Option<String>,
    client_request_user_agent: Option<String>,
    edge_response_status: Option<u16>,
    origin_response_status: Option<u16>,
    edge_start_timestamp: Option<serde_json::Value>,
    origin_response_duration_ms: Option<f64>,
    bot_score: Option<u8>,
    verified_bot_category: Option<String>,
    response_headers: Option<BTreeMap<String, String>>,
}

impl LogpushRecord {
    /// The record of one JSON line, if it has a method, a URI, a status
    /// and a readable time.
    pub fn parse(line: &str) -> Option<Self> {
        let r: LogpushRecord = serde_json::from_str(line.trim()).ok()?;
        let usable = r
            .client_request_method
            .as_deref()
            .is_some_and(|m| !m.is_empty())
            && r.client_request_uri.is_some()
            && r.status() != 0
            && r.at_secs().is_some();
        usable.then_some(r)
    }

    /// When the request reached the edge (Unix seconds).
    pub fn at_secs(&self) -> Option<i64> {
        match self.edge_start_timestamp.as_ref()? {
            serde_json::Value::Number(n) => {
                let v = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
                // Seconds until 5138 AD; past that the unit is finer.
                Some(match v.unsigned_abs() {
                    0..=99_999_999_999 => v,
                    100_000_000_000..=99_999_999_999_999 => v / 1_000,
                    100_000_000_000_000..=99_999_999_999_999_999 => v / 1_000_000,
                    _ => v / 1_000_000_000,
                })
            }
            serde_json::Value::String(s) => crate::time::parse_rfc3339(s),
            _ => None,
        }
    }

    /// What the visitor got: the edge's status, else the origin's.
    pub fn status(&self) -> u16 {
        self.edge_response_status
            .filter(|s| *s != 0)
            .or(self.origin_response_status)
            .unwrap_or(0)
    }

    /// The request's host, else `fallback`.
    pub fn host<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.client_request_host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(fallback)
    }

    pub fn request_facts<'a>(&'a self, host: &'a str) -> RequestFacts<'a> {
        let present = |s: &'a Option<String>| s.as_deref().filter(|v| !v.is_empty());
        RequestFacts {
            method: self.client_request_method.as_deref().unwrap_or(""),
            target: self.client_request_uri.as_deref().unwrap_or("").as_bytes(),
            host: self.host(host),
            referer: present(&self.client_request_referer).map(str::as_bytes),
            user_agent: present(&self.client_request_user_agent).map(str::as_bytes),
            cf: CfSignals {
                score: self.bot_score.filter(|s| (1..=99).contains(s)),
                verified_bot: present(&self.verified_bot_category).is_some(),
            },
        }
    }

    pub fn response_facts(&self) -> ResponseFacts<'_> {
        let location = self.response_headers.as_ref().and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.as_str())
        });
        ResponseFacts {
            status: self.status(),
            location,
            latency_ms: self.origin_response_duration_ms.unwrap_or(0.0).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_job_record_is_read() {
        let line = r#"{"ClientIP":"203.0.113.7","ClientRequestHost":"shop.example","ClientRequestMethod":"GET","ClientRequestURI":"/pricing?utm_source=news","ClientRequestReferer":"https://www.google.com/","ClientRequestUserAgent":"Mozilla/5.0","EdgeResponseStatus":200,"EdgeStartTimestamp":1764547200000000000,"RayID":"8c"}"#;
        let r = LogpushRecord::parse(line).unwrap();
        assert_eq!(r.at_secs(), Some(1_764_547_200));
        let facts = r.request_facts("fallback.example");
        assert_eq!(facts.method, "GET");
        assert_eq!(facts.target, b"/pricing?utm_source=news");
        assert_eq!(facts.host, "shop.example");
        assert_eq!(facts.referer, Some(&b"https://www.google.com/"[..]));
        assert_eq!(r.response_facts().status, 200);
        assert_eq!(r.response_facts().location, None);
    }

    #[test]
    fn timestamps_in_every_format_a_job_writes() {
        let at = |ts: &str| {
            LogpushRecord::parse(&format!(
                r#"{{"ClientRequestMethod":"GET","ClientRequestURI":"/","EdgeResponseStatus":200,"EdgeStartTimestamp":{ts}}}"#
            ))
            .and_then(|r| r.at_secs())
        };
        for ts in [
            "1764547200",
            "1764547200000",
            "1764547200000000",
            "1764547200000000000",
            r#""2025-12-01T00:00:00Z""#,
        ] {
            assert_eq!(at(ts), Some(1_764_547_200), "{ts}");
        }
        assert_eq!(at(r#""yesterday""#), None);
    }

    #[test]
    fn location_latency_and_bot_signals_are_read_when_logged() {
        let line = r#"{"ClientRequestMethod":"POST","ClientRequestURI":"/login","EdgeResponseStatus":302,"EdgeStartTimestamp":"2025-12-01T00:00:00Z","OriginResponseDurationMs":87,"BotScore":12,"VerifiedBotCategory":"","ResponseHeaders":{"Location":"/dashboard"}}"#;
        let r = LogpushRecord::parse(line).unwrap();
        let resp = r.response_facts();
        assert_eq!(resp.location, Some("/dashboard"));
        assert_eq!(resp.latency_ms, 87.0);
        let facts = r.request_facts("h");
        assert_eq!(facts.host, "h");
        assert_eq!(facts.cf.score, Some(12));
        assert!(!facts.cf.verified_bot);
    }

    #[test]
    fn records_without_a_request_or_status_are_none() {
        for bad in [
            "",
            "garbage",
            "[]",
            "5",
            r#"{"ClientRequestURI":"/","EdgeResponseStatus":200,"EdgeStartTimestamp":1}"#,
            r#"{"ClientRequestMethod":"GET","EdgeResponseStatus":200,"EdgeStartTimestamp":1}"#,
            r#"{"ClientRequestMethod":"GET","ClientRequestURI":"/","EdgeStartTimestamp":1}"#,
            r#"{"ClientRequestMethod":"GET","ClientRequestURI":"/","EdgeResponseStatus":200}"#,
            r#"{"ClientRequestMethod":"GET","ClientRequestURI":"/","EdgeResponseStatus":"x","EdgeStartTimestamp":1}"#,
        ] {
            assert!(LogpushRecord::parse(bad).is_none(), "{bad:?}");
        }
    }
}
