//! The crawler list's regex subset and its index, built at compile time.
//!
//! The list's patterns are a small regex subset (literals, escapes, `[...]`,
//! `\d \s \S`, `* + ?`, `^ $`, groups with `|` and no quantifier); an entry
//! outside it is a test failure (`every_list_pattern_is_understood`), never
//! a build or runtime one: such an entry is skipped. Groups are multiplied
//! out, so each alternative is one entry: a sequence of pieces (a byte set
//! or an anchor; once, `?`, `*` or `+`), the literal that must occur in a
//! match (its longest run of single bytes) and where the match starts
//! relative to that literal when fixed. Entries are indexed by the first
//! [`KEY`] bytes of their literal (shorter ones are tried on every call).
//!
//! This module owns both halves. The builder ([`AgentList`], native only:
//! `build.rs` and the tests) parses the list's text plus our markers and
//! emits the result as Rust statics ([`AgentList::to_rust`]), which
//! `agent_table` includes; at run time [`AgentIndex`], a borrowed view of
//! those tables (or of a test's own [`AgentList`]), scans a user agent and
//! nothing is built or allocated.
//!
//! Invariants: the tables hold no references, only offsets, so one type
//! serves the static and the built index. A piece is encoded as bytes
//! (`encode_piece`): an ASCII byte matched once is itself; anything else
//! is an op byte `0x80 | kind << 2 | rep` (kind: one byte follows, the
//! index of a set in `sets` follows, start, end). The builder fails (and
//! with it the build) when a table does not fit its integer type or there
//! are more than 256 distinct sets. The scan is pure and total on any user
//! agent and on any tables (an offset or op out of range matches nothing):
//! never a panic.

use super::agent::MAX_UA_BYTES;

/// What an entry means when found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// An entry of the list (a bot).
    ListBot,
    /// An entry of the list that names an HTTP library (`LIST_CLIENTS`).
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

impl What {
    fn is_client(self) -> bool {
        matches!(self, What::ListClient | What::Client)
    }
}

/// How often a piece's byte set is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rep {
    One,
    Opt,
    Star,
    Plus,
}

impl Rep {
    const ALL: [Rep; 4] = [Rep::One, Rep::Opt, Rep::Star, Rep::Plus];

    /// Its two bits in an op byte.
    #[cfg(not(target_arch = "wasm32"))]
    fn bits(self) -> u8 {
        match self {
            Rep::One => 0,
            Rep::Opt => 1,
            Rep::Star => 2,
            Rep::Plus => 3,
        }
    }
}

/// An op byte: `OP | kind << 2 | rep`; a byte below it is itself, once.
const OP: u8 = 0x80;
/// Kind of an op: one byte follows.
const KIND_BYTE: u8 = 0;
/// Kind of an op: the index of a set in `sets` follows.
const KIND_SET: u8 = 1;
/// Kind of an op: the start of the user agent (`^`).
const KIND_START: u8 = 2;
/// Kind of an op: the end of the user agent (`$`).
const KIND_END: u8 = 3;

/// One alternative of a list entry, as plain data: offsets into the
/// index's `code` and `literals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRec {
    /// Its pieces are `code[code..code + code_len]`.
    pub code: u32,
    pub code_len: u16,
    /// The literal that occurs in every match is
    /// `literals[literal..literal + literal_len]`.
    pub literal: u32,
    pub literal_len: u16,
    /// Bytes from the match's start to the literal, or [`NO_OFFSET`] when
    /// not fixed (then every start is tried).
    pub offset: u16,
    /// The pieces are exactly the literal (no verification needed).
    pub pure: bool,
    pub what: What,
}

/// [`EntryRec::offset`] of an entry whose match may start anywhere.
pub const NO_OFFSET: u16 = u16::MAX;

/// Buckets of the literal index (a power of two).
pub const BUCKETS: usize = 4096;
/// Bytes of a literal the index is keyed on.
pub const KEY: usize = 3;

