//! The `slack` format, an incoming webhook with Block Kit: one message per
//! group, with a header, one mrkdwn section per event, a note of how many
//! more there were and the site's other BPMs, and a plain fallback `text`.
//! Text from events and config is escaped before it becomes mrkdwn, and the
//! limits Slack documents hold, counted in characters: header 150, text
//! object 3000, 50 blocks; a cut never falls inside an entity or a link.

use super::{elapsed_label, explanation, num_string, short_num, truncate_chars, whole};
use crate::alert::event::{AlertEvent, EventStatus, HealthChange};
use crate::time::duration_label;
use serde::Serialize;

pub(crate) const SLACK_HEADER_MAX: usize = 150;
pub(crate) const SLACK_TEXT_MAX: usize = 3000;
/// Blocks in one message.
pub(crate) const SLACK_BLOCKS_MAX: usize = 50;
/// Sections per message: 50 blocks minus header, "more" note and context.
const SLACK_SECTIONS_MAX: usize = SLACK_BLOCKS_MAX - 3;

/// Unix seconds → "2026-11-24 10:15 UTC" for people.
fn human_time(t: i64) -> String {
    match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => "1970-01-01 00:00 UTC".to_string(),
    }
}

/// [`truncate_chars`] for Slack mrkdwn that is already escaped
/// ([`slack_escape`], [`slack_link`]): the cut never falls inside an entity
/// (`&amp;`) or a link (`<url|label>`). In such text a bare `&` only starts
/// an entity and a bare `<` only starts a link, so a kept prefix that ends
/// after an `&` with no `;` behind it, or after a `<` with no `>` behind it,
/// is shortened to end before that character; the result still ends with
/// "…" and has at most `max` characters.
fn truncate_mrkdwn(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    loop {
        let open_entity = out.rfind('&').filter(|&i| !out[i..].contains(';'));
        let open_link = out.rfind('<').filter(|&i| !out[i..].contains('>'));
        match open_entity.into_iter().chain(open_link).min() {
            Some(i) => out.truncate(i),
            None => break,
        }
    }
    out.push('…');
    out
}

#[derive(Serialize)]
pub(crate) struct SlackMessage {
    pub(crate) text: String,
    pub(crate) blocks: Vec<SlackBlock>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum SlackBlock {
    Header { text: SlackText },
    Section { text: SlackText },
    Context { elements: Vec<SlackText> },
}

#[derive(Serialize)]
pub(crate) struct SlackText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji: Option<bool>,
}

impl SlackText {
    pub(crate) fn plain(text: &str, max: usize) -> Self {
        SlackText {
            kind: "plain_text",
            text: truncate_chars(text, max),
            emoji: Some(true),
        }
    }

