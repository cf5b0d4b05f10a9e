//! Who sent a request: a person's **browser**, a **client** (an app or HTTP
//! library: okhttp, CFNetwork, Dalvik, curl, python-requests…) or a **bot**
//! (crawlers, monitors, link previewers, feed readers, headless browsers),
//! from its `User-Agent` and, when the zone has them, Cloudflare's own bot
//! signals.
//!
//! Bots are found with the maintained list `crawler-user-agents` (MIT),
//! vendored at a pinned version in `data/crawler-user-agents/` by
//! `scripts/update-agent-list.sh`, plus a few rules of our own for what the
//! list names one by one and misses ([`OWN_MARKERS`]: generic crawler words,
//! a contact e-mail address, a feed's "N readers" count). Clients are a
//! short curated list of ours ([`OWN_MARKERS`] too); the list's entries that
//! name an HTTP library ([`LIST_CLIENTS`]) count as clients, not bots.
//!
//! The list and our markers are matched by `agent_list` (their regex
//! subset and index), from tables that `build.rs` builds at compile time
//! (`agent_table`): nothing is built at run time, not even on a fresh
//! isolate's first request.
//!
//! Invariants: pure and total (any bytes in, never a panic, no allocation
//! per call); a missing or blank user agent is a bot; only the first
//! [`MAX_UA_BYTES`] bytes are read, so a call costs O(that) plus at most a
//! bounded backtrack for the four list entries with a `*`.

use super::agent_table::shipped_list;
use serde::{Deserialize, Serialize};

/// The three kinds of agent a metric may count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Browser,
    Client,
    Bot,
}

impl AgentKind {
    pub const ALL: [AgentKind; 3] = [AgentKind::Browser, AgentKind::Client, AgentKind::Bot];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Browser => "browser",
            AgentKind::Client => "client",
            AgentKind::Bot => "bot",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        AgentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Cloudflare's bot signals of a request (`request.cf`), when the zone has
/// them (Bot Management, verified bots); all empty otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CfSignals {
    /// `cf.botManagement.score`: 1–99, 1–29 likely automated.
    pub score: Option<u8>,
    /// `cf.botManagement.verifiedBot`, or a `cf.verifiedBotCategory`.
    pub verified_bot: bool,
}

impl CfSignals {
    /// A verified bot, or a score of 1–29 (likely automated).
    pub fn says_automated(&self) -> bool {
        self.verified_bot
            || self
                .score
                .is_some_and(|s| (1..=MAX_AUTOMATED_SCORE).contains(&s))
    }
}

/// Bot-management scores up to this one mean "likely automated".
pub const MAX_AUTOMATED_SCORE: u8 = 29;

/// The pinned list, as vendored (one pattern a line, `#` comments).
pub const LIST_TEXT: &str = include_str!("../../data/crawler-user-agents/patterns.txt");

/// Name and version of the vendored list (its first line says the same).
pub const LIST_VERSION: &str = "crawler-user-agents 1.60.0";

/// Entries of the list that name an HTTP library or an app's HTTP stack:
/// alone, they make a request a client, not a bot.
pub const LIST_CLIENTS: &[&str] = &[
    "Python-urllib",
    "python-requests",
    "aiohttp",
    "httpx",
    "libwww-perl",
    "lwp-trivial",
    "Go-http-client",
    "okhttp",
    "^Apache-HttpClient",
    "HttpUrlConnection",
    "CustomAsyncHttpClient",
    "axios",
    "node-fetch",
    "sindresorhus\\/got",
    "^curl",
    "^PHP-Curl-Class",
    "^HTTPie\\/",
    "[wW]get",
    "Indy Library",
];