fn bucket(key: &[u8]) -> usize {
    let k = match key {
        [a, b, c, ..] => u32::from(*a) << 16 | u32::from(*b) << 8 | u32::from(*c),
        _ => 0,
    };
    (k.wrapping_mul(0x9E37_79B1) >> (32 - BUCKETS.trailing_zeros())) as usize
}

/// The list, indexed by the first bytes of each entry's literal: a view of
/// the tables, the static ones (`agent_table`) or an [`AgentList`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentIndex<'a> {
    /// Every entry's encoded pieces, one after another.
    pub code: &'a [u8],
    /// Every entry's literal, one after another.
    pub literals: &'a [u8],
    pub entries: &'a [EntryRec],
    /// The byte sets of the pieces that are not one byte (`KIND_SET`).
    pub sets: &'a [[u64; 4]],
    /// One bit per bucket: set when it holds an entry.
    pub occupied: &'a [u64],
    /// `starts[b]..starts[b + 1]` are bucket `b`'s positions in `order`.
    pub starts: &'a [u16],
    /// Indices in `entries`, bucket after bucket.
    pub order: &'a [u16],
    /// Entries whose literal is shorter than the key: tried on every call.
    pub short: &'a [u16],
}

/// What a scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    pub bot: bool,
    pub client: bool,
}

impl AgentIndex<'static> {
    /// An index of nothing (`build.rs` classifies with it: it runs before
    /// the real one exists).
    pub const EMPTY: AgentIndex<'static> = AgentIndex {
        code: &[],
        literals: &[],
        entries: &[],
        sets: &[],
        occupied: &[],
        starts: &[],
        order: &[],
        short: &[],
    };
}