    /// `text` must be escaped mrkdwn; it is cut as [`truncate_mrkdwn`] does.
    pub(crate) fn mrkdwn(text: &str) -> Self {
        SlackText {
            kind: "mrkdwn",
            text: truncate_mrkdwn(text, SLACK_TEXT_MAX),
            emoji: None,
        }
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control.
pub(crate) fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `<url|label>`, or `None` for an empty URL; a `|` in the URL is
/// percent-encoded so it cannot end the link early.
fn slack_link(url: &str, label: &str) -> Option<String> {
    (!url.is_empty()).then(|| format!("<{}|{label}>", slack_escape(url).replace('|', "%7C")))
}

fn status_emoji(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Firing => ":rotating_light:",
        EventStatus::Resolved => ":white_check_mark:",
    }
}

/// The fallback line of one event (unescaped), e.g. ":rotating_light:
/// [FIRING] logins dropped 64% (observed 36 vs expected 100 in 1h) on demo".
fn slack_line(e: &AlertEvent) -> String {
    let name = e.subject();
    let what = match e.status {
        EventStatus::Firing => {
            let verb = if e.repeat { "still down" } else { "dropped" };
            format!(
                "[FIRING] {name} {verb} {}% (observed {} vs expected {} in {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            )
        }
        EventStatus::Resolved => {
            let mut s = format!(
                "[RESOLVED] {name} recovered after {}",
                elapsed_label(e.duration_s)
            );
            if let Some(r) = e.lowest_ratio.filter(|r| r.is_finite()) {
                s.push_str(&format!(" (lowest {}% of baseline)", whole(r * 100.0)));
            }
            s
        }
    };
    format!("{} {what} on {}", status_emoji(e.status), e.site)
}

/// The header of a group: one event names its metric; several are counted
/// per status, Alertmanager style ("[FIRING:2] demo").
fn slack_header(events: &[AlertEvent]) -> String {
    let site = events.first().map_or("", |e| e.site.as_str());
    if let [e] = events {
        let tag = match e.status {
            EventStatus::Firing => "FIRING",
            EventStatus::Resolved => "RESOLVED",
        };
        return format!(
            "{} [{tag}] {} on {site}",
            status_emoji(e.status),
            e.subject()
        );
    }
    let firing = events
        .iter()
        .filter(|e| e.status == EventStatus::Firing)
        .count();
    let resolved = events.len() - firing;
    let tag = match (firing, resolved) {
        (f, 0) => format!("[FIRING:{f}]"),
        (0, r) => format!("[RESOLVED:{r}]"),
        (f, r) => format!("[FIRING:{f}, RESOLVED:{r}]"),
    };
    let emoji = status_emoji(if firing > 0 {
        EventStatus::Firing
    } else {
        EventStatus::Resolved
    });
    format!("{emoji} {tag} {site}")
}

/// The status mix and latency change, if anything was measured.
fn health_line(h: &HealthChange) -> Option<String> {
    let mut parts: Vec<String> = h
        .status
        .iter()
        .filter(|s| s.now_pct.is_finite())
        .map(|s| match s.before_pct.filter(|p| p.is_finite()) {
            Some(b) => format!(
                "{} {}% (was {}%)",
                s.class,
                short_num(s.now_pct),
                short_num(b)
            ),
            None => format!("{} {}%", s.class, short_num(s.now_pct)),
        })
        .collect();
    if let Some(now) = h.p95_ms_now.filter(|v| v.is_finite()) {
        parts.push(match h.p95_ms_before.filter(|v| v.is_finite()) {
            Some(b) => format!("p95 {} ms (was {} ms)", whole(now), whole(b)),
            None => format!("p95 {} ms", whole(now)),
        });
    }
    (!parts.is_empty()).then(|| slack_escape(&parts.join(", ")))
}

/// The mrkdwn section of one event: metric, observed vs expected, drop,
/// window, since when, health, runbook and dashboard links.
fn slack_section(e: &AlertEvent) -> String {
    let m = &e.metric;
    let mut title = format!("{} *{}*", status_emoji(e.status), slack_escape(&m.name));
    if let Some(sc) = &e.scope {
        title.push_str(&format!(
            " {} *{}*",
            slack_escape(&sc.dimension),
            slack_escape(&sc.value)
        ));
    }
    if !m.stage.is_empty() {
        title.push_str(&format!(" ({})", slack_escape(&m.stage)));
    }
    title.push_str(&format!(
        " · {} · rule `{}`",
        e.severity.as_str(),
        slack_escape(&e.rule)
    ));
    let mut lines = vec![title];
    match e.status {
        EventStatus::Firing => {
            lines.push(format!(
                "Dropped *{}%*: observed *{}* vs expected *{}* in the last {} (z {})",
                whole(e.drop_pct),
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window),
                num_string(e.z, 2)
            ));
            // An episode's first firing has `duration_s` 0 (it reports the
            // evaluation that started it): "(0s)" would say nothing.
            let mut since = format!("Firing since {}", human_time(e.started_at));
            if e.duration_s > 0 {
                since.push_str(&format!(" ({})", elapsed_label(e.duration_s)));
            }
            lines.push(since);
        }
        EventStatus::Resolved => {
            let mut s = format!("Recovered after {}", elapsed_label(e.duration_s));
            if let Some(r) = e.lowest_ratio.filter(|r| r.is_finite()) {
                s.push_str(&format!("; lowest {}% of baseline", whole(r * 100.0)));
            }
            lines.push(s);
            lines.push(format!(
                "Now observed {} vs expected {} in the last {}",
                short_num(e.observed),
                short_num(e.expected),
                duration_label(e.window)
            ));
            lines.push(format!(
                "Fired {}, resolved {}",
                human_time(e.started_at),
                human_time(e.resolved_at.unwrap_or(e.at))
            ));
        }
    }
    if let Some(d) = e
        .after_deploy
        .as_ref()
        .filter(|_| e.status == EventStatus::Firing)
    {
        let mut line = format!("After a deploy: {}", slack_escape(&d.text()));
        if let Some(link) = d.link.as_deref().and_then(|l| slack_link(l, "deploy")) {
            line.push_str(&format!(" ({link})"));
        }
        lines.push(line);
    }
    if let Some(x) = explanation(e) {
        lines.push(format!("Where: {}", slack_escape(&x.text)));
    }
    if let Some(h) = e.health.as_ref().and_then(health_line) {
        lines.push(h);
    }
    let links: Vec<String> = [
        slack_link(&m.runbook, "Runbook"),
        slack_link(&e.dashboard_url, "Dashboard"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !links.is_empty() {
        lines.push(links.join(" · "));
    }
    lines.join("\n")
}

/// Other BPMs of the site, once each, leaving out those the message is
/// about: "signups 98% · checkout 41% (firing)".
fn slack_others(events: &[AlertEvent]) -> Option<String> {
    let mut seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.metric.name.as_str(), e.rule.as_str()))
        .collect();
    let mut parts = Vec::new();
    for o in events.iter().flat_map(|e| &e.other_bpms) {
        let key = (o.metric.as_str(), o.rule.as_str());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let ratio = match o.ratio.filter(|r| r.is_finite()) {
            Some(r) => format!("{}%", whole(r * 100.0)),
            None => "–".to_string(),
        };
        let mut s = format!("{} {ratio}", slack_escape(&o.metric));
        if o.state != "ok" {
            s.push_str(&format!(" ({})", slack_escape(&o.state)));
        }
        parts.push(s);
    }
    (!parts.is_empty()).then(|| format!("Other BPMs: {}", parts.join(" · ")))
}

impl SlackMessage {
    /// One message for all of `events`: a section each, up to
    /// [`SLACK_SECTIONS_MAX`]; past that, the last section gives way to a
    /// note of how many more there were.
    pub(super) fn new(events: &[AlertEvent]) -> Self {
        let header = slack_header(events);
        let lines: Vec<String> = events.iter().map(slack_line).collect();
        let text = match lines.as_slice() {
            [one] => one.clone(),
            _ => format!("{header}\n{}", lines.join("\n")),
        };
        let mut blocks = vec![SlackBlock::Header {
            text: SlackText::plain(&header, SLACK_HEADER_MAX),
        }];
        let shown = if events.len() > SLACK_SECTIONS_MAX {
            SLACK_SECTIONS_MAX - 1
        } else {
            events.len()
        };
        blocks.extend(events.iter().take(shown).map(|e| SlackBlock::Section {
            text: SlackText::mrkdwn(&slack_section(e)),
        }));
        if shown < events.len() {
            blocks.push(SlackBlock::Context {
                elements: vec![SlackText::mrkdwn(&format!(
                    "…and {} more",
                    events.len() - shown
                ))],
            });
        }
        if let Some(others) = slack_others(events) {
            blocks.push(SlackBlock::Context {
                elements: vec![SlackText::mrkdwn(&others)],
            });
        }
        SlackMessage {
            text: truncate_mrkdwn(&slack_escape(&text), SLACK_TEXT_MAX),
            blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::payload::tests::{event, one};
    use crate::alert::payload::WebhookFormat;

    #[test]
    fn slack_shape() {
        let (id, v) = one(WebhookFormat::Slack, &[event("evt_1", EventStatus::Firing)]);
        assert!(id.starts_with("grp_"));
        assert_eq!(
            v["text"],
            ":rotating_light: [FIRING] logins dropped 64% (observed 36 vs expected 100 in 1h) on demo"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let header = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(!header.is_empty() && header.chars().count() <= 150);
        assert_eq!(blocks[1]["type"], "section");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        for part in [
            "*logins*",
            "*64%*",
            "observed *36* vs expected *100*",
            "last 1h",
            "Firing since 2026-11-24 09:10 UTC (1h 05m)",
            "<https://wiki.example.com/runbooks/logins|Runbook>",
            "|Dashboard>",
            "5xx 11.9% (was 1%)",
        ] {
            assert!(section.contains(part), "{part:?} in {section:?}");
        }
        let last = blocks.last().unwrap();
        assert_eq!(last["type"], "context");
        let others = last["elements"][0]["text"].as_str().unwrap();
        assert_eq!(others, "Other BPMs: signups 98% · checkout – (learning)");
    }

    #[test]
    fn slack_groups_resolved_and_limits_lengths() {
        let (_, v) = one(
            WebhookFormat::Slack,
            &[event("evt_2", EventStatus::Resolved)],
        );
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: [RESOLVED] logins recovered after 1h 05m"));

        let mut a = event("evt_1", EventStatus::Firing);
        a.site = "d".repeat(400);
        a.metric.name = "<b>&".to_string();
        let b = AlertEvent {
            id: "evt_3".to_string(),
            ..a.clone()
        };
        let (_, v) = one(WebhookFormat::Slack, &[a, b]);
        let header = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.starts_with(":rotating_light: [FIRING:2] ddd"));
        assert_eq!(header.chars().count(), 150);
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("&lt;b&gt;&amp;") && !text.contains("<b>"));
        assert!(v["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*&lt;b&gt;&amp;*"));

        let many: Vec<AlertEvent> = (0..60)
            .map(|i| event(&format!("evt_{i}"), EventStatus::Firing))
            .collect();
        let (_, v) = one(WebhookFormat::Slack, &many);
        assert!(v["blocks"].as_array().unwrap().len() <= 50);
        assert!(v["text"].as_str().unwrap().chars().count() <= 3000);
    }

    #[test]
    fn regression_slack_truncation_cut_inside_an_entity_or_a_link() {
        // Cutting "&amp;" to "&am…" or "<https://…|Runbook>" to "<https://…"
        // showed raw markup in Slack (or a link to a truncated URL).
        let entity = format!("{}&amp;tail", "x".repeat(10));
        for max in 11..=15 {
            let cut = truncate_mrkdwn(&entity, max);
            assert_eq!(cut, format!("{}…", "x".repeat(10)), "max {max}");
        }
        assert_eq!(
            truncate_mrkdwn(&entity, 16),
            format!("{}&amp;…", "x".repeat(10))
        );
        let link = "see <https://wiki.example.com/a?b=1&amp;c=2|Runbook> now";
        for max in 6..=52 {
            let cut = truncate_mrkdwn(link, max);
            assert_eq!(cut, "see …", "max {max}");
        }
        assert_eq!(
            truncate_mrkdwn(link, 53),
            "see <https://wiki.example.com/a?b=1&amp;c=2|Runbook>…"
        );
        // Plain text is cut like truncate_chars; short text is kept.
        assert_eq!(truncate_mrkdwn("abcdef", 4), "abc…");
        assert_eq!(truncate_mrkdwn("a&amp;b", 7), "a&amp;b");
        // A whole message: every cut of a long section ends cleanly.
        let mut e = event("evt_1", EventStatus::Firing);
        e.metric.description = String::new();
        e.metric.stage = "&".repeat(3000);
        let (_, v) = one(WebhookFormat::Slack, &[e]);
        let section = v["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= SLACK_TEXT_MAX);
        assert!(
            section.ends_with("&amp;…"),
            "{}",
            &section[section.len() - 20..]
        );
        for text in [section, v["text"].as_str().unwrap()] {
            let tail = text.trim_end_matches('…');
            let last_amp = tail.rfind('&').unwrap_or(0);
            assert!(tail[last_amp..].contains(';') || !tail.contains('&'));
            assert!(tail.rfind('<').is_none_or(|i| tail[i..].contains('>')));
        }
    }
}
