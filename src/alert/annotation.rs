//! Annotations: what happened to the site at a moment (a deploy, an
//! incident, a campaign's start, a note), posted by a CI pipeline or a
//! person so that charts can mark it and an alert can say that its drop
//! began right after a deploy.
//!
//! Invariants: an annotation is identified by the id its author chose, so
//! posting it again is harmless (the same content answers "exists", other
//! content under that id is a conflict); every field is bounded, so a
//! caller cannot grow the alert object's storage by much per request.

use crate::time::{format_time, parse_rfc3339, DAY};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Annotations are kept this long after their time: as long as hourly
/// series, so every chart can still mark them.
pub const ANNOTATION_RETENTION_SECS: i64 = 400 * DAY;
/// An annotation may be dated at most this far ahead (a campaign planned
/// for tomorrow).
const MAX_AHEAD_SECS: i64 = 30 * DAY;
const MAX_ID: usize = 64;
const MAX_TEXT: usize = 500;
const MAX_LINK: usize = 2048;
const MAX_VERSION: usize = 100;
/// A drop that began this soon after a deploy names the deploy.
pub const DEPLOY_WINDOW_SECS: i64 = 3600;

/// What an annotation marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationKind {
    Deploy,
    Incident,
    Campaign,
    Note,
}

impl AnnotationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationKind::Deploy => "deploy",
            AnnotationKind::Incident => "incident",
            AnnotationKind::Campaign => "campaign",
            AnnotationKind::Note => "note",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deploy" => Some(AnnotationKind::Deploy),
            "incident" => Some(AnnotationKind::Incident),
            "campaign" => Some(AnnotationKind::Campaign),
            "note" => Some(AnnotationKind::Note),
            _ => None,
        }
    }
}

/// One stored annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub id: String,
    pub kind: AnnotationKind,
    /// When it happened (Unix seconds).
    pub at: i64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// For a deploy: the version or commit deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Annotation {
    /// How an alert names it: `deploy 2f9c1e0` (its version, else its text).
    pub fn label(&self) -> String {
        let what = self.version.as_deref().unwrap_or(&self.text);
        format!("{} {what}", self.kind.as_str())
    }

    /// The API's view: the stored fields plus `time` in RFC 3339.
    pub fn view(&self) -> AnnotationView<'_> {
        AnnotationView {
            annotation: self,
            time: format_time(self.at),
        }
    }
}

/// An annotation as the API shows it.
#[derive(Debug, Serialize)]
pub struct AnnotationView<'a> {
    #[serde(flatten)]
    pub annotation: &'a Annotation,
    pub time: String,
}

/// What `POST /api/annotations` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationRequest {
    /// Chosen by the caller (e.g. the commit and the environment); posting
    /// the same id again changes nothing.
    pub id: String,
    pub kind: String,
    /// RFC 3339; default: now.
    pub time: Option<String>,
    pub text: String,
    pub link: Option<String>,
    pub version: Option<String>,
}

/// Why an annotation is refused (a `400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationError {
    BadId,
    UnknownKind(String),
    BadTime(String),
    TooFarAhead,
    TooOld,
    EmptyText,
    TooLong { field: &'static str, max: usize },
    BadLink,
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnotationError::BadId => write!(
                f,
                "`id` must be 1–{MAX_ID} characters of letters, digits, `.`, `_`, `-` and `:`"
            ),
            AnnotationError::UnknownKind(k) => {
                write!(f, "`kind` {k:?} must be deploy, incident, campaign or note")
            }
            AnnotationError::BadTime(t) => write!(f, "`time` {t:?} is not an RFC 3339 time"),
            AnnotationError::TooFarAhead => write!(f, "`time` is more than 30 days ahead"),
            AnnotationError::TooOld => {
                write!(f, "`time` is older than the 400 days annotations are kept")
            }
            AnnotationError::EmptyText => write!(f, "`text` must not be empty"),
            AnnotationError::TooLong { field, max } => {
                write!(f, "`{field}` is longer than {max} characters")
            }
            AnnotationError::BadLink => write!(f, "`link` must be an http(s) URL"),
        }
    }
}

impl std::error::Error for AnnotationError {}

fn bounded(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, AnnotationError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) if v.chars().count() > max => Err(AnnotationError::TooLong { field, max }),
        other => Ok(other),
    }
}

/// Whether `id` may name an annotation (also in a URL path).
pub fn plausible_annotation_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

impl AnnotationRequest {
    /// The annotation this request posts at `now`, checked.
    pub fn into_annotation(self, now: i64) -> Result<Annotation, AnnotationError> {
        if !plausible_annotation_id(&self.id) {
            return Err(AnnotationError::BadId);
        }
        let kind =
            AnnotationKind::parse(&self.kind).ok_or(AnnotationError::UnknownKind(self.kind))?;
        let at = match &self.time {
            None => now,
            Some(t) => parse_rfc3339(t).ok_or_else(|| AnnotationError::BadTime(t.clone()))?,
        };
        if at > now + MAX_AHEAD_SECS {
            return Err(AnnotationError::TooFarAhead);
        }
        if at < now - ANNOTATION_RETENTION_SECS {
            return Err(AnnotationError::TooOld);
        }
        let text = bounded(Some(self.text), "text", MAX_TEXT)?.ok_or(AnnotationError::EmptyText)?;
        let link = bounded(self.link, "link", MAX_LINK)?;
        if let Some(l) = &link {
            let scheme = l.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https"))
                || l.contains(char::is_whitespace)
            {
                return Err(AnnotationError::BadLink);
            }
        }
        let version = bounded(self.version, "version", MAX_VERSION)?;
        Ok(Annotation {
            id: self.id,
            kind,
            at,
            text,
            link,
            version,
        })
    }
}

