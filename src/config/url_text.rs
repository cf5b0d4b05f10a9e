//! How bpm-edge parses a URL from a request, the config or a var: one
//! function, in both the worker and the native tools, so every URL meets
//! the same host rule.

/// Parses a URL whose host part is plain ASCII; `None` for anything else.
///
/// bpm-edge parses hosts without a Unicode (IDNA) back end (`idna_adapter`
/// 1.0, pinned in `Cargo.toml` for the visitor worker's wasm size), which
/// has no answer for a non-ASCII host and asserts, in debug builds, on one
/// that mixes upper-case ASCII in. So text whose authority (what follows
/// the scheme, up to the path, query or fragment) holds a non-ASCII byte or
/// a percent escape never reaches it. Browsers send hosts in their ASCII
/// (punycode) form, which parses as usual. Every URL bpm-edge reads from a
/// request, the config or a var goes through here.
pub fn parse_url(text: &str) -> Option<url::Url> {
    let rest = text.split_once(':').map_or(text, |(_, r)| r);
    let rest = rest.trim_start_matches(['/', '\\']);
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if !authority.is_ascii() || authority.contains('%') {
        return None;
    }
    url::Url::parse(text).ok()
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
        let host = |t: &str| parse_url(t).and_then(|u| u.host_str().map(str::to_string));
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
}
