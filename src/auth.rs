//! API authentication: the `Authorization: Bearer <token>` header checked
//! against the Worker secret `BPM_API_TOKEN` in constant time.
//!
//! Invariant: with no token configured, nothing is authorised (an operator
//! who forgot the secret gets 401s, not an open API).

use subtle::ConstantTimeEq;

/// Why a request was not authorised; the message is safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The deployment has no `BPM_API_TOKEN` secret.
    NotConfigured,
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the configured one.
    Wrong,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            AuthError::NotConfigured => {
                "the API token is not configured: set the Worker secret BPM_API_TOKEN"
            }
            AuthError::Missing => "missing `Authorization: Bearer <token>` header",
            AuthError::Wrong => "invalid API token",
        }
    }
}

/// Shortest token accepted as configured: a short secret is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Checks an `Authorization` header value against the configured token.
pub fn check_bearer(header: Option<&str>, configured: Option<&str>) -> Result<(), AuthError> {
    let expected = match configured.map(str::trim) {
        Some(t) if t.len() >= MIN_TOKEN_LEN => t,
        _ => return Err(AuthError::NotConfigured),
    };
    let header = header.map(str::trim).ok_or(AuthError::Missing)?;
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    if bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    #[test]
    fn accepts_only_the_configured_bearer_token() {
        assert_eq!(
            check_bearer(Some("Bearer 0123456789abcdef-token"), Some(TOKEN)),
            Ok(())
        );
        assert_eq!(
            check_bearer(Some("bearer  0123456789abcdef-token "), Some(TOKEN)),
            Ok(())
        );
        assert_eq!(
            check_bearer(Some("Bearer 0123456789abcdef-tokeN"), Some(TOKEN)),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check_bearer(Some("Bearer  x"), Some(TOKEN)),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check_bearer(Some("Basic abc"), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check_bearer(Some(TOKEN), Some(TOKEN)),
            Err(AuthError::Missing)
        );
        assert_eq!(check_bearer(None, Some(TOKEN)), Err(AuthError::Missing));
    }

    #[test]
    fn no_or_short_configured_token_authorises_nothing() {
        assert_eq!(
            check_bearer(Some("Bearer x"), None),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            check_bearer(Some("Bearer short"), Some("short")),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            check_bearer(Some("Bearer "), Some("")),
            Err(AuthError::NotConfigured)
        );
        assert!(!AuthError::Wrong.message().is_empty());
    }
}
