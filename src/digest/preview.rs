//! `GET /_bpm/api/digest`: which digest to show and in which format.
//! `period=latest` (default: the latest period whose send time has
//! passed), `previous` (the one before it) or `sent` (the last digest
//! queued to the receivers, its JSON as sent; `null` before the first); `format=json` (default: the
//! generic JSON receivers get, with its HTML body) or `slack` (the Slack
//! message's body).

use std::fmt;

/// Which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewPeriod {
    Latest,
    Previous,
    /// The last digest queued to the receivers, as it was sent (JSON).
    Sent,
}

/// Which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    Json,
    Slack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestQuery {
    pub period: PreviewPeriod,
    pub format: PreviewFormat,
}

/// A parameter with a value the endpoint does not take (a `400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestQueryError {
    pub param: &'static str,
    pub value: String,
}

impl fmt::Display for DigestQueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let takes = match self.param {
            "period" => "latest, previous or sent",
            _ => "json or slack",
        };
        write!(f, "`{}` is {takes}, not {:?}", self.param, self.value)
    }
}

impl std::error::Error for DigestQueryError {}

impl DigestQuery {
    /// `query` is a URL's query without its `?`; unknown parameters are
    /// ignored, a repeated one's last value counts.
    pub fn parse(query: &str) -> Result<Self, DigestQueryError> {
        let mut q = DigestQuery {
            period: PreviewPeriod::Latest,
            format: PreviewFormat::Json,
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let bad = |param| DigestQueryError {
                param,
                value: v.to_string(),
            };
            match k.as_ref() {
                "period" => {
                    q.period = match v.as_ref() {
                        "latest" => PreviewPeriod::Latest,
                        "previous" => PreviewPeriod::Previous,
                        "sent" => PreviewPeriod::Sent,
                        _ => return Err(bad("period")),
                    }
                }
                "format" => {
                    q.format = match v.as_ref() {
                        "json" => PreviewFormat::Json,
                        "slack" => PreviewFormat::Slack,
                        _ => return Err(bad("format")),
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_choices_and_refusals() {
        let d = DigestQuery::parse("").unwrap();
        assert_eq!(
            (d.period, d.format),
            (PreviewPeriod::Latest, PreviewFormat::Json)
        );
        let q = DigestQuery::parse("period=previous&format=slack&x=1").unwrap();
        assert_eq!(
            (q.period, q.format),
            (PreviewPeriod::Previous, PreviewFormat::Slack)
        );
        let e = DigestQuery::parse("format=pdf").unwrap_err();
        assert_eq!(e.to_string(), "`format` is json or slack, not \"pdf\"");
        assert!(DigestQuery::parse("period=2026").is_err());
        assert_eq!(
            DigestQuery::parse("period=sent").unwrap().period,
            PreviewPeriod::Sent
        );
    }
}
