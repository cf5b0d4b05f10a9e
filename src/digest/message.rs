//! The digest as receivers get it: Slack (Block Kit, within Slack's
//! limits: header 150 characters, text 3000, 50 blocks; lines that do not
//! fit are counted in a last note, never cut mid-line), and the generic
//! JSON (`"type": "bpm.digest"`, the scorecard's numbers plus an
//! e-mail-ready HTML body, `html`, for receivers that mail it). Text from
//! the config and annotations is escaped for each format.

use crate::alert::payload::short_num;
use crate::alert::payload::slack::{
    slack_escape, SlackBlock, SlackMessage, SlackText, SLACK_BLOCKS_MAX, SLACK_HEADER_MAX,
    SLACK_TEXT_MAX,
};
use crate::config::sitetime::SiteTime;
use crate::digest::scorecard::{MetricLine, Mover, Referrals, Scorecard};
use crate::history::rule_backtest::Episode;
use crate::time::{duration_label, format_time};
use serde::Serialize;

/// `−12%`, `+3%`, `±0%` (a real minus sign), or `n/a`.
fn pct(change: Option<f64>) -> String {
    match change.filter(|c| c.is_finite()) {
        None => "n/a".into(),
        Some(c) => {
            let p = (c * 100.0).round();
            if p == 0.0 {
                "±0%".into()
            } else if p < 0.0 {
                format!("−{}%", -p)
            } else {
                format!("+{p}%")
            }
        }
    }
}

/// A local time for people: `Mon 23 Nov 14:05`.
fn local_time(zone: &SiteTime, t: i64) -> String {
    chrono::DateTime::from_timestamp(zone.local(t), 0)
        .map(|d| d.format("%a %d %b %H:%M").to_string())
        .unwrap_or_default()
}

/// A local date: `Mon 23 Nov 2026`.
fn local_date(zone: &SiteTime, t: i64) -> String {
    chrono::DateTime::from_timestamp(zone.local(t), 0)
        .map(|d| d.format("%a %d %b %Y").to_string())
        .unwrap_or_default()
}

/// `BPM digest: shop, Mon 16 Nov 2026 – Sun 22 Nov 2026`.
fn title(card: &Scorecard, zone: &SiteTime) -> String {
    format!(
        "BPM digest: {}, {} – {}",
        card.site,
        local_date(zone, card.period.from),
        local_date(zone, card.period.to - 1)
    )
}

/// A count as the alert messages write one (`short_num`), or `no data`.
fn value_text(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".into(), short_num)
}

/// ` (N visitors)` after a counted BPM's value, when known.
fn visitors_text(v: Option<u64>) -> String {
    v.map_or_else(String::new, |v| {
        format!(
            " ({} visitor{})",
            short_num(v as f64),
            if v == 1 { "" } else { "s" }
        )
    })
}

fn episode_plain(e: &Episode, zone: &SiteTime) -> String {
    let name = match &e.value {
        Some(v) => format!("{} ({v})", e.rule),
        None => e.rule.clone(),
    };
    let lasted = e.resolved.map_or_else(
        || "still firing".to_string(),
        |r| format!("lasted {}", duration_label(r - e.fired)),
    );
    let low = e
        .lowest_ratio
        .map(|r| format!(", lowest {}% of expected", (r * 100.0).round()))
        .unwrap_or_default();
    format!(
        "{name} on {}: fired {}, {lasted}{low}",
        e.metric,
        local_time(zone, e.fired)
    )
}

/// `google 50 (+150%)`: a source's or campaign's count and its change.
fn mover_text(m: &Mover) -> String {
    let change = (m.before > 0).then(|| m.now as f64 / m.before as f64 - 1.0);
    let change = if m.before == 0 {
        "new".to_string()
    } else {
        pct(change)
    };
    format!("{} {} ({change})", m.value, m.now)
}

