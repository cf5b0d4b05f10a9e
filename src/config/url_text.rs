//! How bpm-edge parses a URL from a request, the config or a var: one
//! function, in both the workers and the native tools, so every URL meets
//! the same host rule.
//!
//! The parsing itself is the WHATWG URL standard's, by the platform's own
//! parser: the `url` crate natively (the build script's config checks, the
//! tests, the offline tools), the runtime's built-in `URL` in the Workers.
//! A WebAssembly function is compiled when it is first called, and the
//! `url` crate with its IDNA tables was about a quarter of the code a fresh
//! visitor isolate compiled for its first request; the runtime's parser is
//! native code that is always ready. [`ParsedUrl`] reads only what
//! bpm-edge uses, the same way from either.

/// Parses a URL whose host part is plain ASCII; `None` for anything else.
///
/// bpm-edge parses hosts without a Unicode (IDNA) back end natively
/// (`idna_adapter` 1.0, pinned in `Cargo.toml`), which has no answer for a
/// non-ASCII host and asserts, in debug builds, on one that mixes
/// upper-case ASCII in. So text whose authority (what follows the scheme,
/// up to the path, query or fragment) holds a non-ASCII byte or a percent
/// escape never reaches a parser, in the workers either, so that both read
/// the same URLs. Browsers send hosts in their ASCII (punycode) form, which
/// parses as usual. Every URL bpm-edge reads from a request, the config or
/// a var goes through here.
pub fn parse_url(text: &str) -> Option<ParsedUrl> {
    let rest = text.split_once(':').map_or(text, |(_, r)| r);
    let rest = rest.trim_start_matches(['/', '\\']);
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if !authority.is_ascii() || authority.contains('%') {
        return None;
    }
    ParsedUrl::parse(text)
}

/// A parsed URL, read through the parts bpm-edge uses.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct ParsedUrl(url::Url);

/// A parsed URL, read through the parts bpm-edge uses.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Clone)]
pub struct ParsedUrl(web_sys::Url);

#[cfg(not(target_arch = "wasm32"))]
impl ParsedUrl {
    fn parse(text: &str) -> Option<Self> {
        url::Url::parse(text).ok().map(ParsedUrl)
    }

    /// The scheme, lower-case, without the `:`.
    pub fn scheme(&self) -> String {
        self.0.scheme().to_string()
    }

