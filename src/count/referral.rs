//! Where a visit came from: the referral source named from the `Referer`
//! host, and the normalised `utm_*` campaign fields.
//!
//! Invariants: every value returned is at most [`MAX_VALUE_CHARS`]
//! characters of printable text, lower-case; nothing here keeps the full
//! referrer URL or the raw query string. Hostile input (binary bytes, huge
//! headers, garbage URLs) yields [`UNKNOWN`] rather than an error.

use crate::config::url_text::{parse_url, ParsedUrl};

/// No `Referer` header.
pub const DIRECT: &str = "direct";
/// A referrer from the site itself (navigation between its own pages).
pub const INTERNAL: &str = "internal";
/// A `Referer` that is not a usable http(s) URL.
pub const UNKNOWN: &str = "unknown";
/// A request without the UTM field.
pub const NONE: &str = "(none)";
/// Longest dimension value kept, in characters.
pub const MAX_VALUE_CHARS: usize = 64;

/// Named sources; checked in order, so webmail hosts win over their search
/// engine siblings (`mail.google.com` is `email`, not `google`).
const EMAIL_HOSTS: &[&str] = &[
    "mail.google.com",
    "inbox.google.com",
    "outlook.live.com",
    "outlook.office.com",
    "outlook.office365.com",
    "mail.yahoo.com",
    "mail.proton.me",
    "mail.aol.com",
    "mail.yandex.ru",
    "mail.yandex.com",
    "e.mail.ru",
    "mail.zoho.com",
    "app.fastmail.com",
    "webmail",
];

/// (source, second-level label that identifies it under any TLD).
const SEARCH_ENGINES: &[(&str, &str)] = &[
    ("google", "google"),
    ("bing", "bing"),
    ("duckduckgo", "duckduckgo"),
    ("yahoo", "yahoo"),
    ("baidu", "baidu"),
    ("yandex", "yandex"),
    ("ecosia", "ecosia"),
    ("naver", "naver"),
    ("seznam", "seznam"),
];

/// (source, exact hosts or domains whose subdomains also belong to it).
const SOCIAL: &[(&str, &[&str])] = &[
    ("twitter", &["twitter.com", "t.co", "x.com"]),
    ("facebook", &["facebook.com", "fb.com", "fb.me"]),
    ("instagram", &["instagram.com"]),
    ("linkedin", &["linkedin.com", "lnkd.in"]),
    ("reddit", &["reddit.com", "redd.it"]),
    ("youtube", &["youtube.com", "youtu.be"]),
    ("hackernews", &["news.ycombinator.com"]),
    ("mastodon", &["mastodon.social"]),
    ("bluesky", &["bsky.app"]),
    ("pinterest", &["pinterest.com"]),
    ("tiktok", &["tiktok.com"]),
];

/// Android apps send `android-app://<package>` referrers.
const ANDROID_APPS: &[(&str, &str)] = &[
    ("com.google.android.gm", "email"),
    ("com.google.android.googlequicksearchbox", "google"),
    ("com.twitter.android", "twitter"),
    ("com.facebook.katana", "facebook"),
    ("com.linkedin.android", "linkedin"),
    ("com.reddit.frontpage", "reddit"),
];

/// Names the referral source of a request.
///
/// `referer` is the raw header (possibly not UTF-8), `own_hosts` the site's
/// configured hosts and `request_host` the Host the visitor asked for.
pub fn source(referer: Option<&[u8]>, own_hosts: &[String], request_host: &str) -> String {
    let Some(raw) = referer else {
        return DIRECT.to_string();
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return UNKNOWN.to_string();
    };
    let text = text.trim();
    if text.is_empty() {
        return DIRECT.to_string();
    }
    if text.len() > 4096 {
        return UNKNOWN.to_string();
    }
    if let Some(pkg) = text.strip_prefix("android-app://") {
        let pkg = pkg.split('/').next().unwrap_or("");
        return ANDROID_APPS
            .iter()
            .find(|(p, _)| pkg.eq_ignore_ascii_case(p))
            .map_or(UNKNOWN, |(_, s)| *s)
            .to_string();
    }
    let Some(url) = parse_url(text) else {
        return UNKNOWN.to_string();
    };
    if !matches!(url.scheme().as_str(), "http" | "https") {
        return UNKNOWN.to_string();
    }
    let Some(host) = url_host(&url) else {
        return UNKNOWN.to_string();
    };
    if is_own_host(&host, request_host, own_hosts) {
        return INTERNAL.to_string();
    }
    classify_host(&host)
}

