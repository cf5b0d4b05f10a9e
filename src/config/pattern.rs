//! Path patterns and request-path normalisation.
//!
//! A pattern is a `/`-separated list of segments: a literal, `*` (exactly one
//! segment), `:name` (one segment, named for readability) or `**` (zero or more
//! segments, at most once per pattern so matching stays linear). A request
//! path is normalised before matching: percent-escapes are decoded *per
//! segment* (so `%2F` never creates a segment boundary), empty segments from
//! `//` are dropped, `.` is dropped and `..` removes the previous segment
//! (never climbing above the root). Invalid UTF-8 after decoding is replaced
//! with U+FFFD, so such a segment can only match `*`, `:name` or `**`.
//!
//! Invariant: nothing here panics or allocates without bound on hostile
//! input; paths longer than [`MAX_PATH_BYTES`] or with more than
//! [`MAX_SEGMENTS`] segments are not normalised at all and match nothing.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Longest raw path (bytes, before `?`) that is matched against rules.
pub const MAX_PATH_BYTES: usize = 4096;
/// Most segments a normalised path may have and still be matched.
pub const MAX_SEGMENTS: usize = 128;

/// One segment of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segment {
    /// Matches a segment equal to this text (after normalisation).
    Literal(String),
    /// `*` or `:name`: exactly one segment.
    One,
    /// `**`: zero or more segments.
    Any,
}

/// Whether a trailing slash distinguishes two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailingSlash {
    /// `/login/` and `/login` are the same path (default).
    #[default]
    Ignore,
    /// `/login/` matches only a pattern that ends in `/`.
    Strict,
}

/// A compiled path pattern such as `/blog/**` or `/users/:id/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathPattern {
    /// The pattern as written in the config; also the `landing` dimension value.
    pub source: String,
    segments: Vec<Segment>,
    trailing_slash: bool,
    case_insensitive: bool,
    strict_slash: bool,
}

/// Why a pattern string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern does not start with `/`.
    NotAbsolute,
    /// More than one `**` (matching would no longer be linear).
    SeveralAnyDepth,
    /// `*` or `**` mixed with other characters inside one segment.
    PartialWildcard(String),
    /// `:` with no name after it.
    EmptyParamName,
    /// A `?` in the pattern: query parameters have their own rule.
    ContainsQuery,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::NotAbsolute => write!(f, "a path pattern must start with '/'"),
            PatternError::SeveralAnyDepth => {
                write!(f, "a path pattern may contain '**' at most once")
            }
            PatternError::PartialWildcard(s) => write!(
                f,
                "segment {s:?} mixes a wildcard with text; '*' and '**' must be whole segments"
            ),
            PatternError::EmptyParamName => write!(f, "':' must be followed by a parameter name"),
            PatternError::ContainsQuery => write!(
                f,
                "a path pattern cannot contain '?'; use the `query` rule for parameters"
            ),
            PatternError::TooLong => {
                write!(f, "a path pattern is limited to {MAX_PATH_BYTES} bytes")
            }
        }
    }
}

