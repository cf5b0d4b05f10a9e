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
//! Invariants: pure and total (any bytes in, never a panic, no allocation
//! per call); a missing or blank user agent is a bot; only the first
//! [`MAX_UA_BYTES`] bytes are read, so a call costs O(that) plus at most a
//! bounded backtrack for the four list entries with a `*`. The list's
//! patterns are a small regex subset (literals, escapes, `[...]`, `\d \s \S`,
//! `* + ?`, `^ $`, groups with `|` and no quantifier); an entry outside it is
//! a test failure (`every_list_pattern_is_understood`), never a runtime one:
//! such an entry is skipped.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

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

/// What one of our own markers means when found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    /// An entry of the list (a bot).
    ListBot,
    /// An entry of the list that names an HTTP library ([`LIST_CLIENTS`]).
    ListClient,
    /// One of our bot markers.
    Bot,
    /// `bot` / `Bot`: a bot unless a lower-case letter follows.
    BotWord,
    /// One of our client markers.
    Client,
    /// ` readers` / ` subscribers` after a digit: a feed fetcher.
    Readers,
}

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

/// Builds the list now rather than on the first request (call it at start).
pub fn warm_up() {
    let _ = shipped_list();
}

#[derive(Default)]
struct Found {
    bot: bool,
    client: bool,
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

// ---------------------------------------------------------------------------
// The list's regex subset.

/// One position of a pattern: a byte set, or an anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Set([u64; 4]),
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rep {
    One,
    Opt,
    Star,
    Plus,
}

type Piece = (Atom, Rep);

fn set_has(set: &[u64; 4], b: u8) -> bool {
    set.get(usize::from(b >> 6))
        .is_some_and(|w| w >> (b & 63) & 1 == 1)
}

fn set_add(set: &mut [u64; 4], b: u8) {
    if let Some(w) = set.get_mut(usize::from(b >> 6)) {
        *w |= 1 << (b & 63);
    }
}

fn single(b: u8) -> [u64; 4] {
    let mut s = [0; 4];
    set_add(&mut s, b);
    s
}

/// The byte of a one-byte set. Runs once per piece when the list is
/// indexed (a fresh isolate's first request), so it reads the bit's
/// position instead of trying 256 bytes.
fn set_byte(set: &[u64; 4]) -> Option<u8> {
    let count: u32 = set.iter().map(|w| w.count_ones()).sum();
    if count != 1 {
        return None;
    }
    let (word, bits) = set.iter().enumerate().find(|(_, w)| **w != 0)?;
    u8::try_from(word * 64 + bits.trailing_zeros() as usize).ok()
}

fn class_escape(c: u8) -> Option<[u64; 4]> {
    let mut s = [0u64; 4];
    let pred: fn(&u8) -> bool = match c {
        b'd' => u8::is_ascii_digit,
        b'w' => |b| b.is_ascii_alphanumeric() || *b == b'_',
        b's' => |b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        b'S' => |b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c),
        _ => return None,
    };
    for b in 0..=255u8 {
        if pred(&b) {
            set_add(&mut s, b);
        }
    }
    Some(s)
}

/// Parses a pattern into its alternatives (groups multiplied out), or
/// `None` when it uses syntax outside the subset.
fn parse(pattern: &str) -> Option<Vec<Vec<Piece>>> {
    let bytes = pattern.as_bytes();
    let mut pos = 0;
    let alts = parse_alts(bytes, &mut pos, 0)?;
    (pos == bytes.len()).then_some(alts)
}

/// Most alternatives one pattern may expand into.
const MAX_ALTERNATIVES: usize = 64;

