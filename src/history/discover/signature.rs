//! The request signatures `discover` mines a log for: a method, a path
//! generalised from the raw paths, a status class and, when the log has the
//! `Location` header, the redirect target. Generalising is per segment
//! ([`general_segment`]): ids become `:id`, anything a pattern cannot say
//! literally becomes `*`; the `/**` patterns above them are built later
//! from the paths found ([`super::Discoverer`]).
//!
//! Left out as noise ([`Leaf::of`]): requests for static assets (they follow
//! the pages that load them, and browsers cache them), `robots.txt`,
//! `favicon.ico`, the dashboard's own prefix, and 5xx and 1xx answers (a
//! server error is what an incident adds, not what it takes away).

use crate::config::pattern::NormalizedPath;

/// The answers a signature counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusClass {
    /// 2xx, and 304 for `GET`/`HEAD` (a cached page is a page seen).
    Success,
    /// 3xx (but 304 for `GET`/`HEAD`).
    Redirect,
    /// 4xx.
    ClientError,
}

impl StatusClass {
    /// The class of `status` for `method`, if discover counts it.
    pub fn of(method: &str, status: u16) -> Option<Self> {
        let page = method == "GET" || method == "HEAD";
        match status {
            304 if page => Some(StatusClass::Success),
            200..=299 => Some(StatusClass::Success),
            300..=399 => Some(StatusClass::Redirect),
            400..=499 => Some(StatusClass::ClientError),
            _ => None,
        }
    }

    /// As in the metric names discover proposes.
    pub fn label(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
        }
    }

    /// The `status` value of a `[[metric]]` match that counts this class
    /// for `method`.
    pub fn toml(self, method: &str) -> &'static str {
        let page = method == "GET" || method == "HEAD";
        match (self, page) {
            (StatusClass::Success, true) => r#"["2xx", "304"]"#,
            (StatusClass::Success, false) => r#""2xx""#,
            (StatusClass::Redirect, true) => r#"["300", "301", "302", "303", "307", "308"]"#,
            (StatusClass::Redirect, false) => r#""3xx""#,
            (StatusClass::ClientError, _) => r#""4xx""#,
        }
    }
}

/// What a group of signatures shares: everything but the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Answer {
    pub method: String,
    pub class: StatusClass,
    /// The redirect target's generalised path, when logged.
    pub location: Option<String>,
}

/// One generalised request path with its answer: what a logged request is
/// counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Leaf {
    pub answer: Answer,
    /// Generalised segments (`:id`, `*` or a literal).
    pub segments: Vec<String>,
}

/// File extensions of static assets.
const ASSET_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "woff",
    "woff2", "ttf", "otf", "eot",
];

/// Paths every crawler and browser asks for, whatever the business does.
const HOUSEKEEPING: &[&str] = &["robots.txt", "favicon.ico", "sitemap.xml", "ads.txt"];

/// Longest method kept as is (longer ones are not real methods).
const MAX_METHOD_LEN: usize = 16;

impl Leaf {
    /// The leaf of a request, or `None` when discover leaves it out.
    /// `prefix` is the dashboard's own path prefix (`/_bpm`).
    pub fn of(
        method: &str,
        target: &[u8],
        status: u16,
        location: Option<&str>,
        prefix: &str,
    ) -> Option<Leaf> {
        if method.is_empty()
            || method.len() > MAX_METHOD_LEN
            || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return None;
        }
        let class = StatusClass::of(method, status)?;
        let path = NormalizedPath::parse(target)?;
        let own = prefix.trim_matches('/');
        if !own.is_empty() && path.segments.first().is_some_and(|s| s == own) {
            return None;
        }
        if let Some(last) = path.segments.last() {
            let lower = last.to_ascii_lowercase();
            let ext = lower.rsplit_once('.').map(|(_, e)| e);
            if HOUSEKEEPING.contains(&lower.as_str())
                || ext.is_some_and(|e| ASSET_EXTENSIONS.contains(&e))
            {
                return None;
            }
        }
        let location = match class {
            StatusClass::Redirect => location.and_then(location_pattern),
            _ => None,
        };
        Some(Leaf {
            answer: Answer {
                method: method.to_string(),
                class,
                location,
            },
            segments: path.segments.iter().map(|s| general_segment(s)).collect(),
        })
    }
}

/// The pattern of a `Location` value: its path (an absolute URL's too),
/// generalised like a request path.
fn location_pattern(location: &str) -> Option<String> {
    let path = match location.find("://") {
        Some(i) => {
            let rest = location.get(i + 3..)?;
            rest.find('/').and_then(|j| rest.get(j..)).unwrap_or("/")
        }
        None if location.starts_with('/') && !location.starts_with("//") => location,
        None => return None,
    };
    let path = NormalizedPath::parse(path.as_bytes())?;
    Some(pattern_text(
        &path
            .segments
            .iter()
            .map(|s| general_segment(s))
            .collect::<Vec<_>>(),
        false,
    ))
}

