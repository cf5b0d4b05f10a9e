//! How the alert object reaches a receiver: whether a name is a receiver
//! at all, its URL, what its secret is for (signing its messages or, for
//! PagerDuty, the routing key they carry), the headers of one attempt, and
//! the reason recorded when it answers 410. The worker's vars and secrets
//! come in through a lookup the caller passes, so each choice is made here
//! and tested natively.
//!
//! Invariants: a receiver whose URL or secret is not set is unusable
//! ([`endpoint`] says why) and gets nothing queued or sent; PagerDuty
//! messages are never signed; every attempt carries the message's
//! `webhook-id` and `webhook-timestamp`, and a signed one the
//! `webhook-signature` over exactly the body sent.

use crate::alert::signing::{SecretError, SigningKey};
use crate::config::rules::{Receiver, WebhookFormat};
use crate::config::Config;
use crate::VERSION;
use std::fmt;

/// Why a receiver cannot be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// No URL: neither the var it names (here; `url` when it names none)
    /// nor `url` gives one.
    NoUrl(String),
    /// The secret it names is not set.
    SecretUnset(String),
    /// Its signing secret (named here) is set but unusable.
    BadSecret(String, SecretError),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::NoUrl(var) => write!(f, "no URL: set the var {var}"),
            EndpointError::SecretUnset(name) => write!(f, "the secret {name} is not set"),
            EndpointError::BadSecret(name, e) => write!(f, "the secret {name}: {e}"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// A usable receiver: where its messages go and its secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub receiver: &'a Receiver,
    pub url: String,
    /// The value of the secret the receiver names, if it names one.
    secret: Option<String>,
}

/// `receiver`'s endpoint, its vars and secrets read with `var` (a var or
/// secret's value, `None` when unset): the URL is the value of `url_var`
/// when set, else `url`.
pub fn endpoint<'a>(
    receiver: &'a Receiver,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Endpoint<'a>, EndpointError> {
    let url = receiver
        .url_var
        .as_deref()
        .and_then(&var)
        .unwrap_or_else(|| receiver.url.clone());
    if url.is_empty() {
        let named = receiver.url_var.as_deref().unwrap_or("url");
        return Err(EndpointError::NoUrl(named.to_string()));
    }
    let secret = match &receiver.secret {
        Some(name) => Some(var(name).ok_or_else(|| EndpointError::SecretUnset(name.clone()))?),
        None => None,
    };
    Ok(Endpoint {
        receiver,
        url,
        secret,
    })
}