/// A URL's host, lower-case, without a trailing dot; `None` when nothing
/// is left (`https://../`).
pub fn url_host(url: &ParsedUrl) -> Option<String> {
    url.host_str()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// Whether a (lower-case) host is this site: the Host the visitor asked for
/// (any port) or one the configured `site.hosts` name (a `*.` suffix names
/// the hosts below it).
pub fn is_own_host(host: &str, request_host: &str, own_hosts: &[String]) -> bool {
    let requested = request_host.split(':').next().unwrap_or("");
    host.eq_ignore_ascii_case(requested)
        || own_hosts
            .iter()
            .any(|h| crate::config::sites::host_matches(h, host))
}

/// Names a (lower-case) referrer host.
pub fn classify_host(host: &str) -> String {
    if EMAIL_HOSTS.iter().any(|h| {
        host == *h
            || (*h == "webmail" && (host.starts_with("webmail.") || host.contains(".webmail.")))
    }) {
        return "email".to_string();
    }
    let labels: Vec<&str> = host.split('.').collect();
    for (name, label) in SEARCH_ENGINES {
        if is_brand_host(&labels, label) {
            // `mail.*` under a search brand is webmail, e.g. mail.yahoo.co.jp.
            if labels.first() == Some(&"mail") {
                return "email".to_string();
            }
            return (*name).to_string();
        }
    }
    for (name, domains) in SOCIAL {
        if domains.iter().any(|d| in_domain(host, d)) {
            return (*name).to_string();
        }
    }
    let bare = host
        .strip_prefix("www.")
        .or_else(|| host.strip_prefix("m."))
        .unwrap_or(host);
    truncate(bare)
}

/// `label` is the brand label of the host under a short public suffix:
/// `google.com`, `www.google.co.uk`, `news.google.com.au`, not `google.evil.net`.
fn is_brand_host(labels: &[&str], label: &str) -> bool {
    labels.iter().position(|l| l == &label).is_some_and(|i| {
        let suffix = labels.get(i + 1..).unwrap_or(&[]);
        !suffix.is_empty() && suffix.len() <= 2 && suffix.iter().all(|s| s.len() <= 3)
    })
}

fn in_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// The campaign fields of a request, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
}

/// Most query parameters looked at; the rest of a hostile query is ignored.
const MAX_QUERY_PAIRS: usize = 256;

/// Reads `utm_source`, `utm_medium` and `utm_campaign` from a raw query
/// string (without `?`). The first occurrence of each wins.
pub fn utm(query: &str) -> Utm {
    let mut out = Utm::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()).take(MAX_QUERY_PAIRS) {
        let slot = match k.as_ref() {
            "utm_source" => &mut out.source,
            "utm_medium" => &mut out.medium,
            "utm_campaign" => &mut out.campaign,
            _ => continue,
        };
        if slot.is_none() {
            *slot = normalize_value(&v);
        }
    }
    out
}

