//! Cloudflare Access as a second way into the dashboard and its API: the
//! policy read from the Worker vars, the team's signing keys (its certs
//! document), and every check on an Access JWT except the RSA arithmetic,
//! which the shell hands to WebCrypto.
//!
//! Invariants: an assertion is accepted only if it is a three-part JWS with
//! `alg` RS256, a `kid` found among the team's keys, a signature that key
//! verifies over `header.payload`, `iss` equal to the team's URL, one of the
//! configured audience tags in `aud`, and `nbf <= now < exp` (with
//! [`LEEWAY_SECS`] either side). Nothing unsigned is trusted: claims are read
//! here but only believed after the shell's signature check. Keys shorter
//! than 2048 bits are ignored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::fmt;

/// The header Cloudflare adds to every request that passed an Access policy.
pub const ASSERTION_HEADER: &str = "cf-access-jwt-assertion";
/// The cookie Access sets in the browser; read when the header is absent.
pub const ASSERTION_COOKIE: &str = "CF_Authorization";
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// Longest assertion looked at; Access JWTs are about 1 KiB.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Largest certs document read; Cloudflare's holds two keys in about 3 KiB.
pub const MAX_CERTS_LEN: usize = 64 * 1024;
/// Shortest RSA modulus accepted, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;

/// The Access application this deployment trusts, from `BPM_ACCESS_TEAM_DOMAIN`
/// and `BPM_ACCESS_AUD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// `https://{team}.cloudflareaccess.com`, no trailing slash: the `iss`
    /// every assertion must carry.
    issuer: String,
    /// Application audience tags; an assertion's `aud` must contain one.
    audiences: Vec<String>,
}

/// A misconfigured Access policy; the message names the var to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessConfigError {
    /// `BPM_ACCESS_TEAM_DOMAIN` is set but `BPM_ACCESS_AUD` is not.
    MissingAudience,
    /// `BPM_ACCESS_AUD` is set but `BPM_ACCESS_TEAM_DOMAIN` is not.
    MissingTeamDomain,
    /// The team domain is not a bare host or an `https://host` URL.
    BadTeamDomain(String),
}

impl fmt::Display for AccessConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessConfigError::MissingAudience => f.write_str(
                "BPM_ACCESS_TEAM_DOMAIN is set but BPM_ACCESS_AUD (the application's audience tag) is not",
            ),
            AccessConfigError::MissingTeamDomain => {
                f.write_str("BPM_ACCESS_AUD is set but BPM_ACCESS_TEAM_DOMAIN is not")
            }
            AccessConfigError::BadTeamDomain(v) => write!(
                f,
                "BPM_ACCESS_TEAM_DOMAIN {v:?} is not a host like `yourteam.cloudflareaccess.com` \
                 or an https:// URL (plain http only for 127.0.0.1 and localhost)"
            ),
        }
    }
}

impl std::error::Error for AccessConfigError {}

impl AccessPolicy {
    /// Reads the two vars; `Ok(None)` when neither is set (Access not used).
    /// The team domain may be a bare host (`yourteam.cloudflareaccess.com`)
    /// or a URL; plain `http://` is accepted only for a loopback host, so a
    /// local test can stand in for Cloudflare. `aud` may list several tags,
    /// separated by commas.
    pub fn from_vars(
        team_domain: Option<&str>,
        aud: Option<&str>,
    ) -> Result<Option<AccessPolicy>, AccessConfigError> {
        let team = team_domain.map(str::trim).filter(|s| !s.is_empty());
        let audiences: Vec<String> = aud
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let team = match (team, audiences.is_empty()) {
            (None, true) => return Ok(None),
            (None, false) => return Err(AccessConfigError::MissingTeamDomain),
            (Some(_), true) => return Err(AccessConfigError::MissingAudience),
            (Some(t), false) => t,
        };
        let bad = || AccessConfigError::BadTeamDomain(team.to_owned());
        let with_scheme = if team.contains("://") {
            team.to_owned()
        } else {
            format!("https://{team}")
        };
        let url = crate::config::url_text::parse_url(&with_scheme).ok_or_else(bad)?;
        let host = url.host_str().ok_or_else(bad)?;
        let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
        let scheme = url.scheme();
        let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
        if !scheme_ok
            || !matches!(url.path().as_str(), "" | "/")
            || url.has_query_or_fragment()
            || url.has_userinfo()
        {
            return Err(bad());
        }
        let issuer = url.href().trim_end_matches('/').to_owned();
        Ok(Some(AccessPolicy { issuer, audiences }))
    }