/// What `GET /api/annotations` lists: those dated in `[from, to)` (RFC 3339
/// `from=` and `to=`, by default 30 days either side of now), of one
/// `kind=` if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationQuery {
    pub from: i64,
    pub to: i64,
    pub kind: Option<AnnotationKind>,
}

impl AnnotationQuery {
    pub fn parse(query: &str, now: i64) -> Result<Self, AnnotationError> {
        let mut q = AnnotationQuery {
            from: now - 30 * DAY,
            to: now + MAX_AHEAD_SECS + 1,
            kind: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "from" | "to" => {
                    let t = parse_rfc3339(&value)
                        .ok_or_else(|| AnnotationError::BadTime(value.to_string()))?;
                    if key == "from" {
                        q.from = t;
                    } else {
                        q.to = t;
                    }
                }
                "kind" => {
                    q.kind = Some(
                        AnnotationKind::parse(&value)
                            .ok_or_else(|| AnnotationError::UnknownKind(value.to_string()))?,
                    )
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether `a` is listed (its time is already in range).
    pub fn wants(&self, a: &Annotation) -> bool {
        self.kind.is_none_or(|k| k == a.kind)
    }
}

/// The latest deploy in `annotations` at most [`DEPLOY_WINDOW_SECS`] before
/// `began` (not after it): the deploy a drop that began then followed.
pub fn deploy_before(annotations: &[Annotation], began: i64) -> Option<&Annotation> {
    annotations
        .iter()
        .filter(|a| a.kind == AnnotationKind::Deploy)
        .filter(|a| a.at <= began && began - a.at <= DEPLOY_WINDOW_SECS)
        .max_by_key(|a| a.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_571_200;

    fn request(json: &str) -> Result<Annotation, AnnotationError> {
        let r: AnnotationRequest = serde_json::from_str(json).unwrap();
        r.into_annotation(NOW)
    }

    #[test]
    fn a_deploy_from_ci_is_read_with_its_version_and_defaults_to_now() {
        let a = request(
            r#"{"id":"deploy-2f9c1e0-prod","kind":"deploy","text":" Release 42 ","version":"2f9c1e0","link":"https://ci.example/runs/7"}"#,
        )
        .unwrap();
        assert_eq!(a.at, NOW);
        assert_eq!(a.kind, AnnotationKind::Deploy);
        assert_eq!(a.text, "Release 42");
        assert_eq!(a.label(), "deploy 2f9c1e0");
        let json = serde_json::to_value(a.view()).unwrap();
        assert_eq!(json["kind"], "deploy");
        assert_eq!(json["time"], "2026-01-05T00:00:00Z");
    }

    #[test]
    fn bad_annotations_are_refused_with_the_reason() {
        let refused = |json: &str| request(json).unwrap_err();
        assert_eq!(
            refused(r#"{"id":"a b","kind":"note","text":"x"}"#),
            AnnotationError::BadId
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"release","text":"x"}"#),
            AnnotationError::UnknownKind("release".into())
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"note","text":"  "}"#),
            AnnotationError::EmptyText
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"note","text":"x","time":"yesterday"}"#),
            AnnotationError::BadTime("yesterday".into())
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"note","text":"x","time":"2030-01-01T00:00:00Z"}"#),
            AnnotationError::TooFarAhead
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"note","text":"x","time":"2020-01-01T00:00:00Z"}"#),
            AnnotationError::TooOld
        );
        assert_eq!(
            refused(r#"{"id":"a","kind":"note","text":"x","link":"javascript:alert(1)"}"#),
            AnnotationError::BadLink
        );
        let long = "x".repeat(501);
        assert_eq!(
            refused(&format!(r#"{{"id":"a","kind":"note","text":"{long}"}}"#)),
            AnnotationError::TooLong {
                field: "text",
                max: 500
            }
        );
        assert!(serde_json::from_str::<AnnotationRequest>(
            r#"{"id":"a","kind":"note","text":"x","colour":"red"}"#
        )
        .is_err());
    }

    #[test]
    fn a_listing_query_reads_its_range_and_kind() {
        let q = AnnotationQuery::parse("", NOW).unwrap();
        assert_eq!(
            (q.from, q.to, q.kind),
            (NOW - 30 * DAY, NOW + 30 * DAY + 1, None)
        );
        let q = AnnotationQuery::parse(
            "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&kind=campaign",
            NOW,
        )
        .unwrap();
        assert_eq!(q.to - q.from, DAY);
        assert_eq!(q.kind, Some(AnnotationKind::Campaign));
        assert_eq!(
            AnnotationQuery::parse("kind=launch", NOW),
            Err(AnnotationError::UnknownKind("launch".into()))
        );
        assert!(AnnotationQuery::parse("from=soon", NOW).is_err());
    }

    #[test]
    fn a_drop_names_the_last_deploy_of_the_hour_before_it_began() {
        let at = |id: &str, kind: AnnotationKind, t: i64| Annotation {
            id: id.into(),
            kind,
            at: t,
            text: id.into(),
            link: None,
            version: None,
        };
        let list = vec![
            at("old", AnnotationKind::Deploy, NOW - 2 * 3600),
            at("d1", AnnotationKind::Deploy, NOW - 50 * 60),
            at("d2", AnnotationKind::Deploy, NOW - 4 * 60),
            at("n", AnnotationKind::Note, NOW - 60),
            at("later", AnnotationKind::Deploy, NOW + 60),
        ];
        assert_eq!(deploy_before(&list, NOW).map(|a| a.id.as_str()), Some("d2"));
        assert_eq!(
            deploy_before(&list, NOW - 10 * 60).map(|a| a.id.as_str()),
            Some("d1")
        );
        assert_eq!(deploy_before(&list, NOW - 3 * 3600), None);
    }
}
