//! Whether a rule's notifications are held back at a tick: muted by a
//! silence, or inhibited by another rule that is firing. This is the
//! decision Alertmanager's `notify/mute.go` takes with its silencer and
//! inhibitor, kept out of the notifier ([`crate::alert::alert_book`]) as
//! one pure function, [`mute_on`].
//!
//! Invariants: a silence takes precedence over an inhibition; the first
//! covering silence (in the order given) and the first inhibiting rule (in
//! config order) are the ones named; a rule never inhibits itself. A
//! silence holds back every notification of its rule; an inhibition holds
//! back firing and repeat notifications only, so the resolution of an
//! episode whose firing went out still goes out.

use crate::alert::silence::Silence;
use crate::config::rules::AlertRule;

/// What holds back a rule's notifications at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mute<'a> {
    /// A silence that covers the rule.
    Silenced(&'a Silence),
    /// A firing rule whose `inhibits` names the rule (or `*`).
    Inhibited(&'a AlertRule),
}

impl Mute<'_> {
    /// The notice of the history line that records it: `silenced by {id}`
    /// or `inhibited by {rule}`.
    pub fn notice(&self) -> String {
        match self {
            Mute::Silenced(s) => format!("silenced by {}", s.id),
            Mute::Inhibited(by) => format!("inhibited by {}", by.name),
        }
    }

    /// Whether it also holds back a resolved notification: a silence does,
    /// an inhibition does not.
    pub fn holds_resolved(&self) -> bool {
        matches!(self, Mute::Silenced(_))
    }
}

/// The mute on `rule` at `now`, if any: the first of `silences` that
/// covers it, else the first of the `firing` rules (those with a firing
/// record, in config order) that inhibits it.
pub fn mute_on<'a>(
    rule: &str,
    silences: &'a [Silence],
    firing: &[&'a AlertRule],
    now: i64,
) -> Option<Mute<'a>> {
    if let Some(silence) = silences.iter().find(|s| s.covers(rule, now)) {
        return Some(Mute::Silenced(silence));
    }
    firing
        .iter()
        .find(|f| f.inhibits(rule))
        .map(|f| Mute::Inhibited(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_fixtures::{config, silence};

    #[test]
    fn a_covering_silence_mutes_and_wins_over_an_inhibition() {
        let cfg = config();
        let traffic = cfg.alert("traffic_down").unwrap();
        let firing = [traffic];
        let silences = [silence("logins_drop", 100)];
        let mute = mute_on("logins_drop", &silences, &firing, 99);
        assert_eq!(mute, Some(Mute::Silenced(&silences[0])));
        assert_eq!(mute.unwrap().notice(), "silenced by sil_1");
        assert!(mute.unwrap().holds_resolved());
        // Once the silence ends, the firing inhibitor mutes.
        let mute = mute_on("logins_drop", &silences, &firing, 100);
        assert_eq!(mute, Some(Mute::Inhibited(traffic)));
        assert_eq!(mute.unwrap().notice(), "inhibited by traffic_down");
        assert!(!mute.unwrap().holds_resolved());
        // A `*` silence covers every rule.
        let all = [silence("*", 100)];
        assert!(matches!(
            mute_on("traffic_down", &all, &[], 0),
            Some(Mute::Silenced(_))
        ));
    }

    #[test]
    fn only_a_firing_rule_inhibits_and_never_itself() {
        let cfg = config();
        let traffic = cfg.alert("traffic_down").unwrap();
        assert_eq!(mute_on("logins_drop", &[], &[], 0), None);
        assert_eq!(mute_on("traffic_down", &[], &[traffic], 0), None);
        let logins = cfg.alert("logins_drop").unwrap();
        assert_eq!(mute_on("traffic_down", &[], &[logins], 0), None);
        let other = [silence("logins_drop", 100)];
        assert_eq!(mute_on("traffic_down", &other, &[], 0), None);
    }
}