fn parse_alts(p: &[u8], pos: &mut usize, depth: u8) -> Option<Vec<Vec<Piece>>> {
    if depth > 4 {
        return None;
    }
    let mut alts: Vec<Vec<Piece>> = Vec::new();
    // The alternatives of the branch being read (a sequence multiplied out).
    let mut branch: Vec<Vec<Piece>> = vec![Vec::new()];
    while let Some(&c) = p.get(*pos) {
        match c {
            b'|' => {
                *pos += 1;
                alts.append(&mut branch);
                branch = vec![Vec::new()];
                continue;
            }
            b')' => break,
            b'(' => {
                *pos += 1;
                if p.get(*pos) == Some(&b'?') {
                    return None;
                }
                let inner = parse_alts(p, pos, depth + 1)?;
                if p.get(*pos) != Some(&b')') {
                    return None;
                }
                *pos += 1;
                if matches!(p.get(*pos), Some(b'*' | b'+' | b'?' | b'{')) {
                    return None;
                }
                let mut next = Vec::new();
                for head in &branch {
                    for tail in &inner {
                        let mut seq = head.clone();
                        seq.extend(tail.iter().cloned());
                        next.push(seq);
                    }
                }
                if next.len() > MAX_ALTERNATIVES {
                    return None;
                }
                branch = next;
                continue;
            }
            _ => {}
        }
        let atom = match c {
            b'^' => {
                *pos += 1;
                Atom::Start
            }
            b'$' => {
                *pos += 1;
                Atom::End
            }
            b'.' => {
                *pos += 1;
                let mut s = [u64::MAX; 4];
                if let Some(w) = s.get_mut(0) {
                    *w &= !(1 << b'\n');
                }
                Atom::Set(s)
            }
            b'\\' => {
                let e = *p.get(*pos + 1)?;
                *pos += 2;
                match class_escape(e) {
                    Some(s) => Atom::Set(s),
                    None if e.is_ascii_punctuation() || e == b' ' => Atom::Set(single(e)),
                    None => return None,
                }
            }
            b'[' => {
                *pos += 1;
                Atom::Set(parse_class(p, pos)?)
            }
            b'*' | b'+' | b'?' | b'{' | b'}' | b']' => return None,
            _ => {
                *pos += 1;
                Atom::Set(single(c))
            }
        };
        let rep = match p.get(*pos) {
            Some(b'*') => Rep::Star,
            Some(b'+') => Rep::Plus,
            Some(b'?') => Rep::Opt,
            _ => Rep::One,
        };
        if rep != Rep::One {
            *pos += 1;
            if matches!(atom, Atom::Start | Atom::End)
                || matches!(p.get(*pos), Some(b'*' | b'+' | b'?' | b'{'))
            {
                return None;
            }
        }
        for seq in &mut branch {
            seq.push((atom.clone(), rep));
        }
    }
    alts.append(&mut branch);
    (alts.len() <= MAX_ALTERNATIVES).then_some(alts)
}

/// `[...]` after the `[`; leaves `pos` after the `]`.
fn parse_class(p: &[u8], pos: &mut usize) -> Option<[u64; 4]> {
    let mut set = [0u64; 4];
    let negate = p.get(*pos) == Some(&b'^');
    if negate {
        *pos += 1;
    }
    let mut first = true;
    loop {
        let c = *p.get(*pos)?;
        if c == b']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        let lo = if c == b'\\' {
            let e = *p.get(*pos + 1)?;
            *pos += 2;
            if let Some(s) = class_escape(e) {
                for (w, x) in set.iter_mut().zip(s) {
                    *w |= x;
                }
                continue;
            }
            if !(e.is_ascii_punctuation() || e == b' ') {
                return None;
            }
            e
        } else {
            *pos += 1;
            c
        };
        if p.get(*pos) == Some(&b'-') && p.get(*pos + 1).is_some_and(|n| *n != b']') {
            let hi = *p.get(*pos + 1)?;
            if hi == b'\\' || hi < lo {
                return None;
            }
            *pos += 2;
            for b in lo..=hi {
                set_add(&mut set, b);
            }
        } else {
            set_add(&mut set, lo);
        }
    }
    if negate {
        for w in &mut set {
            *w = !*w;
        }
    }
    Some(set)
}

/// Whether `pieces` match `hay` starting exactly at `i`.
fn match_here(pieces: &[Piece], hay: &[u8], i: usize) -> bool {
    let Some(((atom, rep), rest)) = pieces.split_first() else {
        return true;
    };
    let set = match atom {
        Atom::Start => return i == 0 && match_here(rest, hay, i),
        Atom::End => return i == hay.len() && match_here(rest, hay, i),
        Atom::Set(s) => s,
    };
    let at = |j: usize| hay.get(j).is_some_and(|b| set_has(set, *b));
    match rep {
        Rep::One => at(i) && match_here(rest, hay, i + 1),
        Rep::Opt => (at(i) && match_here(rest, hay, i + 1)) || match_here(rest, hay, i),
        Rep::Star | Rep::Plus => {
            let min = usize::from(*rep == Rep::Plus);
            let mut n = 0;
            while at(i + n) {
                n += 1;
            }
            (min..=n).rev().any(|k| match_here(rest, hay, i + k))
        }
    }
}

/// One alternative of a list entry, with the literal that must occur in a
/// match and where the match starts relative to it.
struct Entry {
    pieces: Vec<Piece>,
    literal: Vec<u8>,
    /// Bytes from the match's start to the literal, when fixed.
    offset: Option<usize>,
    /// The pieces are exactly the literal (no verification needed).
    pure: bool,
    what: What,
}