    /// The `iss` every assertion must carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the team publishes its signing keys.
    pub fn certs_url(&self) -> String {
        format!("{}/cdn-cgi/access/certs", self.issuer)
    }

    /// Where a browser ends its Access session (the dashboard's "Log out").
    pub fn logout_path() -> &'static str {
        "/cdn-cgi/access/logout"
    }
}

/// Why an Access assertion was refused; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// Not three base64url parts of JSON, or too long.
    Malformed(&'static str),
    /// A JWS algorithm other than RS256 (including `none`).
    UnsupportedAlgorithm(String),
    /// No key with this `kid` among the team's keys.
    UnknownKey(String),
    /// The key did not verify the signature.
    BadSignature,
    /// `iss` is not the configured team.
    WrongIssuer(String),
    /// `aud` holds none of the configured audience tags.
    WrongAudience,
    /// Past `exp` (plus leeway).
    Expired,
    /// Before `nbf` (minus leeway).
    NotYetValid,
    /// The team's certs document could not be fetched or read.
    KeysUnavailable(String),
    /// The Access vars are inconsistent.
    Misconfigured(AccessConfigError),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::Malformed(why) => write!(f, "malformed Cloudflare Access JWT: {why}"),
            AccessError::UnsupportedAlgorithm(alg) => {
                write!(f, "Cloudflare Access JWT algorithm {alg:?} is not RS256")
            }
            AccessError::UnknownKey(kid) => {
                write!(f, "Cloudflare Access JWT signed by unknown key {kid:?}")
            }
            AccessError::BadSignature => f.write_str("Cloudflare Access JWT signature is invalid"),
            AccessError::WrongIssuer(iss) => {
                write!(f, "Cloudflare Access JWT issued by {iss:?}, not this team")
            }
            AccessError::WrongAudience => {
                f.write_str("Cloudflare Access JWT is for another application (aud)")
            }
            AccessError::Expired => f.write_str("Cloudflare Access JWT has expired"),
            AccessError::NotYetValid => f.write_str("Cloudflare Access JWT is not valid yet"),
            AccessError::KeysUnavailable(why) => {
                write!(f, "Cloudflare Access signing keys unavailable: {why}")
            }
            AccessError::Misconfigured(e) => write!(f, "Cloudflare Access misconfigured: {e}"),
        }
    }
}

impl std::error::Error for AccessError {}

/// One RSA signing key of the team, as the JWK members WebCrypto imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// Base64url modulus and exponent, checked to decode.
    pub n: String,
    pub e: String,
}