impl<'a> AgentIndex<'a> {
    /// An entry's encoded pieces (`None`: out of range).
    fn code_of(&self, e: &EntryRec) -> Option<&'a [u8]> {
        span(self.code, e.code, e.code_len)
    }

    /// An entry's literal (`None`: out of range).
    fn literal_of(&self, e: &EntryRec) -> Option<&'a [u8]> {
        span(self.literals, e.literal, e.literal_len)
    }

    /// Whether the entry matches, given its literal occurs at `i`.
    fn verify(&self, e: &EntryRec, literal: &[u8], hay: &[u8], i: usize) -> bool {
        match e.what {
            What::BotWord => {
                let after = hay.get(i + literal.len()).copied();
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
        if e.pure {
            return true;
        }
        let Some(code) = self.code_of(e) else {
            return false;
        };
        match e.offset {
            NO_OFFSET => (0..=hay.len()).any(|s| match_here(code, self.sets, hay, s)),
            off => i
                .checked_sub(usize::from(off))
                .is_some_and(|s| match_here(code, self.sets, hay, s)),
        }
    }

    /// Whether the list (and the markers, when built with them) finds a bot
    /// or a client in `ua`, which the caller has cut to [`MAX_UA_BYTES`].
    /// Stops at the first bot.
    pub fn scan(&self, ua: &[u8]) -> Found {
        let mut found = Found::default();
        let note = |e: &EntryRec, found: &mut Found| {
            if e.what.is_client() {
                found.client = true;
            } else {
                found.bot = true;
            }
        };
        for &idx in self.short {
            let Some(e) = self.entries.get(usize::from(idx)) else {
                continue;
            };
            let Some(code) = self.code_of(e) else {
                continue;
            };
            if (0..=ua.len()).any(|s| match_here(code, self.sets, ua, s)) {
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
            let bucket = self
                .order
                .get(usize::from(lo)..usize::from(hi))
                .unwrap_or(&[]);
            for &idx in bucket {
                let Some(e) = self.entries.get(usize::from(idx)) else {
                    continue;
                };
                if e.what.is_client() && found.client {
                    continue;
                }
                let Some(literal) = self.literal_of(e) else {
                    continue;
                };
                if !rest.starts_with(literal) {
                    continue;
                }
                if self.verify(e, literal, ua, i) {
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

/// `bytes[start..start + len]`, or `None` when out of range.
fn span(bytes: &[u8], start: u32, len: u16) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    bytes.get(start..start.checked_add(usize::from(len))?)
}

fn set_has(set: &[u64; 4], b: u8) -> bool {
    set.get(usize::from(b >> 6))
        .is_some_and(|w| w >> (b & 63) & 1 == 1)
}

/// The set of no byte: what an op out of range matches.
static NO_BYTES: [u64; 4] = [0; 4];

/// A decoded piece's atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op<'s> {
    Byte(u8),
    Set(&'s [u64; 4]),
    Start,
    End,
}

/// The first piece of `code` and the code after it; `None` at the end.
/// An op that is cut short, of an unknown kind or naming a set out of
/// range decodes as the empty set (it matches nothing).
fn next_piece<'c, 's>(code: &'c [u8], sets: &'s [[u64; 4]]) -> Option<(Op<'s>, Rep, &'c [u8])> {
    let (&op, rest) = code.split_first()?;
    if op < OP {
        return Some((Op::Byte(op), Rep::One, rest));
    }
    let rep = Rep::ALL
        .get(usize::from(op & 3))
        .copied()
        .unwrap_or(Rep::One);
    let nothing = Op::Set(&NO_BYTES);
    let (atom, rest) = match ((op & !OP) >> 2, rest.split_first()) {
        (KIND_BYTE, Some((&b, rest))) => (Op::Byte(b), rest),
        (KIND_SET, Some((&s, rest))) => {
            let set = sets.get(usize::from(s)).map_or(nothing, Op::Set);
            (set, rest)
        }
        (KIND_START, _) => (Op::Start, rest),
        (KIND_END, _) => (Op::End, rest),
        _ => (nothing, rest),
    };
    Some((atom, rep, rest))
}

/// Whether the encoded pieces `code` match `hay` starting exactly at `i`.
fn match_here(code: &[u8], sets: &[[u64; 4]], hay: &[u8], i: usize) -> bool {
    let Some((atom, rep, rest)) = next_piece(code, sets) else {
        return true;
    };
    let at = |j: usize| {
        hay.get(j).is_some_and(|b| match atom {
            Op::Byte(x) => *b == x,
            Op::Set(s) => set_has(s, *b),
            Op::Start | Op::End => false,
        })
    };
    match atom {
        Op::Start => return i == 0 && match_here(rest, sets, hay, i),
        Op::End => return i == hay.len() && match_here(rest, sets, hay, i),
        Op::Byte(_) | Op::Set(_) => {}
    }
    match rep {
        Rep::One => at(i) && match_here(rest, sets, hay, i + 1),
        Rep::Opt => (at(i) && match_here(rest, sets, hay, i + 1)) || match_here(rest, sets, hay, i),
        Rep::Star | Rep::Plus => {
            let min = usize::from(rep == Rep::Plus);
            let mut n = 0;
            while at(i + n) {
                n += 1;
            }
            (min..=n).rev().any(|k| match_here(rest, sets, hay, i + k))
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use builder::AgentList;

/// Parsing the list and building its tables: natively only (`build.rs`
/// and the tests), so the wasm carries neither the list's text nor this.
#[cfg(not(target_arch = "wasm32"))]
mod builder {
    use super::*;
    use crate::count::agent::{LIST_CLIENTS, OWN_MARKERS};
    use std::fmt::Write;

    /// One position of a pattern: a byte set, or an anchor.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Atom {
        Set([u64; 4]),
        Start,
        End,
    }

    pub(super) type Piece = (Atom, Rep);

    fn set_add(set: &mut [u64; 4], b: u8) {
        if let Some(w) = set.get_mut(usize::from(b >> 6)) {
            *w |= 1 << (b & 63);
        }
    }

    pub(super) fn single(b: u8) -> [u64; 4] {
        let mut s = [0; 4];
        set_add(&mut s, b);
        s
    }

    /// The byte of a one-byte set (reads the bit's position rather than
    /// trying 256 bytes: it runs once per piece).
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
    pub(super) fn parse(pattern: &str) -> Option<Vec<Vec<Piece>>> {
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
    }

    /// Appends `piece`, encoded, to `code`; a set that is not one byte gets
    /// (or reuses) an index in `sets`. Fails past 256 distinct sets.
    pub(super) fn encode_piece(
        (atom, rep): &Piece,
        sets: &mut Vec<[u64; 4]>,
        code: &mut Vec<u8>,
    ) -> Result<(), String> {
        let op = |kind: u8| OP | kind << 2 | rep.bits();
        match atom {
            Atom::Start => code.push(op(KIND_START)),
            Atom::End => code.push(op(KIND_END)),
            Atom::Set(s) => match set_byte(s) {
                Some(b) if b < OP && *rep == Rep::One => code.push(b),
                Some(b) => code.extend([op(KIND_BYTE), b]),
                None => {
                    let index = match sets.iter().position(|x| x == s) {
                        Some(i) => i,
                        None => {
                            sets.push(*s);
                            sets.len() - 1
                        }
                    };
                    let index = u8::try_from(index)
                        .map_err(|_| "more than 256 distinct byte sets".to_string())?;
                    code.extend([op(KIND_SET), index]);
                }
            },
        }
        Ok(())
    }

    /// The pieces of `code` (what [`encode_piece`] wrote), for the tests.
    #[cfg(test)]
    pub(super) fn decode(mut code: &[u8], sets: &[[u64; 4]]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while let Some((op, rep, rest)) = next_piece(code, sets) {
            let atom = match op {
                Op::Byte(b) => Atom::Set(single(b)),
                Op::Set(s) => Atom::Set(*s),
                Op::Start => Atom::Start,
                Op::End => Atom::End,
            };
            pieces.push((atom, rep));
            code = rest;
        }
        pieces
    }

    /// `n` as the integer type of its table, or the build's error.
    fn fit<T: TryFrom<usize>>(n: usize, what: &str) -> Result<T, String> {
        T::try_from(n).map_err(|_| {
            format!(
                "{what} ({n}) does not fit its table's integer type ({})",
                std::any::type_name::<T>()
            )
        })
    }

    /// The list's tables, built and owned: what `build.rs` writes out and the
    /// tests build from texts of their own.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AgentList {
        code: Vec<u8>,
        literals: Vec<u8>,
        entries: Vec<EntryRec>,
        sets: Vec<[u64; 4]>,
        occupied: Vec<u64>,
        starts: Vec<u16>,
        order: Vec<u16>,
        short: Vec<u16>,
        /// Patterns outside the subset (skipped).
        pub rejected: Vec<String>,
        pub patterns: usize,
    }

    impl AgentList {
        /// Builds the index from the list's text (one pattern a line).
        pub fn new(text: &str) -> Result<Self, String> {
            Self::build(text, false)
        }

        /// The list's text with our own markers ([`OWN_MARKERS`]), in one index.
        pub fn with_own_markers(text: &str) -> Result<Self, String> {
            Self::build(text, true)
        }

        fn build(text: &str, own: bool) -> Result<Self, String> {
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
            let mut code = Vec::new();
            let mut literals = Vec::new();
            let mut sets = Vec::new();
            let mut recs = Vec::with_capacity(entries.len());
            for e in &entries {
                let code_start = code.len();
                for piece in &e.pieces {
                    encode_piece(piece, &mut sets, &mut code)?;
                }
                let literal_start = literals.len();
                literals.extend_from_slice(&e.literal);
                let offset = match e.offset {
                    Some(o) if o < usize::from(NO_OFFSET) => fit(o, "a literal's offset")?,
                    Some(o) => return Err(format!("a literal's offset ({o}) is too large")),
                    None => NO_OFFSET,
                };
                recs.push(EntryRec {
                    code: fit(code_start, "the code's length")?,
                    code_len: fit(code.len() - code_start, "an entry's code length")?,
                    literal: fit(literal_start, "the literals' length")?,
                    literal_len: fit(e.literal.len(), "a literal's length")?,
                    offset,
                    pure: e.pure,
                    what: e.what,
                });
            }
            let mut buckets: Vec<Vec<u16>> = vec![Vec::new(); BUCKETS];
            let mut short = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                let i: u16 = fit(i, "the number of entries")?;
                if e.literal.len() >= KEY {
                    if let Some(b) = buckets.get_mut(bucket(&e.literal)) {
                        b.push(i);
                    }
                } else {
                    short.push(i);
                }
            }
            let mut starts = Vec::with_capacity(BUCKETS + 1);
            let mut order = Vec::with_capacity(entries.len());
            let mut occupied = vec![0u64; BUCKETS / 64];
            for (i, b) in buckets.iter().enumerate() {
                starts.push(fit(order.len(), "the number of entries")?);
                order.extend_from_slice(b);
                if !b.is_empty() {
                    if let Some(w) = occupied.get_mut(i / 64) {
                        *w |= 1 << (i % 64);
                    }
                }
            }
            starts.push(fit(order.len(), "the number of entries")?);
            Ok(AgentList {
                code,
                literals,
                entries: recs,
                sets,
                occupied,
                starts,
                order,
                short,
                rejected,
                patterns,
            })
        }

        /// The tables, as the scan reads them.
        pub fn view(&self) -> AgentIndex<'_> {
            AgentIndex {
                code: &self.code,
                literals: &self.literals,
                entries: &self.entries,
                sets: &self.sets,
                occupied: &self.occupied,
                starts: &self.starts,
                order: &self.order,
                short: &self.short,
            }
        }

        /// The tables as Rust source: a `static SHIPPED: AgentIndex<'static>`
        /// for `agent_table` to include (it names `AgentIndex`, `EntryRec` and
        /// `What` from `super::agent_list`).
        pub fn to_rust(&self) -> String {
            let mut s = String::new();
            s.push_str(
                "// Generated by build.rs (agent_list::AgentList::to_rust) from\n\
             // data/crawler-user-agents/patterns.txt and our markers. Do not edit.\n\
             #[allow(unused_imports)]\n\
             use super::agent_list::{AgentIndex, EntryRec, What};\n\n\
             pub(super) static SHIPPED: AgentIndex<'static> = AgentIndex {\n",
            );
            s.push_str("    code: b\"");
            escape_bytes(&mut s, &self.code);
            s.push_str("\",\n    literals: b\"");
            escape_bytes(&mut s, &self.literals);
            s.push_str("\",\n    entries: &[\n");
            for e in &self.entries {
                let _ = writeln!(
                s,
                "        EntryRec {{ code: {}, code_len: {}, literal: {}, literal_len: {}, offset: {}, pure: {}, what: What::{:?} }},",
                e.code, e.code_len, e.literal, e.literal_len, e.offset, e.pure, e.what
            );
            }
            s.push_str("    ],\n    sets: &[\n");
            for set in &self.sets {
                let [a, b, c, d] = set;
                let _ = writeln!(
                    s,
                    "        [0x{a:016x}, 0x{b:016x}, 0x{c:016x}, 0x{d:016x}],"
                );
            }
            s.push_str("    ],\n");
            numbers(&mut s, "occupied", &self.occupied, |n| {
                format!("0x{n:016x}")
            });
            numbers(&mut s, "starts", &self.starts, |n| n.to_string());
            numbers(&mut s, "order", &self.order, |n| n.to_string());
            numbers(&mut s, "short", &self.short, |n| n.to_string());
            s.push_str("};\n");
            s
        }
    }

    /// `bytes` inside a byte string literal: printable ASCII as itself (but
    /// `"` and `\`), the rest as `\xNN`.
    fn escape_bytes(s: &mut String, bytes: &[u8]) {
        for &b in bytes {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                s.push(char::from(b));
            } else {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }

    /// `    name: &[n, n, …],` with 16 numbers a line.
    fn numbers<T: Copy>(s: &mut String, name: &str, ns: &[T], show: impl Fn(T) -> String) {
        let _ = write!(s, "    {name}: &[");
        for (i, n) in ns.iter().enumerate() {
            s.push_str(if i % 16 == 0 { "\n        " } else { " " });
            s.push_str(&show(*n));
            s.push(',');
        }
        s.push_str("\n    ],\n");
    }
}

#[cfg(test)]
mod tests {
    use super::builder::{decode, encode_piece, parse, single, Atom, Piece};
    use super::*;
    use crate::count::agent::{LIST_CLIENTS, LIST_TEXT, LIST_VERSION, OWN_MARKERS};
    use crate::count::agent_table::shipped_list;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;
    use std::sync::OnceLock;

    /// The list with our markers, built now (once per test process).
    fn built() -> &'static AgentList {
        static LIST: OnceLock<AgentList> = OnceLock::new();
        LIST.get_or_init(|| AgentList::with_own_markers(LIST_TEXT).expect("the list builds"))
    }

    /// How the pieces matched before they were encoded (the matcher of the
    /// runtime-built index, kept as the oracle of `match_here`).
    fn match_pieces(pieces: &[Piece], hay: &[u8], i: usize) -> bool {
        let Some(((atom, rep), rest)) = pieces.split_first() else {
            return true;
        };
        let set = match atom {
            Atom::Start => return i == 0 && match_pieces(rest, hay, i),
            Atom::End => return i == hay.len() && match_pieces(rest, hay, i),
            Atom::Set(s) => s,
        };
        let at = |j: usize| hay.get(j).is_some_and(|b| set_has(set, *b));
        match rep {
            Rep::One => at(i) && match_pieces(rest, hay, i + 1),
            Rep::Opt => (at(i) && match_pieces(rest, hay, i + 1)) || match_pieces(rest, hay, i),
            Rep::Star | Rep::Plus => {
                let min = usize::from(*rep == Rep::Plus);
                let mut n = 0;
                while at(i + n) {
                    n += 1;
                }
                (min..=n).rev().any(|k| match_pieces(rest, hay, i + k))
            }
        }
    }

    #[test]
    fn every_list_pattern_is_understood() {
        let list = built();
        assert!(list.rejected.is_empty(), "{:?}", list.rejected);
        assert_eq!(list.patterns, 1500);
        assert!(LIST_TEXT.starts_with(&format!("# {LIST_VERSION} ")));
        let shipped = shipped_list();
        assert!(shipped.short.is_empty(), "{}", shipped.short.len());
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
        )
        .expect("builds");
        assert!(list.rejected.is_empty());
        let index = list.view();
        let bot = |ua: &str| index.is_listed_bot(ua.as_bytes());
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

    #[test]
    fn piece_encoding_round_trips() {
        let digits = parse("\\d").expect("parses")[0][0].0.clone();
        let atoms = [
            Atom::Set(single(b'a')),
            Atom::Set(single(0)),
            Atom::Set(single(0x7f)),
            Atom::Set(single(0x80)),
            Atom::Set(single(0xff)),
            Atom::Set([0; 4]),
            Atom::Set([u64::MAX; 4]),
            digits,
            Atom::Start,
            Atom::End,
        ];
        let mut sets = Vec::new();
        let mut code = Vec::new();
        let mut all = Vec::new();
        for atom in &atoms {
            for rep in Rep::ALL {
                let piece = (atom.clone(), rep);
                let mut one = Vec::new();
                encode_piece(&piece, &mut sets, &mut one).expect("encodes");
                assert_eq!(
                    decode(&one, &sets),
                    std::slice::from_ref(&piece),
                    "{piece:?} as {one:?}"
                );
                // An ASCII byte once is itself; anything else is an op.
                let ascii_once = (0..OP).any(|b| piece == (Atom::Set(single(b)), Rep::One));
                match one.as_slice() {
                    [b] if ascii_once => assert!(*b < OP),
                    [op, ..] => assert!(*op >= OP && !ascii_once, "{piece:?} as {one:?}"),
                    [] => panic!("{piece:?} encoded as nothing"),
                }
                code.extend_from_slice(&one);
                all.push(piece);
            }
        }
        assert_eq!(decode(&code, &sets), all);
        // Each set that is not one byte is stored once.
        assert_eq!(sets.len(), 3);
    }

    #[test]
    fn tables_that_do_not_fit_fail() {
        let alnum: Vec<char> = ('0'..='9').chain('a'..='z').chain('A'..='Z').collect();
        let classes: Vec<String> = alnum
            .iter()
            .flat_map(|x| {
                alnum
                    .iter()
                    .filter(move |y| x < y)
                    .map(move |y| format!("[{x}{y}]"))
            })
            .take(257)
            .collect();
        let text = |n: usize| {
            classes
                .iter()
                .take(n)
                .map(|c| format!("{c}\n"))
                .collect::<String>()
        };
        assert!(AgentList::new(&text(256)).is_ok());
        let err = AgentList::new(&text(257)).expect_err("257 sets");
        assert!(err.contains("256"), "{err}");
        let err = AgentList::new(&".".repeat(40_000)).expect_err("80,000 bytes of code");
        assert!(err.contains("code length"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Every entry of the list matches the encoded way exactly where its
        /// pieces matched, at every start, on user agents that hold one of
        /// the list's literals.
        #[test]
        fn encoded_entries_match_like_their_pieces(
            pick in any::<prop::sample::Index>(),
            before in "[ -~]{0,20}",
            after in "[ -~]{0,20}",
        ) {
            let list = built();
            let index = list.view();
            let e = pick.get(index.entries);
            let literal = index.literal_of(e).unwrap_or(&[]);
            let hay = [before.as_bytes(), literal, after.as_bytes()].concat();
            for e in index.entries {
                let code = index.code_of(e).unwrap_or(&[]);
                let pieces = decode(code, index.sets);
                for s in 0..=hay.len() {
                    prop_assert_eq!(
                        match_here(code, index.sets, &hay, s),
                        match_pieces(&pieces, &hay, s),
                        "{:?} at {}", e, s
                    );
                }
            }
        }

        /// Tables of any content (cut short, out of range, unknown ops) are
        /// scanned without a panic.
        #[test]
        fn any_tables_are_scanned_without_panic(
            code in prop::collection::vec(any::<u8>(), 0..40),
            literals in prop::collection::vec(any::<u8>(), 0..20),
            raw in prop::collection::vec((any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>(), any::<u16>(), any::<bool>(), 0usize..6), 0..6),
            small in prop::collection::vec(0u32..40, 0..6),
            sets in prop::collection::vec(any::<[u64; 4]>(), 0..3),
            starts in prop::collection::vec(any::<u16>(), 0..BUCKETS + 2),
            order in prop::collection::vec(any::<u16>(), 0..8),
            short in prop::collection::vec(any::<u16>(), 0..8),
            ua in prop::collection::vec(any::<u8>(), 0..80),
        ) {
            let whats = [What::ListBot, What::ListClient, What::Bot, What::BotWord, What::Client, What::Readers];
            let entries: Vec<EntryRec> = raw
                .iter()
                .zip(small.iter().chain(std::iter::repeat(&0)))
                .map(|(&(c, cl, l, ll, offset, pure, w), &s)| EntryRec {
                    // Half in range, half anywhere.
                    code: if pure { s } else { c },
                    code_len: cl % 64,
                    literal: if pure { s % 20 } else { l },
                    literal_len: ll % 8,
                    offset: if offset % 2 == 0 { offset % 8 } else { offset },
                    pure: ll % 2 == 0,
                    what: whats.get(w).copied().unwrap_or(What::Bot),
                })
                .collect();
            let index = AgentIndex {
                code: &code,
                literals: &literals,
                entries: &entries,
                sets: &sets,
                occupied: &[u64::MAX; BUCKETS / 64],
                starts: &starts,
                order: &order,
                short: &short,
            };
            let _ = index.scan(&ua);
            for s in 0..=ua.len() {
                let _ = match_here(&code, &sets, &ua, s);
            }
        }
    }
}