/// Lower-cases, trims, turns runs of whitespace into one `_`, drops control
/// characters and caps the length. `None` when nothing is left.
pub fn normalize_value(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(MAX_VALUE_CHARS));
    let mut chars = 0;
    let mut pending_space = false;
    for ch in raw.trim().chars() {
        if ch.is_whitespace() {
            pending_space = true;
            continue;
        }
        if ch.is_control() || ch == '\u{fffd}' {
            continue;
        }
        if pending_space && !out.is_empty() {
            if chars + 1 >= MAX_VALUE_CHARS {
                break;
            }
            out.push('_');
            chars += 1;
        }
        pending_space = false;
        for lower in ch.to_lowercase() {
            if chars >= MAX_VALUE_CHARS {
                break;
            }
            out.push(lower);
            chars += 1;
        }
        if chars >= MAX_VALUE_CHARS {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_VALUE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(r: &str) -> String {
        source(
            Some(r.as_bytes()),
            &["example.com".to_string()],
            "shop.test:8787",
        )
    }

    /// `url` parses hosts without a Unicode back end (`idna_adapter` 1.0,
    /// pinned for the visitor worker's wasm size): the punycode form that
    /// browsers send is a host like any other; a raw non-ASCII host is not
    /// parsed.
    #[test]
    fn punycode_referrer_hosts_parse_and_raw_unicode_ones_are_unknown() {
        assert_eq!(
            src("https://www.xn--bcher-kva.example/list"),
            "xn--bcher-kva.example"
        );
        assert_eq!(src("https://www.bücher.example/list"), UNKNOWN);
    }

    #[test]
    fn search_engines_under_any_tld() {
        assert_eq!(src("https://www.google.com/search?q=x"), "google");
        assert_eq!(src("https://www.google.co.uk/"), "google");
        assert_eq!(src("https://news.google.com.au/x"), "google");
        assert_eq!(src("https://www.bing.com/search?q=x"), "bing");
        assert_eq!(src("https://duckduckgo.com/"), "duckduckgo");
        assert_eq!(src("https://search.yahoo.co.jp/"), "yahoo");
        assert_eq!(src("https://yandex.ru/search"), "yandex");
        assert_eq!(src("http://www.baidu.com/s?wd=x"), "baidu");
        // A brand label deeper in someone else's domain is not the brand.
        assert_eq!(
            src("https://google.evil.example.net/"),
            "google.evil.example.net"
        );
    }

    #[test]
    fn social_networks() {
        assert_eq!(src("https://t.co/abc"), "twitter");
        assert_eq!(src("https://x.com/someone"), "twitter");
        assert_eq!(src("https://l.facebook.com/l.php?u=x"), "facebook");
        assert_eq!(src("https://m.facebook.com/"), "facebook");
        assert_eq!(src("https://www.linkedin.com/feed"), "linkedin");
        assert_eq!(src("https://old.reddit.com/r/x"), "reddit");
        assert_eq!(src("https://news.ycombinator.com/item?id=1"), "hackernews");
        assert_eq!(src("https://notfacebook.com/"), "notfacebook.com");
    }

    #[test]
    fn webmail_is_email_not_search() {
        assert_eq!(src("https://mail.google.com/mail/u/0/"), "email");
        assert_eq!(src("https://outlook.live.com/mail/"), "email");
        assert_eq!(src("https://mail.yahoo.co.jp/"), "email");
        assert_eq!(src("https://webmail.example.org/"), "email");
        assert_eq!(src("android-app://com.google.android.gm"), "email");
        assert_eq!(
            src("android-app://com.google.android.googlequicksearchbox/https/www.google.com"),
            "google"
        );
    }

    #[test]
    fn direct_internal_and_unknown() {
        assert_eq!(source(None, &[], "x"), DIRECT);
        assert_eq!(src(""), DIRECT);
        assert_eq!(src("https://shop.test/pricing"), INTERNAL);
        assert_eq!(src("https://EXAMPLE.com./a"), INTERNAL);
        assert_eq!(src("not a url"), UNKNOWN);
        assert_eq!(src("ftp://files.example.org/"), UNKNOWN);
        assert_eq!(source(Some(b"https://\xff\xfe.com/"), &[], "x"), UNKNOWN);
        let huge = format!("https://a.com/{}", "x".repeat(10_000));
        assert_eq!(src(&huge), UNKNOWN);
        // A `*.` site host names the hosts below it, not itself.
        let wild = ["*.shop.example".to_string()];
        let of = |r: &str| source(Some(r.as_bytes()), &wild, "x");
        assert_eq!(of("https://de.shop.example/cart"), INTERNAL);
        assert_eq!(of("https://shop.example/"), "shop.example");
    }

    #[test]
    fn other_hosts_are_named_by_host_without_www() {
        assert_eq!(src("https://www.Wikipedia.org/wiki/X"), "wikipedia.org");
        assert_eq!(src("http://blog.example.org:8080/post"), "blog.example.org");
        let long = format!("https://{}.com/", "a".repeat(63));
        assert!(src(&long).chars().count() <= MAX_VALUE_CHARS);
    }

    #[test]
    fn utm_fields_are_normalised() {
        let u = utm(
            "utm_source=%20NewsLetter%20&utm_medium=E-Mail&utm_campaign=Spring+Launch++2026&x=1",
        );
        assert_eq!(u.source.as_deref(), Some("newsletter"));
        assert_eq!(u.medium.as_deref(), Some("e-mail"));
        assert_eq!(u.campaign.as_deref(), Some("spring_launch_2026"));
        assert_eq!(utm("a=b"), Utm::default());
        assert_eq!(utm("utm_source=&utm_medium=%00%01").source, None);
        // First occurrence wins.
        assert_eq!(
            utm("utm_source=a&utm_source=b").source.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn utm_values_are_length_capped_on_char_boundaries() {
        let long = "é".repeat(200);
        let v = normalize_value(&long).unwrap();
        assert_eq!(v.chars().count(), MAX_VALUE_CHARS);
        let spaced = format!("{} {}", "a".repeat(63), "b");
        assert_eq!(normalize_value(&spaced).unwrap().chars().count(), 63);
    }

    #[test]
    fn hostile_queries_are_bounded() {
        let mut q: String = (0..5000).map(|i| format!("p{i}=v&")).collect();
        q.push_str("utm_source=late");
        // Parameters past the first 256 are not looked at.
        assert_eq!(utm(&q).source, None);
        assert_eq!(utm("utm_source=%ff%fe").source, None);
        assert_eq!(utm("%%%=&&&=utm_source").source, None);
    }

    #[test]
    fn regression_referer_whose_host_is_only_dots_gave_an_empty_source() {
        // Found by tests/properties.rs (classify::hits_are_valid, 10^6-case
        // run): the host of `https:///../..` is `..`, which lost its dots
        // and became the empty source "" instead of "unknown".
        for r in ["https:///../../x", "https://./", "http://../"] {
            assert_eq!(src(r), UNKNOWN, "{r}");
        }
    }
}