/// The RS256 signing keys in a certs document (`{"keys": [JWK, ...]}`).
/// Keys of another type, use or algorithm, or too short, are skipped; a
/// document with none left is an error.
pub fn parse_certs(body: &str) -> Result<Vec<SigningKey>, AccessError> {
    if body.len() > MAX_CERTS_LEN {
        return Err(AccessError::KeysUnavailable(format!(
            "certs document larger than {MAX_CERTS_LEN} bytes"
        )));
    }
    let doc: Value = serde_json::from_str(body)
        .map_err(|e| AccessError::KeysUnavailable(format!("certs document is not JSON: {e}")))?;
    let text = |k: &Value, name: &str| k.get(name).and_then(Value::as_str).map(str::to_owned);
    let keys: Vec<SigningKey> = doc
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|k| {
            text(k, "kty").as_deref() == Some("RSA")
                && text(k, "alg").as_deref().is_none_or(|a| a == "RS256")
                && text(k, "use").as_deref().is_none_or(|u| u == "sig")
        })
        .filter_map(|k| {
            let (kid, n, e) = (text(k, "kid")?, text(k, "n")?, text(k, "e")?);
            let usable = !kid.is_empty()
                && URL_SAFE_NO_PAD
                    .decode(&n)
                    .is_ok_and(|n| n.len() >= MIN_MODULUS_BYTES)
                && URL_SAFE_NO_PAD.decode(&e).is_ok_and(|e| !e.is_empty());
            usable.then_some(SigningKey { kid, n, e })
        })
        .collect();
    if keys.is_empty() {
        return Err(AccessError::KeysUnavailable(
            "certs document holds no RS256 key".into(),
        ));
    }
    Ok(keys)
}

/// How long fetched keys are used before they are fetched again.
pub const KEYS_MAX_AGE_SECS: i64 = 3600;
/// How soon after a fetch an unknown `kid` may fetch again: a key rotation
/// is picked up within seconds, a flood of invented kids costs one fetch
/// per this interval.
pub const KEYS_MIN_REFETCH_SECS: i64 = 5;
/// How long keys are still used while the certs document cannot be fetched.
pub const KEYS_STALE_SECS: i64 = 24 * 3600;

/// Whether the isolate should fetch the certs document now, given when a
/// fetch last succeeded and was last tried (`None`: never) and whether the
/// wanted `kid` is among the keys it has. No two tries are closer than
/// [`KEYS_MIN_REFETCH_SECS`], so an unreachable team costs one slow request
/// per interval, not every request.
pub fn should_fetch_keys(
    fetched_at: Option<i64>,
    tried_at: Option<i64>,
    kid_known: bool,
    now: i64,
) -> bool {
    if tried_at.is_some_and(|t| now.saturating_sub(t) < KEYS_MIN_REFETCH_SECS) {
        return false;
    }
    match fetched_at {
        None => true,
        Some(t) => !kid_known || now.saturating_sub(t) >= KEYS_MAX_AGE_SECS,
    }
}

/// Whether keys fetched at `fetched_at` may still be used when a new fetch
/// failed.
pub fn keys_still_usable(fetched_at: i64, now: i64) -> bool {
    now.saturating_sub(fetched_at) < KEYS_STALE_SECS
}

/// The assertion a request carries: the header, else the cookie.
pub fn assertion_from<'a>(header: Option<&'a str>, cookie: Option<&'a str>) -> Option<&'a str> {
    header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .or_else(|| cookie.and_then(|c| crate::auth::cookie_value(c, ASSERTION_COOKIE)))
        .filter(|a| !a.is_empty())
}

/// An Access JWT taken apart, its signature not yet checked.
pub struct Assertion<'a> {
    /// The key the header names.
    pub kid: String,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    claims: Value,
}

/// Who an accepted assertion speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessIdentity {
    /// The user's email, or a service token's client id.
    pub name: String,
    /// `exp`, Unix seconds.
    pub expires: i64,
}

fn decode_json(part: &str, what: &'static str) -> Result<Value, AccessError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AccessError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(AccessError::Malformed(what)),
    }
}

