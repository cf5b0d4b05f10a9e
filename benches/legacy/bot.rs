//! The bot test bpm-edge used before agent kinds (`src/bot.rs` until the
//! `kinds` change), kept only so `benches/classify.rs` can time the new
//! classification against it in the same run. Not used by the worker.

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