impl PathPattern {
    /// Compiles `source`. `case_insensitive` folds ASCII case on literals;
    /// `slash` decides whether a trailing slash is significant.
    pub fn parse(
        source: &str,
        case_insensitive: bool,
        slash: TrailingSlash,
    ) -> Result<Self, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError::NotAbsolute);
        }
        if source.len() > MAX_PATH_BYTES {
            return Err(PatternError::TooLong);
        }
        if source.contains('?') {
            return Err(PatternError::ContainsQuery);
        }
        let mut segments = Vec::new();
        let mut any_seen = false;
        for raw in source.split('/').filter(|s| !s.is_empty()) {
            let seg = match raw {
                "**" => {
                    if any_seen {
                        return Err(PatternError::SeveralAnyDepth);
                    }
                    any_seen = true;
                    Segment::Any
                }
                "*" => Segment::One,
                _ if raw.contains('*') => return Err(PatternError::PartialWildcard(raw.into())),
                _ if raw.starts_with(':') => {
                    if raw.len() == 1 {
                        return Err(PatternError::EmptyParamName);
                    }
                    Segment::One
                }
                _ => {
                    let decoded = decode_segment(raw.as_bytes());
                    let text = if case_insensitive {
                        decoded.to_ascii_lowercase()
                    } else {
                        decoded.into_owned()
                    };
                    Segment::Literal(text)
                }
            };
            segments.push(seg);
        }
        Ok(PathPattern {
            source: source.to_string(),
            trailing_slash: source.len() > 1 && source.ends_with('/'),
            segments,
            case_insensitive,
            strict_slash: slash == TrailingSlash::Strict,
        })
    }

    /// True when the normalised path matches this pattern.
    pub fn matches(&self, path: &NormalizedPath) -> bool {
        if self.strict_slash && !matches!(self.segments.last(), Some(Segment::Any)) {
            // Under strict handling `/a/` and `/a` differ; the root is always `/`.
            let path_slash = path.trailing_slash && !path.segments.is_empty();
            if path_slash != self.trailing_slash {
                return false;
            }
        }
        let segs = &path.segments;
        match self.segments.iter().position(|s| *s == Segment::Any) {
            None => {
                segs.len() == self.segments.len()
                    && self
                        .segments
                        .iter()
                        .zip(segs)
                        .all(|(p, s)| self.segment_matches(p, s))
            }
            Some(star) => {
                let (head, tail) = self.segments.split_at(star);
                let tail = tail.get(1..).unwrap_or(&[]);
                if segs.len() < head.len() + tail.len() {
                    return false;
                }
                let tail_start = segs.len() - tail.len();
                head.iter()
                    .zip(segs)
                    .all(|(p, s)| self.segment_matches(p, s))
                    && tail
                        .iter()
                        .zip(segs.get(tail_start..).unwrap_or(&[]))
                        .all(|(p, s)| self.segment_matches(p, s))
            }
        }
    }

    fn segment_matches(&self, pattern: &Segment, seg: &str) -> bool {
        match pattern {
            Segment::Literal(lit) => {
                if self.case_insensitive {
                    lit.eq_ignore_ascii_case(seg)
                } else {
                    lit == seg
                }
            }
            Segment::One | Segment::Any => true,
        }
    }
}

/// A request path after normalisation, ready for matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NormalizedPath {
    /// Decoded, non-empty segments with `.`/`..` resolved.
    pub segments: Vec<String>,
    /// Whether the raw path ended in `/` (meaningful under strict handling).
    pub trailing_slash: bool,
}

impl NormalizedPath {
    /// Normalises the path part of a request target. Anything from the first
    /// `?` or `#` on is ignored. Returns `None` when the path is over the size
    /// limits: such a request is forwarded but matches no rule.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let end = raw
            .iter()
            .position(|b| *b == b'?' || *b == b'#')
            .unwrap_or(raw.len());
        let path = raw.get(..end).unwrap_or(raw);
        if path.len() > MAX_PATH_BYTES {
            return None;
        }
        let mut segments: Vec<String> = Vec::new();
        for raw_seg in path.split(|b| *b == b'/') {
            if raw_seg.is_empty() {
                continue;
            }
            let seg = decode_segment(raw_seg);
            match seg.as_ref() {
                "." => {}
                ".." => {
                    segments.pop();
                }
                _ => {
                    if segments.len() >= MAX_SEGMENTS {
                        return None;
                    }
                    segments.push(seg.into_owned());
                }
            }
        }
        let trailing_slash = path.len() > 1 && path.ends_with(b"/");
        Some(NormalizedPath {
            segments,
            trailing_slash,
        })
    }
}

