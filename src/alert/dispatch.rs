//! Routing a tick's notifications to the configured receivers, as
//! Alertmanager's dispatcher does: each receiver gets the events that name
//! it and, for the grouped formats, the rest of its group.
//!
//! Invariants: a receiver gets a [`Dispatch`] only when some event of the
//! tick names it (the group alone is no news); nothing is dispatched to a
//! receiver a 410 disabled, and those that would have had events are
//! reported; events keep the order of their notices (rule order).

use crate::alert::event::AlertEvent;
use crate::config::rules::Receiver;
use crate::config::Config;

/// An event to deliver, and to whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub event: AlertEvent,
    pub receivers: Vec<String>,
}

/// What one receiver gets from one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch<'a> {
    pub receiver: &'a Receiver,
    /// The tick's events that name this receiver, in rule order.
    pub events: Vec<AlertEvent>,
    /// The rest of its group
    /// ([`AlertBook::firing_group`](crate::alert::alert_book::AlertBook::firing_group)
    /// members that name it), for the grouped formats.
    pub group: Vec<AlertEvent>,
}

/// Routes a tick's notices to the configured receivers. A receiver gets a
/// [`Dispatch`] only if some notice names it (the group alone is no news)
/// and it is not in `disabled`: nothing is queued for a disabled receiver,
/// and the names of those that would have had events are returned second,
/// in config order.
pub fn dispatch<'a>(
    config: &'a Config,
    notices: &[Notice],
    group: &[Notice],
    disabled: &[String],
) -> (Vec<Dispatch<'a>>, Vec<&'a str>) {
    let naming = |list: &[Notice], name: &str| -> Vec<AlertEvent> {
        list.iter()
            .filter(|n| n.receivers.iter().any(|r| r == name))
            .map(|n| n.event.clone())
            .collect()
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for receiver in &config.receivers {
        let events = naming(notices, &receiver.name);
        if events.is_empty() {
            continue;
        }
        if disabled.contains(&receiver.name) {
            skipped.push(receiver.name.as_str());
            continue;
        }
        out.push(Dispatch {
            receiver,
            events,
            group: naming(group, &receiver.name),
        });
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::alert_book::AlertBook;
    use crate::alert::test_fixtures::{grouped, two_outages, T0};
    use crate::time::Utc;
    use crate::time::BUCKET_SECS;

    #[test]
    fn dispatch_skips_disabled_receivers_and_empty_ones() {
        let cfg = grouped();
        let mut book = AlertBook::new(&cfg, vec![], 0);
        let d = two_outages();
        let mut routed_to = Vec::new();
        let mut skipped_all = Vec::new();
        for i in 1..=8 {
            let at = T0 + i * BUCKET_SECS;
            book.evaluate(&cfg, &d, at, &Utc);
            let (notices, _) = book.notify(&cfg, &[], at + 60);
            let group = book.firing_group(&cfg, &[], at + 60);
            let (routed, skipped) = dispatch(&cfg, &notices, &group, &["ops".to_string()]);
            routed_to.extend(routed.iter().map(|r| r.receiver.name.clone()));
            skipped_all.extend(skipped.into_iter().map(String::from));
        }
        // Two firings went to "am"; the logins one also named "ops", which
        // is disabled: skipped, and reported.
        assert_eq!(routed_to, vec!["am", "am"]);
        assert_eq!(skipped_all, vec!["ops"]);
    }
}