/// The referral lines, each value passed through `escape`: the top
/// sources, the top campaigns, what moved most.
fn referral_lines(r: &Referrals, escape: fn(&str) -> String) -> Vec<String> {
    let list = |l: &[Mover]| {
        l.iter()
            .map(|m| escape(&mover_text(m)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    if !r.sources.is_empty() {
        out.push(format!("• Top sources: {}", list(&r.sources)));
    }
    if !r.campaigns.is_empty() {
        out.push(format!("• Top campaigns: {}", list(&r.campaigns)));
    }
    if !r.moved.is_empty() {
        let moved = r
            .moved
            .iter()
            .map(|m| {
                escape(&format!(
                    "{} {}: {} → {}",
                    m.dimension, m.value, m.before, m.now
                ))
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(format!("• Moved most: {moved}"));
    }
    out
}

/// Stage titles as the dashboard shows them.
fn stage_title(stage: &str) -> &str {
    match stage {
        "retention" => "Retention",
        "activation" => "Activation",
        "revenue" => "Revenue",
        "referral" => "Referral",
        _ => "Other",
    }
}

/// The Slack message's JSON body: a header, a note of what is compared,
/// one section per stage (more when a stage's lines pass 3000
/// characters), the alerts and the annotations.
pub fn slack(card: &Scorecard, zone: &SiteTime) -> serde_json::Value {
    serde_json::to_value(slack_message(card, zone)).unwrap_or(serde_json::Value::Null)
}

fn slack_message(card: &Scorecard, zone: &SiteTime) -> SlackMessage {
    // Groups of whole lines, each group one section's text.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut stage = "";
    for m in &card.metrics {
        if m.stage != stage {
            stage = m.stage;
            groups.push((format!("*{}*", stage_title(stage)), Vec::new()));
        }
        if let Some((_, lines)) = groups.last_mut() {
            lines.push(format!(
                "• *{}* {}{} · {} vs the period before · {} vs usual",
                slack_escape(&m.metric),
                value_text(m.value),
                visitors_text(m.visitors),
                pct(m.vs_previous),
                pct(m.vs_baseline)
            ));
        }
    }
    let alerts: Vec<String> = card
        .alerts
        .iter()
        .map(|e| format!("• {}", slack_escape(&episode_plain(e, zone))))
        .collect();
    let title_alerts = if alerts.is_empty() {
        "*Alerts*: none fired".to_string()
    } else {
        format!("*Alerts* ({})", alerts.len())
    };
    groups.push((title_alerts, alerts));
    let referral_lines = referral_lines(&card.referrals, slack_escape);
    if !referral_lines.is_empty() {
        groups.push(("*Referrals*".into(), referral_lines));
    }
    if !card.annotations.is_empty() {
        let notes = card
            .annotations
            .iter()
            .map(|a| {
                format!(
                    "• {} {}: {}",
                    local_time(zone, a.at),
                    a.kind.as_str(),
                    slack_escape(a.version.as_deref().unwrap_or(&a.text))
                )
            })
            .collect();
        groups.push(("*Annotations*".into(), notes));
    }

    let mut blocks = vec![
        SlackBlock::Header {
            text: SlackText::plain(&title(card, zone), SLACK_HEADER_MAX),
        },
        SlackBlock::Context {
            elements: vec![SlackText::mrkdwn(
                "Each BPM this period against the period before and against usual (the median of the same period in the 4 weeks before).",
            )],
        },
    ];
    // Room for the note of what did not fit.
    let room = SLACK_BLOCKS_MAX - 1;
    let mut left_out = 0usize;
    for (head, lines) in groups {
        let mut text = head;
        for line in lines {
            if text.chars().count() + 1 + line.chars().count() > SLACK_TEXT_MAX {
                if blocks.len() < room {
                    blocks.push(SlackBlock::Section {
                        text: SlackText::mrkdwn(&text),
                    });
                } else {
                    left_out += text.lines().count();
                }
                text = String::new();
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&line);
        }
        if blocks.len() < room {
            blocks.push(SlackBlock::Section {
                text: SlackText::mrkdwn(&text),
            });
        } else {
            left_out += text.lines().count();
        }
    }
    if left_out > 0 {
        blocks.push(SlackBlock::Context {
            elements: vec![SlackText::mrkdwn(&format!(
                "{left_out} more lines did not fit in this message: see the dashboard."
            ))],
        });
    }
    SlackMessage {
        text: title(card, zone),
        blocks,
    }
}

/// A period in the JSON: RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodJson {
    pub from: String,
    pub to: String,
}

/// The generic JSON digest (stable; documented in the README).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestJson {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The delivery id (`digest:{site}:{period start}`), also the
    /// `webhook-id` it is signed under.
    pub id: String,
    pub site: String,
    pub period: PeriodJson,
    pub previous: PeriodJson,
    pub metrics: Vec<MetricLine>,
    pub alerts: Vec<Episode>,
    pub referrals: Referrals,
    pub annotations: Vec<crate::alert::annotation::Annotation>,
    /// A plain-text summary line.
    pub text: String,
    /// An e-mail-ready HTML body.
    pub html: String,
}

/// The JSON digest of `card`, under delivery id `id`.
pub fn json(card: &Scorecard, zone: &SiteTime, id: &str) -> DigestJson {
    let period = |p: &crate::digest::schedule::DigestPeriod| PeriodJson {
        from: format_time(p.from),
        to: format_time(p.to),
    };
    DigestJson {
        kind: "bpm.digest",
        id: id.to_string(),
        site: card.site.clone(),
        period: period(&card.period),
        previous: period(&card.previous),
        metrics: card.metrics.clone(),
        alerts: card.alerts.clone(),
        referrals: card.referrals.clone(),
        annotations: card.annotations.clone(),
        text: title(card, zone),
        html: html(card, zone),
    }
}

/// Escapes text for HTML element content and attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML body: a title, one table of the BPMs by stage, the alerts and
/// the annotations; inline styles only (mail clients drop style sheets).
pub fn html(card: &Scorecard, zone: &SiteTime) -> String {
    let mut out = format!(
        "<div style=\"font-family:sans-serif;max-width:640px\"><h2>{}</h2>\n<table style=\"border-collapse:collapse;width:100%\">\n<tr><th align=\"left\">BPM</th><th align=\"right\">This period</th><th align=\"right\">vs before</th><th align=\"right\">vs usual</th></tr>\n",
        html_escape(&title(card, zone))
    );
    let mut stage = "";
    for m in &card.metrics {
        if m.stage != stage {
            stage = m.stage;
            out.push_str(&format!(
                "<tr><td colspan=\"4\" style=\"padding-top:8px\"><b>{}</b></td></tr>\n",
                stage_title(stage)
            ));
        }
        out.push_str(&format!(
            "<tr><td>{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>\n",
            html_escape(&m.metric),
            html_escape(&value_text(m.value)),
            m.visitors.map(|v| short_num(v as f64)).unwrap_or_default(),
            pct(m.vs_previous),
            pct(m.vs_baseline)
        ));
    }
    out.push_str("</table>\n<h3>Alerts</h3>\n");
    if card.alerts.is_empty() {
        out.push_str("<p>None fired.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for e in &card.alerts {
            out.push_str(&format!(
                "<li>{}</li>\n",
                html_escape(&episode_plain(e, zone))
            ));
        }
        out.push_str("</ul>\n");
    }
    let referrals = referral_lines(&card.referrals, html_escape);
    if !referrals.is_empty() {
        out.push_str("<h3>Referrals</h3>\n<ul>\n");
        for line in referrals {
            out.push_str(&format!("<li>{}</li>\n", line.trim_start_matches("• ")));
        }
        out.push_str("</ul>\n");
    }
    if !card.annotations.is_empty() {
        out.push_str("<h3>Annotations</h3>\n<ul>\n");
        for a in &card.annotations {
            out.push_str(&format!(
                "<li>{} {}: {}</li>\n",
                html_escape(&local_time(zone, a.at)),
                a.kind.as_str(),
                html_escape(&a.text)
            ));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::annotation::{Annotation, AnnotationKind};
    use crate::digest::schedule::DigestPeriod;

    fn mover(dim: &str, value: &str, now: u64, before: u64) -> Mover {
        Mover {
            dimension: dim.into(),
            value: value.into(),
            now,
            before,
        }
    }

    fn card(metrics: usize) -> Scorecard {
        let stages = ["retention", "activation", "revenue", "referral", "other"];
        let period = DigestPeriod {
            from: 1_763_942_400, // Mon 2025-11-24 00:00 UTC
            to: 1_763_942_400 + 7 * 86_400,
            send_at: 1_763_942_400 + 7 * 86_400 + 9 * 3600,
        };
        Scorecard {
            site: "shop".into(),
            period,
            previous: DigestPeriod {
                from: period.from - 7 * 86_400,
                to: period.from,
                send_at: period.send_at - 7 * 86_400,
            },
            metrics: (0..metrics)
                .map(|i| MetricLine {
                    metric: format!("metric_with_a_long_descriptive_name_{i:02}"),
                    stage: stages[i * stages.len() / metrics.max(1)],
                    value: Some(1234.0 + i as f64),
                    previous: Some(2000.0),
                    baseline: Some(1900.0),
                    vs_previous: Some(-0.383),
                    vs_baseline: Some(0.0),
                    visitors: Some(900 + i as u64),
                    visitors_previous: Some(1500),
                })
                .collect(),
            alerts: vec![Episode {
                rule: "logins_drop".into(),
                value: None,
                metric: "logins".into(),
                fired: period.from + 3600,
                resolved: Some(period.from + 3 * 3600),
                lowest_ratio: Some(0.1),
            }],
            referrals: Referrals {
                sources: vec![mover("source", "google", 50, 20)],
                campaigns: vec![mover("utm_campaign", "winter-sale", 30, 0)],
                moved: vec![mover("source", "hackernews", 0, 40)],
            },
            annotations: vec![Annotation {
                id: "d".into(),
                kind: AnnotationKind::Deploy,
                at: period.from + 1800,
                text: "<script>alert(1)</script> & more".into(),
                link: None,
                version: None,
            }],
        }
    }

    #[test]
    fn fifty_bpms_fit_slacks_limits() {
        let c = card(50);
        let msg = slack(&c, &SiteTime::utc());
        let v = msg;
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        assert!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 150
        );
        let mut shown = 0;
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(
                    t.chars().count() <= 3000,
                    "{} characters",
                    t.chars().count()
                );
                shown += t.matches("• *metric_with").count();
            }
        }
        assert_eq!(shown, 50, "every BPM is listed");
        let all = v.to_string();
        assert!(
            all.contains("1234 (900 visitors) · −38% vs the period before · ±0% vs usual"),
            "{all}"
        );
        assert!(all.contains(
            "logins_drop on logins: fired Mon 24 Nov 01:00, lasted 2h, lowest 10% of expected"
        ));
        assert!(all.contains("&lt;script&gt;"), "annotations are escaped");
        assert!(all.contains("• Top sources: google 50 (+150%)"), "{all}");
        assert!(
            all.contains("• Top campaigns: winter-sale 30 (new)"),
            "{all}"
        );
        assert!(
            all.contains("• Moved most: source hackernews: 40 → 0"),
            "{all}"
        );
        // Twice the most a config may declare: still 50 blocks, and a note
        // says how many lines did not fit.
        let big = slack(&card(2 * crate::config::MAX_METRICS), &SiteTime::utc());
        let v = big;
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 50);
        assert!(v.to_string().contains("more lines did not fit"));
    }

    #[test]
    fn the_json_digest_carries_the_numbers_and_an_escaped_html_body() {
        let c = card(3);
        let j = json(&c, &SiteTime::utc(), "digest:shop:1763942400");
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["type"], "bpm.digest");
        assert_eq!(v["id"], "digest:shop:1763942400");
        assert_eq!(v["period"]["from"], "2025-11-24T00:00:00Z");
        assert_eq!(v["previous"]["to"], "2025-11-24T00:00:00Z");
        assert_eq!(v["metrics"][0]["value"], 1234.0);
        assert_eq!(v["metrics"][0]["vs_previous"], -0.383);
        assert_eq!(
            v["text"],
            "BPM digest: shop, Mon 24 Nov 2025 – Sun 30 Nov 2025"
        );
        let html = v["html"].as_str().unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("<td align=\"right\">−38%</td>"), "{html}");
        assert!(
            html.contains("<td align=\"right\">900</td>"),
            "the visitors column: {html}"
        );
        assert_eq!(v["metrics"][0]["visitors"], 900);
        assert!(
            html.contains("<li>Top sources: google 50 (+150%)</li>"),
            "{html}"
        );
        assert_eq!(v["referrals"]["moved"][0]["before"], 40);
        assert_eq!(pct(Some(0.004)), "±0%");
        assert_eq!(pct(Some(0.25)), "+25%");
        assert_eq!(pct(None), "n/a");
    }
}