impl Entry {
    fn new(pieces: Vec<Piece>, what: What) -> Self {
        // Runs of single bytes: (start, len, offset of the run from the
        // match's start when fixed).
        let mut runs: Vec<(usize, usize, Option<usize>)> = Vec::new();
        let mut offset = Some(0usize);
        let mut in_run = false;
        for (k, (atom, rep)) in pieces.iter().enumerate() {
            let byte = match (atom, rep) {
                (Atom::Set(s), Rep::One) => set_byte(s),
                _ => None,
            };
            match (byte, in_run, runs.last_mut()) {
                (Some(_), true, Some(run)) => run.1 += 1,
                (Some(_), _, _) => runs.push((k, 1, offset)),
                (None, _, _) => {}
            }
            in_run = byte.is_some();
            offset = match (atom, rep, offset) {
                (Atom::Start | Atom::End, _, o) => o,
                (Atom::Set(_), Rep::One, Some(o)) => Some(o + 1),
                _ => None,
            };
        }
        // The longest run at a fixed offset (one verification start), else
        // the longest run.
        let fixed = runs
            .iter()
            .filter(|r| r.2.is_some() && r.1 >= KEY)
            .max_by_key(|r| r.1);
        let any = runs.iter().max_by_key(|r| r.1);
        let (start, len, offset) = fixed.or(any).copied().unwrap_or((0, 0, None));
        let literal: Vec<u8> = pieces
            .iter()
            .skip(start)
            .take(len)
            .filter_map(|(a, _)| match a {
                Atom::Set(s) => set_byte(s),
                _ => None,
            })
            .collect();
        let pure = len == pieces.len();
        Entry {
            pieces,
            literal,
            offset,
            pure,
            what,
        }
    }

    /// Whether the entry matches, given its literal occurs at `i`.
    fn verify(&self, hay: &[u8], i: usize) -> bool {
        match self.what {
            What::BotWord => {
                let after = hay.get(i + self.literal.len()).copied();
                return !after.is_some_and(|b| b.is_ascii_lowercase());
            }
            What::Readers => {
                return i
                    .checked_sub(1)
                    .and_then(|j| hay.get(j))
                    .is_some_and(u8::is_ascii_digit);
            }
            _ => {}
        }
        if self.pure {
            return true;
        }
        match self.offset {
            Some(off) => i
                .checked_sub(off)
                .is_some_and(|s| match_here(&self.pieces, hay, s)),
            None => (0..=hay.len()).any(|s| match_here(&self.pieces, hay, s)),
        }
    }
}

/// Buckets of the literal index (a power of two).
const BUCKETS: usize = 4096;
/// Bytes of a literal the index is keyed on.
const KEY: usize = 3;

fn bucket(key: &[u8]) -> usize {
    let k = match key {
        [a, b, c, ..] => u32::from(*a) << 16 | u32::from(*b) << 8 | u32::from(*c),
        _ => 0,
    };
    (k.wrapping_mul(0x9E37_79B1) >> (32 - BUCKETS.trailing_zeros())) as usize
}

/// The vendored list, indexed by the first bytes of each entry's literal.
pub struct AgentList {
    entries: Vec<Entry>,
    /// One bit per bucket: set when it holds an entry.
    occupied: Vec<u64>,
    /// `starts[b]..starts[b + 1]` are bucket `b`'s positions in `order`.
    starts: Vec<u32>,
    order: Vec<u32>,
    /// Entries whose literal is shorter than the key: tried on every call.
    short: Vec<u32>,
    /// Patterns outside the subset (skipped).
    pub rejected: Vec<String>,
    pub patterns: usize,
}

impl AgentList {
    /// Builds the index from the list's text (one pattern a line).
    pub fn new(text: &str) -> Self {
        Self::build(text, false)
    }

    /// The list's text with our own markers ([`OWN_MARKERS`]), in one index.
    pub fn with_own_markers(text: &str) -> Self {
        Self::build(text, true)
    }

