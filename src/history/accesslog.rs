//! Reading nginx/Apache access-log lines (combined and common formats) into
//! the facts the classifier takes, so logs can be replayed through the same
//! code the worker runs (benchmarks now, `bpm-edge replay` later).
//!
//! A malformed line yields `None`; nothing here panics on arbitrary bytes.

use crate::count::classify::{RequestFacts, ResponseFacts};

/// One parsed log line, borrowing from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The timestamp as written between `[` and `]`.
    pub time: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
    /// `None` for a missing field or `-`.
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl<'a> LogLine<'a> {
    /// Parses `host ident user [time] "request" status size ["referer" "agent"]`.
    pub fn parse(line: &'a str) -> Option<Self> {
        let open = line.find('[')?;
        let close = open + line.get(open..)?.find(']')?;
        let time = line.get(open + 1..close)?;
        let rest = line.get(close + 1..)?.trim_start();
        let (request, rest) = quoted(rest)?;
        let mut parts = request.split(' ');
        let method = parts.next().filter(|m| !m.is_empty())?;
        let target = parts.next()?;
        let mut fields = rest.trim_start().splitn(3, ' ');
        let status: u16 = fields.next()?.parse().ok()?;
        let _size = fields.next()?;
        let tail = fields.next().unwrap_or("").trim_start();
        let (referer, user_agent) = match quoted(tail) {
            Some((r, after)) => (
                dash_none(r),
                quoted(after.trim_start()).and_then(|(u, _)| dash_none(u)),
            ),
            None => (None, None),
        };
        Some(LogLine {
            time,
            method,
            target,
            status,
            referer,
            user_agent,
        })
    }

    pub fn request_facts(&self, host: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            method: self.method,
            target: self.target.as_bytes(),
            host,
            referer: self.referer.map(str::as_bytes),
            user_agent: self.user_agent.map(str::as_bytes),
            cf: Default::default(),
        }
    }

    /// Logs carry no `Location` or latency; both are left empty.
    pub fn response_facts(&self) -> ResponseFacts<'static> {
        ResponseFacts {
            status: self.status,
            location: None,
            latency_ms: 0.0,
        }
    }
}

/// `"text" rest` → (text, rest); `\"` inside the quotes is kept as is.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'\\') => i += 2,
            Some(b'"') => return Some((body.get(..i)?, body.get(i + 1..)?)),
            _ => i += 1,
        }
    }
    None
}

fn dash_none(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "-").then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let line = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36""#;
        let l = LogLine::parse(line).unwrap();
        assert_eq!(l.time, "17/May/2015:10:05:03 +0000");
        assert_eq!(l.method, "GET");
        assert!(l.target.ends_with("kibana-search.png"));
        assert_eq!(l.status, 200);
        assert_eq!(
            l.referer,
            Some("http://semicomplete.com/presentations/logstash-monitorama-2013/")
        );
        assert!(l.user_agent.unwrap().starts_with("Mozilla/5.0"));
    }

    #[test]
    fn common_line_and_dashes() {
        let l = LogLine::parse(
            r#"1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] "POST /login HTTP/1.1" 302 -"#,
        )
        .unwrap();
        assert_eq!((l.method, l.target, l.status), ("POST", "/login", 302));
        assert_eq!((l.referer, l.user_agent), (None, None));
        let l = LogLine::parse(r#"1.2.3.4 - - [t] "GET / HTTP/1.1" 200 5 "-" "-""#).unwrap();
        assert_eq!((l.referer, l.user_agent), (None, None));
        let l =
            LogLine::parse(r#"1.2.3.4 - - [t] "GET / HTTP/1.1" 200 5 "-" "a \"quoted\" agent""#)
                .unwrap();
        assert_eq!(l.user_agent, Some(r#"a \"quoted\" agent"#));
    }

    #[test]
    fn malformed_lines_are_none() {
        for bad in [
            "",
            "garbage",
            "[x] \"GET\" 200 1",
            "1 - - [t] \"GET / HTTP/1.1\" abc 1",
            "1 - - [t \"GET / HTTP/1.1\" 200 1",
            "\u{0}\u{ffff}[",
        ] {
            assert_eq!(LogLine::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_line_of_the_shipped_sample_parses() {
        let sample = concat!(
            "66.249.73.135 - - [17/May/2015:10:05:40 +0000] \"GET /blog/tags/ipv6 HTTP/1.1\" 200 12251 \"-\" \"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\"\n",
            "46.105.14.53 - - [17/May/2015:10:05:12 +0000] \"GET /blog/tags/puppet?flav=rss20 HTTP/1.1\" 200 14872 \"-\" \"UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/\"\n",
        );
        assert_eq!(sample.lines().filter_map(LogLine::parse).count(), 2);
    }
}
