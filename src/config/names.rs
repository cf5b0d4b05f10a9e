//! What a name in `bpm.toml` may be: the one place that says which
//! characters the site, metric, rule, receiver, label, Worker var and host
//! names take. The tables' checks call these and word their errors.
//!
//! The rules differ, each for the reason given at it. Invariant shared by
//! all: no name holds `[`, `]`, `:` or whitespace, so the keys built from
//! them (`rule[value]` for a `by` rule's instance, `{site}:{shard}` for a
//! counter Durable Object) stay unambiguous.

/// Longest site, metric, rule or receiver name.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// A site name (`site.name`): 1 to 64 ASCII letters, digits, `-`, `_` or
/// `.`. It names the counter Durable Objects (`{name}:{shard}`), so it
/// holds no `:`.
pub(crate) fn valid_site_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
}

/// A metric name: `a-z` first, then `a-z`, `0-9` and `_`, at most 64, as
/// the README documents it. Narrower than [`valid_rule_name`] (no `-`):
/// the two rules were written apart and both are kept as they are, so no
/// config valid today is refused and none refused today becomes valid.
pub(crate) fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= MAX_NAME_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// An alert rule's or a receiver's name: `a-z` first, then `a-z`, `0-9`,
/// `_` and `-`, at most 64. Wider than [`valid_metric_name`] by `-`, which
/// rule and receiver names have taken since they were introduced.
pub(crate) fn valid_rule_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= MAX_NAME_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// A rule's label name: an ASCII letter or `_` first, then letters,
/// digits and `_`: the label names Alertmanager (Prometheus) accepts, as
/// the labels go out to it.
pub(crate) fn valid_label_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
        && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// The name of a Worker var or secret (`url_var`, `secret`): 1 to 128
/// ASCII letters, digits and `_`.
pub(crate) fn valid_var_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A host name (`site.hosts`, a `referrer_host` after its `*.`), already
/// lower-cased: dot-separated labels of 1 to 63 ASCII letters, digits, `-`
/// or `_`, at most 253 in all; no scheme, port or path.
pub(crate) fn valid_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_take_no_dash_where_rule_names_do() {
        for name in ["logins", "login_views2"] {
            assert!(valid_metric_name(name) && valid_rule_name(name), "{name}");
        }
        assert!(!valid_metric_name("logins-drop"));
        assert!(valid_rule_name("logins-drop"));
        for bad in ["", "Logins", "2fa", "_x", "a[b]", "a:b", "a b"] {
            assert!(!valid_metric_name(bad) && !valid_rule_name(bad), "{bad:?}");
        }
        let longest = "a".repeat(MAX_NAME_LEN);
        assert!(valid_metric_name(&longest) && valid_rule_name(&longest));
        assert!(!valid_rule_name(&format!("{longest}a")));
    }

    #[test]
    fn site_label_var_and_host_names() {
        assert!(valid_site_name("Shop-1.example_2"));
        assert!(!valid_site_name("shop:1") && !valid_site_name(""));
        assert!(valid_label_name("_team") && valid_label_name("Team2"));
        assert!(!valid_label_name("2team") && !valid_label_name("team-x"));
        assert!(valid_var_name("BPM_HOOK_URL") && !valid_var_name("BPM-HOOK"));
        assert!(valid_host("news.example.com") && valid_host("localhost"));
        assert!(!valid_host("example..com") && !valid_host("https://example.com"));
    }
}
