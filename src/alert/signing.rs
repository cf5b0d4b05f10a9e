//! Webhook signatures after the Standard Webhooks specification: the
//! headers `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key
//! is the base64 decoding of the secret after its `whsec_` prefix.
//!
//! Invariant: a secret that does not decode is an error, never an empty key
//! (an unsigned-looking "signature" would be worse than none).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Why a signing secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// The secret does not start with `whsec_`.
    MissingPrefix,
    /// What follows `whsec_` is not base64.
    NotBase64,
    /// The decoded key is shorter than 16 bytes.
    TooShort(usize),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::MissingPrefix => write!(f, "a signing secret starts with \"whsec_\""),
            SecretError::NotBase64 => {
                write!(f, "the signing secret after \"whsec_\" is not base64")
            }
            SecretError::TooShort(n) => {
                write!(f, "the signing key is {n} bytes; at least 16 are needed")
            }
        }
    }
}

impl std::error::Error for SecretError {}

/// A decoded signing key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(<{} bytes>)", self.0.len())
    }
}

impl SigningKey {
    /// Reads a `whsec_…` secret.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        if key.len() < 16 {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(SigningKey(key))
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Checks a `webhook-signature` header (space-separated `v1,…` entries,
    /// any of which may match), in constant time per entry.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        header.split_whitespace().any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|sig| STANDARD.decode(sig).ok())
                .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn standard_webhooks_test_vector() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert_eq!(
            key.sign(ID, TS, BODY.as_bytes()),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn verification_accepts_any_matching_entry_and_nothing_else() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        let good = key.sign(ID, TS, BODY.as_bytes());
        assert!(key.verify(ID, TS, BODY.as_bytes(), &good));
        assert!(key.verify(ID, TS, BODY.as_bytes(), &format!("v1,AAAA {good}")));
        assert!(!key.verify(ID, TS + 1, BODY.as_bytes(), &good));
        assert!(!key.verify("msg_other", TS, BODY.as_bytes(), &good));
        assert!(!key.verify(ID, TS, b"{}", &good));
        assert!(!key.verify(ID, TS, BODY.as_bytes(), "v2,abc"));
        assert!(!key.verify(ID, TS, BODY.as_bytes(), ""));
    }

    #[test]
    fn bad_secrets_are_errors() {
        assert_eq!(
            SigningKey::from_secret("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningKey::from_secret("whsec_AAAA").unwrap_err(),
            SecretError::TooShort(3)
        );
        assert!(format!("{:?}", SigningKey::from_secret(SECRET).unwrap()).contains("24 bytes"));
    }
}
