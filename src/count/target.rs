//! Where a request goes, decided from its URL before anything else: to
//! bpm-edge itself (the reserved prefix, answered by the control worker) or
//! to the origin, and at which address. The URL is split, never parsed: it
//! is the runtime's own serialisation, read once per request.
//!
//! Invariants: a URL that cannot be split is a visitor's (forwarded, never
//! answered by bpm-edge); the prefix matches whole path segments only
//! (`/_bpmx` is the site's).

use crate::config::url_text::parse_url;

/// Splits a URL as the runtime serialises it (`http(s)://host[:port]/path?query`)
/// into its host (with a non-default port) and its request target (path and
/// `?query`), without parsing: a special scheme's serialisation always has an
/// authority and a path starting with `/`, omits the default port, and
/// percent-encodes `?` in the path and `#` before the fragment. `None` for
/// anything else.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.get(url.find("://")? + 3..)?;
    let slash = rest.find('/')?;
    let (authority, target) = rest.split_at(slash);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    Some((host, target))
}

/// Whether the path of `url` is `prefix` or under `prefix/`.
pub fn is_own_path(url: &str, prefix: &str) -> bool {
    let Some((_, target)) = split_url(url) else {
        return false;
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `ORIGIN_URL`'s `scheme://host[:port]`, to which a request target is
/// appended (its own path and query are replaced by the request's).
pub fn origin_base(origin: &str) -> Result<String, &'static str> {
    let base = parse_url(origin.trim()).ok_or("bpm-edge: ORIGIN_URL is not a valid URL")?;
    if !matches!(base.scheme().as_str(), "http" | "https") || base.host_str().is_none() {
        return Err("bpm-edge: ORIGIN_URL must be an http(s) URL with a host");
    }
    if base.has_userinfo() {
        return Err("bpm-edge: ORIGIN_URL must not carry a user name or password");
    }
    Ok(base.origin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_keeps_the_port_and_query_and_drops_credentials_and_fragment() {
        assert_eq!(
            split_url("https://user:pw@shop.example:8443/a/b?x=1#top"),
            Some(("shop.example:8443", "/a/b?x=1"))
        );
        assert_eq!(split_url("http://h/"), Some(("h", "/")));
        assert_eq!(split_url("not a url"), None);
        assert_eq!(split_url("https://no-path"), None);
    }

    #[test]
    fn own_path_is_the_prefix_or_below_it_by_whole_segments() {
        assert!(is_own_path("https://s/_bpm", "/_bpm"));
        assert!(is_own_path("https://s/_bpm/", "/_bpm"));
        assert!(is_own_path("https://s/_bpm/api/health?x=1", "/_bpm"));
        assert!(is_own_path("https://s/_bpm?x=1", "/_bpm"));
        assert!(!is_own_path("https://s/_bpmx", "/_bpm"));
        assert!(!is_own_path("https://s/login?next=/_bpm", "/_bpm"));
        assert!(!is_own_path("https://s/", "/_bpm"));
        assert!(!is_own_path("garbage", "/_bpm"));
    }

    #[test]
    fn origin_base_is_scheme_host_and_port_only() {
        assert_eq!(
            origin_base(" http://127.0.0.1:8788/ignored?q "),
            Ok("http://127.0.0.1:8788".to_string())
        );
        assert_eq!(
            origin_base("https://origin.example"),
            Ok("https://origin.example".to_string())
        );
        assert_eq!(
            origin_base("HTTPS://Origin.Example:443/x"),
            Ok("https://origin.example".to_string())
        );
        assert!(origin_base("ftp://h/").is_err());
        assert!(origin_base("not a url").is_err());
    }

    #[test]
    fn origin_base_refuses_credentials() {
        assert!(origin_base("https://user:pw@origin.example/").is_err());
        assert!(origin_base("https://:pw@origin.example/").is_err());
    }
}