/// Splits and decodes an assertion; checks its shape and algorithm only.
pub fn parse_assertion(jwt: &str) -> Result<Assertion<'_>, AccessError> {
    if jwt.len() > MAX_ASSERTION_LEN {
        return Err(AccessError::Malformed("longer than 8 KiB"));
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AccessError::Malformed("not three dot-separated parts"));
    };
    let head = decode_json(header, "header is not base64url JSON")?;
    let alg = head.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(AccessError::UnsupportedAlgorithm(alg.to_owned()));
    }
    let kid = match head.get("kid").and_then(Value::as_str) {
        Some(kid) if !kid.is_empty() => kid.to_owned(),
        _ => return Err(AccessError::Malformed("header names no key (kid)")),
    };
    let claims = decode_json(payload, "payload is not base64url JSON")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| AccessError::Malformed("signature is not base64url"))?;
    if signature.is_empty() {
        return Err(AccessError::Malformed("empty signature"));
    }
    let signing_input = jwt
        .get(..header.len() + 1 + payload.len())
        .ok_or(AccessError::Malformed("not three dot-separated parts"))?;
    Ok(Assertion {
        kid,
        signing_input,
        signature,
        claims,
    })
}

impl Assertion<'_> {
    /// The team key this assertion names, if the team has it.
    pub fn key<'k>(&self, keys: &'k [SigningKey]) -> Result<&'k SigningKey, AccessError> {
        keys.iter()
            .find(|k| k.kid == self.kid)
            .ok_or_else(|| AccessError::UnknownKey(self.kid.clone()))
    }

    /// Checks issuer, audience and validity period at `now`. Only meaningful
    /// once the signature has verified.
    pub fn identity(&self, policy: &AccessPolicy, now: i64) -> Result<AccessIdentity, AccessError> {
        let c = &self.claims;
        let text = |name: &str| {
            c.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let iss = text("iss").unwrap_or("");
        if iss.trim_end_matches('/') != policy.issuer {
            return Err(AccessError::WrongIssuer(iss.to_owned()));
        }
        let audience_ok = match c.get("aud") {
            Some(Value::String(a)) => policy.audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| policy.audiences.iter().any(|p| p == a)),
            _ => false,
        };
        if !audience_ok {
            return Err(AccessError::WrongAudience);
        }
        let seconds = |name: &str| {
            c.get(name)
                .and_then(Value::as_f64)
                .filter(|t| t.is_finite())
                .map(|t| t as i64)
        };
        let exp = seconds("exp").ok_or(AccessError::Malformed("no expiry (exp)"))?;
        if now >= exp.saturating_add(LEEWAY_SECS) {
            return Err(AccessError::Expired);
        }
        if let Some(nbf) = seconds("nbf") {
            if now < nbf.saturating_sub(LEEWAY_SECS) {
                return Err(AccessError::NotYetValid);
            }
        }
        // A service token has no email; its client id is `common_name`.
        let name = text("email")
            .or_else(|| text("common_name"))
            .unwrap_or("service token")
            .to_owned();
        Ok(AccessIdentity { name, expires: exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
    const TEAM: &str = "https://example-team.cloudflareaccess.com";

    fn policy() -> AccessPolicy {
        AccessPolicy::from_vars(Some("example-team.cloudflareaccess.com"), Some(AUD))
            .unwrap()
            .unwrap()
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&claims))
    }

    fn claims(now: i64) -> serde_json::Value {
        serde_json::json!({
            "aud": [AUD], "email": "oncall@example.com", "exp": now + 3600,
            "iat": now, "nbf": now, "iss": TEAM, "type": "app", "sub": "7335d417",
        })
    }

    fn rs256() -> serde_json::Value {
        serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})
    }

    #[test]
    fn policy_reads_a_bare_team_host_or_an_https_url() {
        let p = policy();
        assert_eq!(p.issuer(), TEAM);
        assert_eq!(
            p.certs_url(),
            "https://example-team.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        let from_url = AccessPolicy::from_vars(
            Some(" https://example-team.cloudflareaccess.com/ "),
            Some(AUD),
        )
        .unwrap()
        .unwrap();
        assert_eq!(from_url, p);
        let local = AccessPolicy::from_vars(Some("http://127.0.0.1:8788"), Some("a, b,"))
            .unwrap()
            .unwrap();
        assert_eq!(local.issuer(), "http://127.0.0.1:8788");
        assert_eq!(local.audiences, ["a", "b"]);
    }

    #[test]
    fn policy_is_absent_or_refused_when_incomplete_or_unsafe() {
        assert_eq!(AccessPolicy::from_vars(None, None), Ok(None));
        assert_eq!(AccessPolicy::from_vars(Some(" "), Some("")), Ok(None));
        assert_eq!(
            AccessPolicy::from_vars(Some("t.cloudflareaccess.com"), None),
            Err(AccessConfigError::MissingAudience)
        );
        assert_eq!(
            AccessPolicy::from_vars(None, Some(AUD)),
            Err(AccessConfigError::MissingTeamDomain)
        );
        for bad in [
            "http://t.cloudflareaccess.com",
            "https://t.cloudflareaccess.com/cdn-cgi/access/certs",
            "https://user@t.cloudflareaccess.com",
            "https://t.cloudflareaccess.com/?x=1",
            "ftp://t.cloudflareaccess.com",
            "https://",
        ] {
            assert!(
                matches!(
                    AccessPolicy::from_vars(Some(bad), Some(AUD)),
                    Err(AccessConfigError::BadTeamDomain(_))
                ),
                "{bad}"
            );
        }
        assert!(AccessConfigError::MissingAudience
            .to_string()
            .contains("BPM_ACCESS_AUD"));
    }

    #[test]
    fn a_well_formed_assertion_yields_its_signed_parts_and_identity() {
        let now = 1_790_000_000;
        let token = jwt(rs256(), claims(now));
        let a = parse_assertion(&token).unwrap();
        assert_eq!(a.kid, "k1");
        assert_eq!(a.signature, b"sig");
        assert_eq!(
            a.signing_input,
            token.rsplit_once('.').map(|(head, _)| head).unwrap()
        );
        assert_eq!(
            a.identity(&policy(), now + 10),
            Ok(AccessIdentity {
                name: "oncall@example.com".into(),
                expires: now + 3600
            })
        );
    }

    #[test]
    fn claims_are_checked_against_the_policy_and_the_clock() {
        let now = 1_790_000_000;
        let check = |c: serde_json::Value, at: i64| {
            parse_assertion(&jwt(rs256(), c))
                .unwrap()
                .identity(&policy(), at)
        };
        assert!(check(claims(now), now + 3600 + LEEWAY_SECS - 1).is_ok());
        assert_eq!(
            check(claims(now), now + 3600 + LEEWAY_SECS),
            Err(AccessError::Expired)
        );
        assert_eq!(
            check(claims(now), now - LEEWAY_SECS - 1),
            Err(AccessError::NotYetValid)
        );
        let mut c = claims(now);
        c["iss"] = "https://other-team.cloudflareaccess.com".into();
        assert!(matches!(check(c, now), Err(AccessError::WrongIssuer(_))));
        let mut c = claims(now);
        c["aud"] = serde_json::json!(["another-application"]);
        assert_eq!(check(c, now), Err(AccessError::WrongAudience));
        let mut c = claims(now);
        c["aud"] = AUD.into();
        assert!(check(c, now).is_ok(), "a single-string aud is accepted");
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(check(c, now), Err(AccessError::WrongAudience));
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("exp");
        assert!(matches!(check(c, now), Err(AccessError::Malformed(_))));
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("email");
        c["common_name"] = "a1b2c3.access".into();
        assert_eq!(check(c, now).unwrap().name, "a1b2c3.access");
    }

    #[test]
    fn only_rs256_with_a_key_id_is_accepted() {
        let now = 1_790_000_000;
        for alg in ["none", "HS256", "RS512", ""] {
            let token = jwt(serde_json::json!({"alg": alg, "kid": "k1"}), claims(now));
            assert!(
                matches!(
                    parse_assertion(&token),
                    Err(AccessError::UnsupportedAlgorithm(_))
                ),
                "{alg}"
            );
        }
        let token = jwt(serde_json::json!({"alg": "RS256"}), claims(now));
        assert!(matches!(
            parse_assertion(&token),
            Err(AccessError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_assertions_are_refused_without_panicking() {
        let long = "a".repeat(MAX_ASSERTION_LEN + 1);
        let unsigned = format!("{}.{}.", b64(&rs256()), b64(&claims(0)));
        let four = format!("{}.{}.c2ln.c2ln", b64(&rs256()), b64(&claims(0)));
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "e30.e30.c2ln",
            "not a jwt",
            long.as_str(),
            unsigned.as_str(),
            four.as_str(),
        ] {
            assert!(parse_assertion(bad).is_err(), "{bad:.40}");
        }
    }

    fn jwk(kid: &str, n_len: usize) -> serde_json::Value {
        serde_json::json!({
            "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
            "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(vec![0xc5u8; n_len]),
        })
    }

    #[test]
    fn certs_keep_only_usable_rs256_keys() {
        let mut ec = jwk("ec", 256);
        ec["kty"] = "EC".into();
        let mut enc = jwk("enc", 256);
        enc["use"] = "enc".into();
        let doc = serde_json::json!({
            "keys": [jwk("k1", 256), jwk("short", 128), ec, enc, jwk("k2", 512)],
            "public_cert": {"kid": "k1", "cert": "-----BEGIN CERTIFICATE-----"},
        });
        let keys = parse_certs(&doc.to_string()).unwrap();
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["k1", "k2"]);
        let token = jwt(rs256(), claims(0));
        assert_eq!(
            parse_assertion(&token).unwrap().key(&keys).unwrap().kid,
            "k1"
        );
        let other = jwt(
            serde_json::json!({"alg": "RS256", "kid": "gone"}),
            claims(0),
        );
        assert_eq!(
            parse_assertion(&other).unwrap().key(&keys).err(),
            Some(AccessError::UnknownKey("gone".into()))
        );
        for bad in ["", "[]", "{\"keys\": []}", "<html>"] {
            assert!(
                matches!(parse_certs(bad), Err(AccessError::KeysUnavailable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_are_refetched_hourly_and_soon_for_an_unknown_kid() {
        let t = 1_000_000;
        assert!(should_fetch_keys(None, None, false, t));
        let ok = Some(t);
        assert!(!should_fetch_keys(ok, ok, true, t + KEYS_MAX_AGE_SECS - 1));
        assert!(should_fetch_keys(ok, ok, true, t + KEYS_MAX_AGE_SECS));
        assert!(!should_fetch_keys(
            ok,
            ok,
            false,
            t + KEYS_MIN_REFETCH_SECS - 1
        ));
        assert!(should_fetch_keys(ok, ok, false, t + KEYS_MIN_REFETCH_SECS));
        // A failed try holds the next one back, with or without keys.
        let failed = Some(t + 7200);
        assert!(!should_fetch_keys(ok, failed, true, t + 7201));
        assert!(!should_fetch_keys(None, failed, false, t + 7201));
        assert!(should_fetch_keys(
            None,
            failed,
            false,
            t + 7200 + KEYS_MIN_REFETCH_SECS
        ));
        assert!(keys_still_usable(t, t + KEYS_STALE_SECS - 1));
        assert!(!keys_still_usable(t, t + KEYS_STALE_SECS));
    }

    #[test]
    fn the_header_wins_over_the_cookie() {
        assert_eq!(
            assertion_from(Some(" h.h.h "), Some("CF_Authorization=c.c.c")),
            Some("h.h.h")
        );
        assert_eq!(
            assertion_from(None, Some("a=1; CF_Authorization=c.c.c")),
            Some("c.c.c")
        );
        assert_eq!(assertion_from(Some(""), Some("CF_Authorization=")), None);
        assert_eq!(assertion_from(None, None), None);
    }
}