/// Percent-decodes one segment; invalid UTF-8 becomes U+FFFD.
fn decode_segment(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw);
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> PathPattern {
        PathPattern::parse(s, false, TrailingSlash::Ignore).unwrap()
    }
    fn path(s: &str) -> NormalizedPath {
        NormalizedPath::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn exact_match_and_root() {
        assert!(pat("/login").matches(&path("/login")));
        assert!(!pat("/login").matches(&path("/logins")));
        assert!(!pat("/login").matches(&path("/login/extra")));
        assert!(pat("/").matches(&path("/")));
        assert!(pat("/").matches(&path("")));
        assert!(!pat("/").matches(&path("/x")));
    }

    #[test]
    fn query_and_fragment_are_not_part_of_the_path() {
        assert!(pat("/login").matches(&path("/login?next=/dashboard")));
        assert!(pat("/login").matches(&path("/login#top")));
        assert!(pat("/").matches(&path("/?utm_source=x")));
    }

    #[test]
    fn single_segment_wildcard_and_params() {
        let p = pat("/users/*/settings");
        assert!(p.matches(&path("/users/42/settings")));
        assert!(!p.matches(&path("/users/settings")));
        assert!(!p.matches(&path("/users/4/2/settings")));
        let named = pat("/users/:id/settings");
        assert!(named.matches(&path("/users/abc/settings")));
    }

    #[test]
    fn any_depth_matches_zero_or_more_segments() {
        let p = pat("/blog/**");
        assert!(p.matches(&path("/blog")));
        assert!(p.matches(&path("/blog/")));
        assert!(p.matches(&path("/blog/2026/launch")));
        assert!(!p.matches(&path("/blogs/x")));
        let mid = pat("/shop/**/checkout");
        assert!(mid.matches(&path("/shop/checkout")));
        assert!(mid.matches(&path("/shop/a/b/c/checkout")));
        assert!(!mid.matches(&path("/shop/a/b/c")));
    }

    #[test]
    fn trailing_slash_ignored_by_default_and_strict_on_request() {
        assert!(pat("/login").matches(&path("/login/")));
        let strict = PathPattern::parse("/login", false, TrailingSlash::Strict).unwrap();
        assert!(strict.matches(&path("/login")));
        assert!(!strict.matches(&path("/login/")));
        let strict_dir = PathPattern::parse("/docs/", false, TrailingSlash::Strict).unwrap();
        assert!(strict_dir.matches(&path("/docs/")));
        assert!(!strict_dir.matches(&path("/docs")));
        let strict_root = PathPattern::parse("/", false, TrailingSlash::Strict).unwrap();
        assert!(strict_root.matches(&path("/")));
    }

    #[test]
    fn case_sensitive_by_default_insensitive_on_request() {
        assert!(!pat("/login").matches(&path("/LOGIN")));
        let ci = PathPattern::parse("/Login", true, TrailingSlash::Ignore).unwrap();
        assert!(ci.matches(&path("/LOGIN")));
        assert!(ci.matches(&path("/login")));
    }

    #[test]
    fn percent_encoding_is_decoded_per_segment() {
        assert!(pat("/login").matches(&path("/%6Cogin")));
        assert!(pat("/a b").matches(&path("/a%20b")));
        // An encoded slash stays inside its segment.
        assert!(!pat("/blog/x").matches(&path("/blog%2Fx")));
        assert!(pat("/*").matches(&path("/blog%2Fx")));
        // A malformed escape is kept literally.
        assert!(pat("/100%").matches(&path("/100%")));
    }

    #[test]
    fn dot_segments_and_double_slashes_are_resolved() {
        assert!(pat("/login").matches(&path("//login")));
        assert!(pat("/login").matches(&path("/blog/../login")));
        assert!(pat("/login").matches(&path("/./login")));
        assert!(pat("/login").matches(&path("/../../login")));
        assert!(pat("/login").matches(&path("/%2e%2e/login")));
        assert!(pat("/a/b").matches(&path("/a//b//")));
    }

    #[test]
    fn invalid_utf8_only_matches_wildcards() {
        let p = NormalizedPath::parse(b"/caf\xff/x").unwrap();
        assert_eq!(p.segments[0], "caf\u{fffd}");
        assert!(pat("/*/x").matches(&p));
        assert!(pat("/**").matches(&p));
        assert!(!pat("/cafe/x").matches(&p));
        let encoded = path("/%ff%fe");
        assert!(pat("/*").matches(&encoded));
    }

    #[test]
    fn very_long_paths_match_nothing_and_do_not_panic() {
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES + 10));
        assert_eq!(NormalizedPath::parse(long.as_bytes()), None);
        let many = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(NormalizedPath::parse(many.as_bytes()), None);
        let ok = "/a".repeat(MAX_SEGMENTS);
        assert!(pat("/**").matches(&path(&ok)));
        // `..` past the limit still works because it shrinks the path.
        let mut up = "/a".repeat(MAX_SEGMENTS);
        up.push_str("/..");
        assert!(NormalizedPath::parse(up.as_bytes()).is_some());
    }

    #[test]
    fn pattern_errors() {
        let p = |s| PathPattern::parse(s, false, TrailingSlash::Ignore).unwrap_err();
        assert_eq!(p("login"), PatternError::NotAbsolute);
        assert_eq!(p("/**/a/**"), PatternError::SeveralAnyDepth);
        assert_eq!(p("/blog*"), PatternError::PartialWildcard("blog*".into()));
        assert_eq!(p("/a/:"), PatternError::EmptyParamName);
        assert_eq!(p("/a?b=1"), PatternError::ContainsQuery);
        assert!(!p("x").to_string().is_empty());
    }
}