    /// The host as serialised (lower-case; an IPv6 address in brackets),
    /// `None` when the URL has none or it is empty.
    pub fn host_str(&self) -> Option<String> {
        self.0
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// The path, percent-encoded as serialised.
    pub fn path(&self) -> String {
        self.0.path().to_string()
    }

    /// Whether the URL carries a user name or a password.
    pub fn has_userinfo(&self) -> bool {
        !self.0.username().is_empty() || self.0.password().is_some()
    }

    /// Whether the URL has a query or a fragment (even an empty one).
    pub fn has_query_or_fragment(&self) -> bool {
        self.0.query().is_some() || self.0.fragment().is_some()
    }

    /// Whether the URL has a query (even an empty one).
    pub fn has_query(&self) -> bool {
        self.0.query().is_some()
    }

    /// The whole URL as serialised.
    pub fn href(&self) -> String {
        self.0.as_str().to_string()
    }

    /// `scheme://host[:port]`, the port only when not the scheme's default.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

#[cfg(target_arch = "wasm32")]
impl ParsedUrl {
    fn parse(text: &str) -> Option<Self> {
        web_sys::Url::new(text).ok().map(ParsedUrl)
    }

    /// The scheme, lower-case, without the `:`.
    pub fn scheme(&self) -> String {
        let mut p = self.0.protocol();
        p.pop();
        p
    }

    /// The host as serialised (lower-case; an IPv6 address in brackets),
    /// `None` when the URL has none or it is empty.
    pub fn host_str(&self) -> Option<String> {
        Some(self.0.hostname()).filter(|h| !h.is_empty())
    }

    /// The path, percent-encoded as serialised.
    pub fn path(&self) -> String {
        self.0.pathname()
    }

    /// Whether the URL carries a user name or a password.
    pub fn has_userinfo(&self) -> bool {
        !self.0.username().is_empty() || !self.0.password().is_empty()
    }

    /// Whether the URL has a query or a fragment (even an empty one): the
    /// serialisation continues after the path.
    pub fn has_query_or_fragment(&self) -> bool {
        self.after_path().is_some_and(|rest| !rest.is_empty())
    }

    /// Whether the URL has a query (even an empty one).
    pub fn has_query(&self) -> bool {
        self.after_path().is_some_and(|rest| rest.starts_with('?'))
    }

    /// The whole URL as serialised.
    pub fn href(&self) -> String {
        self.0.href()
    }

    /// `scheme://host[:port]`, the port only when not the scheme's default.
    pub fn origin(&self) -> String {
        self.0.origin()
    }

    /// What the serialisation holds after the path: `?query#fragment`.
    /// `URL.search` and `URL.hash` are empty for an empty query or
    /// fragment too, so this reads the serialisation: the scheme, then
    /// `//`, the user info and the host (with its port) when there is an
    /// authority, then the path, then these.
    fn after_path(&self) -> Option<String> {
        let href = self.0.href();
        let (user, password) = (self.0.username(), self.0.password());
        let mut at = self.0.protocol().len();
        if href.get(at..)?.starts_with("//") {
            at += 2 + self.0.host().len();
            if !user.is_empty() || !password.is_empty() {
                at += user.len() + 1;
                if !password.is_empty() {
                    at += password.len() + 1;
                }
            }
        }
        let rest = href.get(at..)?.strip_prefix(self.0.pathname().as_str())?;
        Some(rest.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a host mixing upper-case ASCII and non-ASCII (raw or
    /// percent-escaped) tripped `idna_adapter` 1.0's debug assertion in a
    /// property test of the Access team domain.
    #[test]
    fn parse_url_refuses_non_ascii_hosts_and_keeps_ascii_ones() {
        for bad in [
            "https://A\u{fc}.example/",
            "https://a\u{fc}.example/",
            "https://A%C3%BC.example/",
            "https:\\\\A\u{fc}.example/",
            "https:A\u{fc}.example",
        ] {
            assert!(parse_url(bad).is_none(), "{bad:?}");
        }
        let host = |t: &str| parse_url(t).and_then(|u| u.host_str());
        assert_eq!(
            host("https://WWW.xn--bcher-kva.example/"),
            Some("www.xn--bcher-kva.example".into())
        );
        assert_eq!(
            host("https://www.Example.com/\u{fc}?q=\u{fc}#\u{fc}"),
            Some("www.example.com".into())
        );
        assert_eq!(host("http://[::1]:8080/"), Some("[::1]".into()));
        assert!(parse_url("not a url").is_none());
    }

    #[test]
    fn parsed_url_reads_what_bpm_edge_uses() {
        let Some(u) = parse_url("HTTPS://User:Pw@WWW.Example.com:8443/a/./b/../c?x=1#top") else {
            panic!("parses");
        };
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.host_str().as_deref(), Some("www.example.com"));
        assert_eq!(u.path(), "/a/c");
        assert!(u.has_userinfo() && u.has_query() && u.has_query_or_fragment());
        assert_eq!(u.origin(), "https://www.example.com:8443");
        assert_eq!(u.href(), "https://User:Pw@www.example.com:8443/a/c?x=1#top");

        // An empty query or fragment is still one.
        let flags = |t: &str| parse_url(t).map(|u| (u.has_query(), u.has_query_or_fragment()));
        assert_eq!(flags("https://a.example/?"), Some((true, true)));
        assert_eq!(flags("https://a.example/#"), Some((false, true)));
        assert_eq!(flags("https://a.example/"), Some((false, false)));
        assert_eq!(flags("https://a.example/#a?b"), Some((false, true)));

        // The default port is not part of the origin; no host is `None`.
        assert_eq!(
            parse_url("http://a.example:80/").map(|u| u.origin()),
            Some("http://a.example".into())
        );
        assert_eq!(
            parse_url("mailto:x@a.example").and_then(|u| u.host_str()),
            None
        );
    }
}