impl Endpoint<'_> {
    /// The routing key a PagerDuty message carries (its secret); `None`
    /// for every other format.
    pub fn routing_key(&self) -> Option<&str> {
        match self.receiver.format {
            WebhookFormat::Pagerduty => self.secret.as_deref(),
            _ => None,
        }
    }

    /// The headers of one attempt to send `body` as message `message_id`
    /// at `timestamp`, in the order they are set; signed when the receiver
    /// has a secret and is not PagerDuty.
    pub fn headers(
        &self,
        message_id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<Vec<(&'static str, String)>, EndpointError> {
        let mut out = vec![
            ("content-type", "application/json".to_string()),
            ("user-agent", format!("bpm-edge/{VERSION}")),
            ("webhook-id", message_id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
        ];
        if let (Some(secret), Some(name)) = (self.signing_secret(), &self.receiver.secret) {
            let key = SigningKey::from_secret(secret)
                .map_err(|e| EndpointError::BadSecret(name.clone(), e))?;
            out.push((
                "webhook-signature",
                key.sign(message_id, timestamp, body.as_bytes()),
            ));
        }
        Ok(out)
    }

    fn signing_secret(&self) -> Option<&str> {
        match self.receiver.format {
            WebhookFormat::Pagerduty => None,
            _ => self.secret.as_deref(),
        }
    }
}

/// Whether `name` is a receiver: configured, or disabled (by a 410) and
/// since removed from the config, so it can still be re-enabled.
pub fn is_receiver(config: &Config, disabled: &[String], name: &str) -> bool {
    config.receiver(name).is_some() || disabled.iter().any(|d| d == name)
}

/// The name in an API route `receivers/{name}/enable` (no leading `/`);
/// `None` for any other route. The name may be empty or malformed (see
/// [`could_be_receiver`]).
pub fn enable_route(route: &str) -> Option<&str> {
    if !(route.starts_with("receivers/") && route.ends_with("/enable")) {
        return None;
    }
    Some(
        route
            .strip_prefix("receivers/")
            .and_then(|r| r.strip_suffix("/enable"))
            .unwrap_or(""),
    )
}

/// Whether `name` is shaped like a receiver name (1 to 64 of `a-z`, `0-9`,
/// `_`, `-`): anything else is refused before the alert object is asked.
pub fn could_be_receiver(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// The format an attempt to `receiver` is judged by: its configured one;
/// JSON for a receiver no longer configured.
pub fn format_of(config: &Config, receiver: &str) -> WebhookFormat {
    config
        .receiver(receiver)
        .map_or(WebhookFormat::Json, |r| r.format)
}

/// Why a receiver was disabled: it answered 410 to `message_id`.
pub fn gone_reason(message_id: &str) -> String {
    format!("the endpoint answered 410 Gone to {message_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn receiver(
        format: WebhookFormat,
        url: &str,
        url_var: Option<&str>,
        secret: Option<&str>,
    ) -> Receiver {
        Receiver {
            name: "ops".into(),
            format,
            url: url.into(),
            url_var: url_var.map(str::to_string),
            secret: secret.map(str::to_string),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn the_url_var_replaces_the_url_when_set() {
        let r = receiver(
            WebhookFormat::Json,
            "https://a.example/hook",
            Some("OPS_URL"),
            None,
        );
        assert_eq!(
            endpoint(&r, vars(&[])).unwrap().url,
            "https://a.example/hook"
        );
        let set = vars(&[("OPS_URL", "https://b.example/hook")]);
        assert_eq!(endpoint(&r, set).unwrap().url, "https://b.example/hook");
    }

    #[test]
    fn an_unusable_receiver_says_what_to_set() {
        let no_url = receiver(WebhookFormat::Json, "", Some("OPS_URL"), None);
        let e = endpoint(&no_url, vars(&[])).unwrap_err();
        assert_eq!(e.to_string(), "no URL: set the var OPS_URL");
        let bare = receiver(WebhookFormat::Json, "", None, None);
        assert_eq!(
            endpoint(&bare, vars(&[])).unwrap_err().to_string(),
            "no URL: set the var url"
        );
        let unsigned = receiver(
            WebhookFormat::Json,
            "https://a.example",
            None,
            Some("OPS_SECRET"),
        );
        assert_eq!(
            endpoint(&unsigned, vars(&[])).unwrap_err(),
            EndpointError::SecretUnset("OPS_SECRET".into())
        );
        assert_eq!(
            EndpointError::SecretUnset("OPS_SECRET".into()).to_string(),
            "the secret OPS_SECRET is not set"
        );
    }

    #[test]
    fn a_signed_attempt_carries_a_signature_over_its_body() {
        let r = receiver(
            WebhookFormat::Json,
            "https://a.example",
            None,
            Some("OPS_SECRET"),
        );
        let e = endpoint(&r, vars(&[("OPS_SECRET", SECRET)])).unwrap();
        assert_eq!(e.routing_key(), None);
        let headers = e.headers("msg_1", 1_700_000_000, "{\"a\":1}").unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "user-agent",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature"
            ]
        );
        assert_eq!(headers[1].1, format!("bpm-edge/{VERSION}"));
        assert_eq!(
            (headers[2].1.as_str(), headers[3].1.as_str()),
            ("msg_1", "1700000000")
        );
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert!(key.verify("msg_1", 1_700_000_000, b"{\"a\":1}", &headers[4].1));
    }

    #[test]
    fn an_unsigned_attempt_has_no_signature() {
        let r = receiver(WebhookFormat::Slack, "https://a.example", None, None);
        let headers = endpoint(&r, vars(&[]))
            .unwrap()
            .headers("m", 1, "{}")
            .unwrap();
        assert!(headers.iter().all(|(n, _)| *n != "webhook-signature"));
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn pagerduty_routes_with_its_secret_and_is_never_signed() {
        let r = receiver(
            WebhookFormat::Pagerduty,
            "https://pd.example",
            None,
            Some("PD_KEY"),
        );
        let e = endpoint(&r, vars(&[("PD_KEY", "R0UT1NGKEY")])).unwrap();
        assert_eq!(e.routing_key(), Some("R0UT1NGKEY"));
        // Not a `whsec_` secret, and no error: it signs nothing.
        let headers = e.headers("m", 1, "{}").unwrap();
        assert!(headers.iter().all(|(n, _)| *n != "webhook-signature"));
    }

    #[test]
    fn a_bad_signing_secret_fails_the_attempt_with_its_name() {
        let r = receiver(
            WebhookFormat::Json,
            "https://a.example",
            None,
            Some("OPS_SECRET"),
        );
        let e = endpoint(&r, vars(&[("OPS_SECRET", "whsec_AAAA")])).unwrap();
        let err = e.headers("m", 1, "{}").unwrap_err();
        assert_eq!(
            err,
            EndpointError::BadSecret("OPS_SECRET".into(), SecretError::TooShort(3))
        );
        assert_eq!(
            err.to_string(),
            "the secret OPS_SECRET: the signing key is 3 bytes; at least 16 are needed"
        );
    }

    #[test]
    fn an_enable_route_names_its_receiver() {
        assert_eq!(enable_route("receivers/ops/enable"), Some("ops"));
        assert_eq!(enable_route("receivers/a/b/enable"), Some("a/b"));
        assert_eq!(enable_route("receivers/enable"), Some(""));
        assert_eq!(enable_route("receivers/ops"), None);
        assert_eq!(enable_route("/receivers/ops/enable"), None);
        assert!(could_be_receiver("ops-2_x"));
        for bad in ["", "Ops", "a/b", "a b", &"x".repeat(65)] {
            assert!(!could_be_receiver(bad), "{bad:?}");
        }
        assert!(could_be_receiver(&"x".repeat(64)));
    }

    #[test]
    fn receivers_known_by_config_or_by_their_disabling() {
        let cfg = crate::config::parse_toml(include_str!("../../bpm.toml"), "bpm.toml").unwrap();
        let configured = cfg.receivers[0].name.clone();
        assert!(is_receiver(&cfg, &[], &configured));
        assert!(!is_receiver(&cfg, &[], "removed"));
        assert!(is_receiver(&cfg, &["removed".to_string()], "removed"));
        assert_eq!(format_of(&cfg, &configured), cfg.receivers[0].format);
        assert_eq!(format_of(&cfg, "removed"), WebhookFormat::Json);
        assert_eq!(
            gone_reason("msg_9"),
            "the endpoint answered 410 Gone to msg_9"
        );
    }
}