/// A segment as a pattern says it: `:id` for what looks like an
/// identifier, `*` for what a literal cannot spell, else the segment.
pub fn general_segment(seg: &str) -> String {
    if looks_like_id(seg) {
        ":id".into()
    } else if !seg.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'@' | b',')
    }) || seg.starts_with(':')
    {
        "*".into()
    } else {
        seg.to_string()
    }
}

/// Digits only; a UUID; 8+ hex digits with a digit among them; or a token
/// of 16+ letters and digits with both.
fn looks_like_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    let hex_or_dash = b.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
    let uuid = b.len() == 36
        && hex_or_dash
        && [8, 13, 18, 23]
            .iter()
            .all(|&i| b.get(i).is_some_and(|c| *c == b'-'));
    let hex = b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit);
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let token = b.len() >= 16
        && digits > 0
        && letters > 0
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        && digits * 4 >= b.len();
    uuid || hex || token
}

/// `/a/b` (or `/a/b/**` when `any`); `/` and `/**` for no segments.
pub fn pattern_text(segments: &[String], any: bool) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(s);
    }
    if any {
        out.push_str("/**");
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(method: &str, target: &str, status: u16) -> Option<Leaf> {
        Leaf::of(method, target.as_bytes(), status, None, "/_bpm")
    }

    #[test]
    fn ids_are_generalised_and_words_kept() {
        for id in [
            "42",
            "0",
            "6f1c2a9e",
            "123e4567-e89b-12d3-a456-426614174000",
            "a1b2c3d4e5f6a7b8c9",
            "Xk9sP2qL8mN4vB7zQ1",
        ] {
            assert_eq!(general_segment(id), ":id", "{id}");
        }
        for word in [
            "blog",
            "logstash-1.3.2-monolithic.jar",
            "2012",
            "deadbeef",
            "logstash-puppetconf-2012",
        ] {
            let want = if word == "2012" { ":id" } else { word };
            assert_eq!(general_segment(word), want, "{word}");
        }
        assert_eq!(general_segment("a b"), "*");
        assert_eq!(general_segment(":x"), "*");
        let l = leaf("GET", "/api/orders/12345/items?x=1", 200).unwrap();
        assert_eq!(pattern_text(&l.segments, false), "/api/orders/:id/items");
        assert_eq!(pattern_text(&[], false), "/");
        assert_eq!(pattern_text(&[], true), "/**");
        assert_eq!(pattern_text(&["blog".into()], true), "/blog/**");
    }

    #[test]
    fn assets_housekeeping_server_errors_and_the_own_prefix_are_left_out() {
        assert!(leaf("GET", "/style2.css", 200).is_none());
        assert!(leaf("GET", "/images/web/2009/banner.PNG", 200).is_none());
        assert!(leaf("GET", "/favicon.ico", 200).is_none());
        assert!(leaf("GET", "/robots.txt", 200).is_none());
        assert!(leaf("GET", "/_bpm/api/overview", 200).is_none());
        assert!(leaf("GET", "/blog/", 503).is_none());
        assert!(leaf("get", "/blog/", 200).is_none());
        assert!(leaf("GET", "/files/logstash-1.3.2.jar", 404).is_some());
        assert!(leaf("GET", "/", 200).is_some());
    }

    #[test]
    fn status_classes_and_their_toml() {
        assert_eq!(StatusClass::of("GET", 304), Some(StatusClass::Success));
        assert_eq!(StatusClass::of("POST", 304), Some(StatusClass::Redirect));
        assert_eq!(StatusClass::of("POST", 302), Some(StatusClass::Redirect));
        assert_eq!(StatusClass::of("GET", 500), None);
        assert_eq!(StatusClass::Success.toml("GET"), r#"["2xx", "304"]"#);
        assert_eq!(StatusClass::Success.toml("POST"), r#""2xx""#);
    }

    #[test]
    fn a_redirect_keeps_its_target_path() {
        let l = Leaf::of(
            "POST",
            b"/login",
            302,
            Some("https://www.example.com/dashboard?welcome=1"),
            "/_bpm",
        )
        .unwrap();
        assert_eq!(l.answer.location.as_deref(), Some("/dashboard"));
        let l = Leaf::of("POST", b"/login", 200, Some("/dashboard"), "/_bpm").unwrap();
        assert_eq!(l.answer.location, None);
    }
}
