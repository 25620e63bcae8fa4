//! The web view's sign-in: a browser cannot send the daemon token as a header, so
//! `/ui/sign-in` takes it in a form and answers with a session cookie.
//!
//! - The cookie's value is not the token: it is an HMAC-SHA256 of the token under a key drawn
//!   at random when the daemon starts, so it is worthless to anyone who reads it elsewhere
//!   (and every session ends when the daemon restarts or its token changes). It is compared
//!   in constant time, like the header.
//! - `HttpOnly` (no script reads it), `SameSite=Strict` (a page on another site cannot make the
//!   browser send it), `Path=/ui`, and `Secure` when the sign-in came over HTTPS: the daemon
//!   speaks plain HTTP, so that is when a reverse proxy on loopback says
//!   `X-Forwarded-Proto: https` (the header is ignored from any other peer).
//! - The cookie lets a browser read the pages. Approving held deactivations stays a form that
//!   proves it was served by the daemon: besides the cookie it must carry the approval code the
//!   plan page embeds (another HMAC under the same key), which a cross-site form cannot know;
//!   or the token itself, typed in.

use crate::daemon::same_secret;
use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use std::fmt::Write as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "scimsync_session";

/// The per-process key of the session cookie and the approval code.
pub(crate) struct Sessions {
    key: [u8; 32],
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions { key: [redacted] }")
    }
}

impl Sessions {
    /// Sessions under a fresh random key.
    pub(crate) fn new() -> Self {
        Self {
            key: rand::random(),
        }
    }

    fn mac(&self, purpose: &str, token: &SecretString) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(token.expose_secret().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .fold(String::with_capacity(64), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }

    /// Whether the request carries the session cookie of `token` (never without a token).
    pub(crate) fn signed_in(&self, token: Option<&SecretString>, headers: &HeaderMap) -> bool {
        let Some(token) = token.filter(|t| !t.expose_secret().is_empty()) else {
            return false;
        };
        let expected = self.mac("session", token);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE && same_secret(value.trim().as_bytes(), expected.as_bytes())
            })
    }

    /// The approval code a signed-in browser's approve form carries.
    pub(crate) fn approval_code(&self, token: &SecretString) -> String {
        self.mac("approve", token)
    }

    /// Whether `given` is the approval code of `token`.
    pub(crate) fn approval_code_matches(&self, token: Option<&SecretString>, given: &str) -> bool {
        token.is_some_and(|t| {
            !given.is_empty() && same_secret(given.as_bytes(), self.approval_code(t).as_bytes())
        })
    }

    /// The `Set-Cookie` value that signs a browser in.
    pub(crate) fn cookie(&self, token: &SecretString, secure: bool) -> HeaderValue {
        let value = format!(
            "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict{}",
            self.mac("session", token),
            if secure { "; Secure" } else { "" }
        );
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The `Set-Cookie` value that signs a browser out.
    pub(crate) fn cleared(secure: bool) -> HeaderValue {
        if secure {
            HeaderValue::from_static(
                "scimsync_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0; Secure",
            )
        } else {
            HeaderValue::from_static(
                "scimsync_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
            )
        }
    }
}

/// Whether a request from `peer` came over HTTPS: only a reverse proxy on loopback is believed
/// (`X-Forwarded-Proto: https`); the daemon itself speaks plain HTTP.
pub(crate) fn over_https(peer: std::net::SocketAddr, headers: &HeaderMap) -> bool {
    peer.ip().is_loopback()
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
            })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        h
    }

    fn cookie_value(set_cookie: &HeaderValue) -> String {
        let text = set_cookie.to_str().unwrap();
        text.split(';')
            .next()
            .unwrap()
            .strip_prefix("scimsync_session=")
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_cookie_is_an_hmac_of_the_token_valid_only_in_this_process_for_this_token() {
        let token = SecretString::from("s3cret-token".to_owned());
        let sessions = Sessions::new();
        let set = sessions.cookie(&token, false);
        let text = set.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Strict"),
            "{text}"
        );
        assert!(!text.contains("Secure") && !text.contains("s3cret-token"));
        assert!(
            sessions
                .cookie(&token, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        let value = cookie_value(&set);
        assert_eq!(value.len(), 64);
        assert!(sessions.signed_in(
            Some(&token),
            &with_cookie(&format!("a=b; {COOKIE}={value}"))
        ));
        // Not the token itself, not another process's cookie, not another token's.
        assert!(!sessions.signed_in(
            Some(&token),
            &with_cookie(&format!("{COOKIE}=s3cret-token"))
        ));
        let other = Sessions::new();
        assert!(!other.signed_in(Some(&token), &with_cookie(&format!("{COOKIE}={value}"))));
        let changed = SecretString::from("another-token".to_owned());
        assert!(!sessions.signed_in(Some(&changed), &with_cookie(&format!("{COOKIE}={value}"))));
        assert!(!sessions.signed_in(None, &with_cookie(&format!("{COOKIE}={value}"))));
        assert!(!sessions.signed_in(Some(&token), &HeaderMap::new()));
        // The approval code is another value, checked the same way.
        let code = sessions.approval_code(&token);
        assert_ne!(code, value);
        assert!(sessions.approval_code_matches(Some(&token), &code));
        assert!(!sessions.approval_code_matches(Some(&token), &value));
        assert!(!sessions.approval_code_matches(Some(&token), ""));
    }

    #[test]
    fn https_is_believed_from_a_loopback_proxy_only() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let loopback = "127.0.0.1:5000".parse().unwrap();
        let remote = "192.0.2.7:5000".parse().unwrap();
        assert!(over_https(loopback, &h));
        assert!(!over_https(remote, &h));
        assert!(!over_https(loopback, &HeaderMap::new()));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!over_https(loopback, &h));
    }
}