    fn build(text: &str, own: bool) -> Self {
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        let mut patterns = 0;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            patterns += 1;
            let what = if LIST_CLIENTS.contains(&line) {
                What::ListClient
            } else {
                What::ListBot
            };
            match parse(line) {
                Some(alts) => {
                    entries.extend(alts.into_iter().map(|p| Entry::new(p, what)));
                }
                None => rejected.push(line.to_string()),
            }
        }
        for (marker, meaning) in OWN_MARKERS.iter().filter(|_| own) {
            let what = match *meaning {
                "bot" if *marker == "bot" || *marker == "Bot" => What::BotWord,
                "bot" => What::Bot,
                "readers" => What::Readers,
                "client" => What::Client,
                // The contact `@` is looked for apart (one byte, no index).
                _ => continue,
            };
            let pieces = marker
                .bytes()
                .map(|b| (Atom::Set(single(b)), Rep::One))
                .collect();
            entries.push(Entry::new(pieces, what));
        }
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); BUCKETS];
        let mut short = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.literal.len() >= KEY {
                if let Some(b) = buckets.get_mut(bucket(&e.literal)) {
                    b.push(i as u32);
                }
            } else {
                short.push(i as u32);
            }
        }
        let mut starts = Vec::with_capacity(BUCKETS + 1);
        let mut order = Vec::with_capacity(entries.len());
        let mut occupied = vec![0u64; BUCKETS / 64];
        for (i, b) in buckets.iter().enumerate() {
            starts.push(order.len() as u32);
            order.extend_from_slice(b);
            if !b.is_empty() {
                if let Some(w) = occupied.get_mut(i / 64) {
                    *w |= 1 << (i % 64);
                }
            }
        }
        starts.push(order.len() as u32);
        AgentList {
            entries,
            occupied,
            starts,
            order,
            short,
            rejected,
            patterns,
        }
    }

    fn scan(&self, ua: &[u8]) -> Found {
        let mut found = Found::default();
        let note = |e: &Entry, found: &mut Found| {
            if matches!(e.what, What::ListClient | What::Client) {
                found.client = true;
            } else {
                found.bot = true;
            }
        };
        for &idx in &self.short {
            let Some(e) = self.entries.get(idx as usize) else {
                continue;
            };
            if (0..=ua.len()).any(|s| match_here(&e.pieces, ua, s)) {
                note(e, &mut found);
                if found.bot {
                    return found;
                }
            }
        }
        for (i, key) in ua.windows(KEY).enumerate() {
            let b = bucket(key);
            let occupied = self
                .occupied
                .get(b / 64)
                .is_some_and(|w| w >> (b % 64) & 1 == 1);
            if !occupied {
                continue;
            }
            let (Some(&lo), Some(&hi)) = (self.starts.get(b), self.starts.get(b + 1)) else {
                continue;
            };
            let rest = ua.get(i..).unwrap_or(&[]);
            for &idx in self.order.get(lo as usize..hi as usize).unwrap_or(&[]) {
                let Some(e) = self.entries.get(idx as usize) else {
                    continue;
                };
                let client = matches!(e.what, What::ListClient | What::Client);
                if (client && found.client) || !rest.starts_with(&e.literal) {
                    continue;
                }
                if e.verify(ua, i) {
                    note(e, &mut found);
                    if found.bot {
                        return found;
                    }
                }
            }
        }
        found
    }

    /// Whether the list alone calls `ua` a bot (a client entry is not one).
    pub fn is_listed_bot(&self, ua: &[u8]) -> bool {
        self.scan(ua.get(..MAX_UA_BYTES).unwrap_or(ua)).bot
    }
}

/// The vendored list, built once per isolate (or process).
pub fn shipped_list() -> &'static AgentList {
    static LIST: OnceLock<AgentList> = OnceLock::new();
    LIST.get_or_init(|| AgentList::with_own_markers(LIST_TEXT))
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

    #[test]
    fn every_list_pattern_is_understood() {
        let list = shipped_list();
        assert!(list.rejected.is_empty(), "{:?}", list.rejected);
        assert_eq!(list.patterns, 1500);
        assert!(LIST_TEXT.starts_with(&format!("# {LIST_VERSION} ")));
        assert!(list.short.is_empty(), "{}", list.short.len());
        // Every entry we call a client is still in the list.
        for c in LIST_CLIENTS {
            assert!(LIST_TEXT.lines().any(|l| l == *c), "{c} left the list");
        }
        assert!(OWN_MARKERS.len() <= 64);
    }

    #[test]
    fn list_entries_match_like_regexes() {
        let list = AgentList::new(
            "AdsBot-Google([^-]|$)\n(^| )sentry\\/\nBlogTraffic\\/\\d\\.\\d+ Feed-Fetcher\nCurrent[\\s\\S]*RSS Reader\n[cC]urebot\n^dcrawl\nY!J\n",
        );
        assert!(list.rejected.is_empty());
        let bot = |ua: &str| list.is_listed_bot(ua.as_bytes());
        assert!(bot("AdsBot-Google"));
        assert!(bot("AdsBot-Google (+http://www.google.com/adsbot.html)"));
        assert!(!bot("AdsBot-Google-Mobile"));
        assert!(bot("sentry/1.0"));
        assert!(bot("x sentry/1.0"));
        assert!(!bot("xsentry/1.0"));
        assert!(bot("BlogTraffic/1.42 Feed-Fetcher"));
        assert!(!bot("BlogTraffic/x.42 Feed-Fetcher"));
        assert!(bot("Current 2 RSS Reader"));
        assert!(!bot("Current 2 RSS"));
        assert!(bot("Curebot/1") && bot("curebot/1") && !bot("CUREBOT"));
        assert!(bot("dcrawl/8") && !bot("xdcrawl/8"));
        assert!(bot("a Y!J b"));
        for bad in ["a(?:b)", "a{2}", "(ab)+", "a\\q", "[z-a]", "("] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