/// Our own markers, case-sensitive, on top of the list: generic crawler
/// words (the list names crawlers one by one; `bot` is checked not to be
/// followed by a lower-case letter, and `BOT` is not a marker, for "CUBOT"
/// phones), and the clients: apps' HTTP stacks and HTTP libraries.
pub const OWN_MARKERS: &[(&str, &str)] = &[
    ("bot", "bot"),
    ("Bot", "bot"),
    ("crawler", "bot"),
    ("Crawler", "bot"),
    ("spider", "bot"),
    ("Spider", "bot"),
    ("feed", "bot"),
    ("Feed", "bot"),
    ("HeadlessChrome", "bot"),
    ("@", "contact"),
    (" readers", "readers"),
    (" subscribers", "readers"),
    ("okhttp/", "client"),
    ("Dalvik/", "client"),
    ("CFNetwork/", "client"),
    ("python-requests/", "client"),
    ("Python-urllib/", "client"),
    ("python-httpx/", "client"),
    ("aiohttp/", "client"),
    ("curl/", "client"),
    ("Wget/", "client"),
    ("wget/", "client"),
    ("Go-http-client/", "client"),
    ("Java/", "client"),
    ("Apache-HttpClient/", "client"),
    ("axios/", "client"),
    ("node-fetch/", "client"),
    ("undici", "client"),
    ("got (", "client"),
    ("PostmanRuntime/", "client"),
    ("insomnia/", "client"),
    ("HTTPie/", "client"),
    ("libwww-perl/", "client"),
    ("Dart/", "client"),
    ("GuzzleHttp/", "client"),
    ("RestSharp/", "client"),
    ("Alamofire/", "client"),
    ("Ktor client", "client"),
    ("reqwest/", "client"),
    ("Faraday v", "client"),
];

/// Longest prefix of a user agent that is inspected.
pub const MAX_UA_BYTES: usize = 512;

/// The kind of a request from its user agent and Cloudflare's signals.
///
/// A verified bot is a bot. A likely-automated score turns what looks like
/// a browser into a bot, but leaves a client a client: apps and API clients
/// score low by nature, and their logins are logins.
pub fn classify(user_agent: Option<&[u8]>, cf: CfSignals) -> AgentKind {
    if cf.verified_bot {
        return AgentKind::Bot;
    }
    let kind = kind_of(user_agent);
    match (kind, cf.score) {
        (AgentKind::Browser, Some(s)) if (1..=MAX_AUTOMATED_SCORE).contains(&s) => AgentKind::Bot,
        _ => kind,
    }
}

/// The kind of a user agent alone (missing or blank: a bot).
pub fn kind_of(user_agent: Option<&[u8]>) -> AgentKind {
    let Some(ua) = user_agent else {
        return AgentKind::Bot;
    };
    let ua = ua.get(..MAX_UA_BYTES).unwrap_or(ua);
    if ua.iter().all(|b| b.is_ascii_whitespace()) {
        return AgentKind::Bot;
    }
    let found = shipped_list().scan(ua);
    if found.bot || has_contact(ua) {
        AgentKind::Bot
    } else if found.client {
        AgentKind::Client
    } else {
        AgentKind::Browser
    }
}

/// Whether an `@` of `ua` is a contact address's.
fn has_contact(ua: &[u8]) -> bool {
    ua.iter().enumerate().any(|(i, b)| {
        *b == b'@' && is_contact(ua.get(..i).unwrap_or(&[]), ua.get(i + 1..).unwrap_or(&[]))
    })
}

