//! Tells crawlers, monitors and HTTP libraries from browsers by their
//! `User-Agent`, so their hits are counted as a metric's `bots` and never in
//! the BPM itself.
//!
//! A fixed list of case-insensitive substrings, not a regex engine: it keeps
//! the wasm small and costs well under a microsecond. A missing or empty user
//! agent counts as a bot (browsers always send one).

/// Lower-case markers; a user agent containing any of them is a bot.
const MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "archiver",
    "archive.org",
    "facebookexternalhit",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "feed",
    "rss",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "lwp-",
    "httpclient",
    "scrapy",
    "node-fetch",
    "axios/",
    "undici",
    "postman",
    "insomnia",
    "apachebench",
    "wrk",
    "k6/",
];

/// For each byte, a bit set of the markers that start with it.
const FIRST_BYTE: [u64; 256] = first_byte_index();

const fn first_byte_index() -> [u64; 256] {
    assert!(MARKERS.len() <= 64);
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < MARKERS.len() {
        let first = MARKERS[i].as_bytes()[0];
        table[first as usize] |= 1 << i;
        i += 1;
    }
    table
}

/// Browser brands whose model names contain `bot` ("CUBOT" phones).
const NOT_BOTS: &[&str] = &["cubot"];

/// Longest prefix of a user agent that is inspected.
const MAX_UA_BYTES: usize = 512;

/// True for crawlers, monitors, HTTP libraries and an empty user agent.
pub fn is_bot(user_agent: Option<&[u8]>) -> bool {
    let Some(ua) = user_agent else { return true };
    let ua = ua.get(..MAX_UA_BYTES).unwrap_or(ua);
    if ua.iter().all(|b| b.is_ascii_whitespace()) {
        return true;
    }
    let mut lower = [0u8; MAX_UA_BYTES];
    for (dst, src) in lower.iter_mut().zip(ua) {
        *dst = src.to_ascii_lowercase();
    }
    let hay = lower.get(..ua.len()).unwrap_or(&[]);
    let mut found_bot_word = false;
    let mut found_other = false;
    let mut cubot = false;
    // One pass over the user agent, trying only the markers that start with
    // the byte at each position.
    for (i, b) in hay.iter().enumerate() {
        let mut candidates = FIRST_BYTE[usize::from(*b)];
        if candidates == 0 {
            continue;
        }
        let rest = hay.get(i..).unwrap_or(&[]);
        while candidates != 0 {
            let idx = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let Some(m) = MARKERS.get(idx) else { break };
            if rest.starts_with(m.as_bytes()) {
                if *m == "bot" {
                    found_bot_word = true;
                } else {
                    found_other = true;
                }
            }
        }
        if NOT_BOTS.iter().any(|n| rest.starts_with(n.as_bytes())) {
            cubot = true;
        }
        if found_other {
            return true;
        }
    }
    found_bot_word && !cubot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot(ua: &str) -> bool {
        is_bot(Some(ua.as_bytes()))
    }

    #[test]
    fn browsers_are_not_bots() {
        assert!(!bot("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"));
        assert!(!bot("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"));
        assert!(!bot(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
        ));
        assert!(!bot("Mozilla/5.0 (Linux; Android 12; CUBOT KingKong 7) AppleWebKit/537.36 Chrome/120 Mobile"));
    }

    #[test]
    fn crawlers_and_tools_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "Mozilla/5.0 (compatible; archive.org_bot +http://www.archive.org/details/archive.org_bot)",
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "facebookexternalhit/1.1",
            "Tiny Tiny RSS/1.11 (http://tt-rss.org/)",
            "UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/",
            "curl/8.5.0",
            "Wget/1.21",
            "python-requests/2.31",
            "Go-http-client/1.1",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
            "CUBOT crawler",
        ] {
            assert!(bot(ua), "{ua}");
        }
    }

    #[test]
    fn missing_empty_and_binary_user_agents() {
        assert!(is_bot(None));
        assert!(bot(""));
        assert!(bot("   "));
        assert!(!is_bot(Some(b"Mozilla/5.0 \xff\xfe (Windows)")));
        let long = format!("Mozilla/5.0 {} bot", "x".repeat(10_000));
        // Only the first 512 bytes are inspected.
        assert!(!bot(&long));
    }
}
