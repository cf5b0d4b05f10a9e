//! The shipped user-agent index, built at compile time: `build.rs` parses
//! the vendored list and our markers with `agent_list`'s builder and writes
//! the tables as Rust statics into `$OUT_DIR/agent_index.rs`, included
//! here, so a fresh isolate builds nothing before its first classification.
//!
//! Invariant: the tables equal what the builder makes of the list now
//! (`shipped_index_is_current`), so a stale generated file cannot pass.

// `static SHIPPED: AgentIndex<'static>`, and the `use` of what it names.
include!(concat!(env!("OUT_DIR"), "/agent_index.rs"));

/// The vendored list and our markers, indexed.
pub fn shipped_list() -> &'static AgentIndex<'static> {
    &SHIPPED
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::agent::LIST_TEXT;
    use crate::count::agent_list::AgentList;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;
    use std::sync::OnceLock;

    fn built() -> &'static AgentList {
        static LIST: OnceLock<AgentList> = OnceLock::new();
        LIST.get_or_init(|| AgentList::with_own_markers(LIST_TEXT).expect("the list builds"))
    }

    #[test]
    fn shipped_index_is_current() {
        let (now, shipped) = (built().view(), shipped_list());
        // Table by table first, so a failure names the table.
        assert!(now.code == shipped.code, "code");
        assert!(now.literals == shipped.literals, "literals");
        assert!(now.entries == shipped.entries, "entries");
        assert!(now.sets == shipped.sets, "sets");
        assert!(now.occupied == shipped.occupied, "occupied");
        assert!(now.starts == shipped.starts, "starts");
        assert!(now.order == shipped.order, "order");
        assert!(now.short == shipped.short, "short");
        assert!(now == *shipped);
        assert!(!shipped.entries.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// The static index and one built now find the same in any ASCII
        /// user agent, also one around one of the list's literals.
        #[test]
        fn static_and_built_index_scan_alike(
            pick in any::<prop::sample::Index>(),
            before in "[ -~]{0,60}",
            after in "[ -~]{0,60}",
            bare in "[ -~]{0,200}",
        ) {
            let (now, shipped) = (built().view(), shipped_list());
            let e = pick.get(shipped.entries);
            let start = usize::try_from(e.literal).unwrap_or(usize::MAX);
            let literal = shipped
                .literals
                .get(start..start + usize::from(e.literal_len))
                .unwrap_or(&[]);
            let around = [before.as_bytes(), literal, after.as_bytes()].concat();
            for ua in [around.as_slice(), bare.as_bytes()] {
                prop_assert_eq!(now.scan(ua), shipped.scan(ua));
            }
        }
    }
}