/// `name@domain.tld`: a word before the `@`, a label, a dot and a letter after.
fn is_contact(before: &[u8], after: &[u8]) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+');
    if !before.last().is_some_and(word) {
        return false;
    }
    let label = after
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    label > 0
        && after.get(label) == Some(&b'.')
        && after.get(label + 1).is_some_and(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(ua: &str) -> AgentKind {
        kind_of(Some(ua.as_bytes()))
    }

    const BROWSERS: &[&str] = &[
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 12; CUBOT KingKong 7) AppleWebKit/537.36 Chrome/120 Mobile",
        "Mozilla/5.0 (iPad; CPU OS 7_0_4 like Mac OS X) AppleWebKit/537.51.1 (KHTML, like Gecko) Version/7.0 Mobile/11B554a Safari/9537.53",
        "Opera/9.80 (Windows NT 6.1; U; ru) Presto/2.7.39 Version/11.00",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0)",
    ];

    const CLIENTS: &[&str] = &[
        "okhttp/4.12.0",
        "Dalvik/2.1.0 (Linux; U; Android 11; Pixel 5 Build/RQ3A.211001.001)",
        "MyShop/5.2 CFNetwork/1410.0.3 Darwin/22.6.0",
        "python-requests/2.31.0",
        "curl/8.5.0",
        "Wget/1.21.4",
        "Go-http-client/1.1",
        "Java/17.0.9",
        "Apache-HttpClient/4.5.13 (Java/11.0.2)",
        "axios/1.6.0",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "PostmanRuntime/7.36.0",
        "Dart/3.2 (dart:io)",
    ];

    const BOTS: &[&str] = &[
        "Mozilla/5.0 (compatible; Ezooms/1.0; help@moz.com)",
        "LiveJournal.com (webmaster@livejournal.com; for http://www.livejournal.com/users/semicomplete_rs/; 1 readers)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 (compatible; archive.org_bot +http://www.archive.org/details/archive.org_bot)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/",
        "Tiny Tiny RSS/1.11 (http://tt-rss.org/)",
        "Feedbin - 1 subscribers",
        "Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 22 subscribers; feed-id=1)",
        "Digg Feed Fetcher 1.0 (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_1) AppleWebKit/534.48.3 (KHTML, like Gecko) Version/5.1 Safari/534.48.3)",
        "Twitterbot/1.0",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; BeetleBot; )",
        "Chrome-Lighthouse",
        "CUBOT crawler",
        // A crawler built on a library is a crawler.
        "Mozilla/5.0 (compatible; MyCrawler/1.0) python-requests/2.31.0",
    ];

    #[test]
    fn real_user_agents_table() {
        for (uas, want) in [
            (BROWSERS, AgentKind::Browser),
            (CLIENTS, AgentKind::Client),
            (BOTS, AgentKind::Bot),
        ] {
            for ua in uas {
                assert_eq!(kind(ua), want, "{ua}");
            }
        }
    }

    #[test]
    fn missing_blank_binary_and_long_user_agents() {
        assert_eq!(kind_of(None), AgentKind::Bot);
        assert_eq!(kind(""), AgentKind::Bot);
        assert_eq!(kind(" \t "), AgentKind::Bot);
        assert_eq!(
            kind_of(Some(b"Mozilla/5.0 \xff\xfe (Windows) Gecko")),
            AgentKind::Browser
        );
        let long = format!("Mozilla/5.0 {} Googlebot/2.1", "x".repeat(10_000));
        assert_eq!(kind(&long), AgentKind::Browser, "only 512 bytes are read");
        // Hostile input for the backtracking entries stays fast and total.
        let hostile = format!("ContextualBot{}", " ".repeat(600));
        assert_eq!(kind(&hostile), AgentKind::Bot);
        let hostile = format!("Current{}", "RSS Reade".repeat(60));
        let _ = kind(&hostile);
    }

    #[test]
    fn cloudflare_signals() {
        let chrome = Some(BROWSERS[0].as_bytes());
        let okhttp = Some(b"okhttp/4.12.0".as_slice());
        let verified = CfSignals {
            score: None,
            verified_bot: true,
        };
        let low = CfSignals {
            score: Some(12),
            verified_bot: false,
        };
        let high = CfSignals {
            score: Some(87),
            verified_bot: false,
        };
        assert_eq!(classify(chrome, CfSignals::default()), AgentKind::Browser);
        assert_eq!(classify(chrome, verified), AgentKind::Bot);
        assert_eq!(classify(chrome, low), AgentKind::Bot);
        assert_eq!(classify(chrome, high), AgentKind::Browser);
        assert_eq!(
            classify(
                chrome,
                CfSignals {
                    score: Some(0),
                    ..high
                }
            ),
            AgentKind::Browser,
            "0 = not scored"
        );
        assert_eq!(classify(okhttp, low), AgentKind::Client);
        assert_eq!(classify(okhttp, verified), AgentKind::Bot);
        assert_eq!(classify(okhttp, high), AgentKind::Client);
    }
}
