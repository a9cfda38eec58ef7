//! The demo relying party's memory of one sign-in, kept by the browser: a `cs_demo` cookie
//! (`Path=/demo`, `HttpOnly`, `SameSite=Lax`, `Secure` when the issuer is https) holding the
//! `state` (CSRF protection of the callback, RFC 6749 §10.12), the `nonce` (replay protection
//! of the ID token, OpenID Connect Core §3.1.2.1) and the PKCE `code_verifier` (RFC 7636 §4.1),
//! all fresh from the CSPRNG, with an expiry; authenticated with HMAC-SHA-256 under a key drawn
//! at random when the demo starts (only this process reads it; a restarted demo asks the
//! browser to start again).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_core::crypto::{ct_eq, to_hex};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "cs_demo";

/// Long enough for the sign-in (15 minutes by default) and the manager's wait (the demo's
/// links last 15 minutes), with room to spare.
pub const LIFETIME_SECS: u64 = 3600;

/// Longest cookie value accepted: the real one is about 200 bytes.
const MAX_VALUE: usize = 512;

/// The key of the demo's cookie: random per process, never written anywhere.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// What the browser keeps between the start of a sign-in and the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// 128 random bits, hex: sent as `state`, compared on the callback.
    pub state: String,
    /// 128 random bits, hex: sent as `nonce`, compared with the ID token's.
    pub nonce: String,
    /// 256 random bits, base64url (43 characters, RFC 7636 §4.1).
    pub verifier: String,
    /// Seconds since the epoch after which the cookie is not accepted.
    pub expires: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Session {
    /// A new sign-in: every value fresh from the operating system's CSPRNG.
    pub fn fresh() -> Session {
        Session {
            state: to_hex(&crate::system::random_bytes(16)),
            nonce: to_hex(&crate::system::random_bytes(16)),
            verifier: URL_SAFE_NO_PAD.encode(crate::system::random_bytes(32)),
            expires: now_secs() + LIFETIME_SECS,
        }
    }

    /// The PKCE S256 challenge: base64url(SHA-256(verifier)) (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

impl SessionKey {
    pub fn random() -> SessionKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(&crate::system::random_bytes(32));
        SessionKey(key)
    }

    fn tag(&self, body: &str) -> [u8; 32] {
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return [0; 32];
        };
        m.update(b"countersign demo relying party v1\0");
        m.update(body.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// `state.nonce.verifier.expires.tag` (no field can hold a `.`).
    pub fn seal(&self, s: &Session) -> String {
        let body = format!("{}.{}.{}.{}", s.state, s.nonce, s.verifier, s.expires);
        let tag = to_hex(&self.tag(&body));
        format!("{body}.{tag}")
    }

    /// The session in `value` if this process wrote it and it has not expired.
    pub fn open(&self, value: &str) -> Option<Session> {
        if value.len() > MAX_VALUE {
            return None;
        }
        let (body, tag) = value.rsplit_once('.')?;
        if !ct_eq(to_hex(&self.tag(body)).as_bytes(), tag.as_bytes()) {
            return None;
        }
        let mut parts = body.split('.');
        let session = Session {
            state: parts.next()?.to_owned(),
            nonce: parts.next()?.to_owned(),
            verifier: parts.next()?.to_owned(),
            expires: parts.next()?.parse().ok()?,
        };
        (parts.next().is_none() && session.expires > now_secs()).then_some(session)
    }
}

/// `Set-Cookie` for the session; `None` clears it.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let (value, age) = match value {
        Some(v) => (v, LIFETIME_SECS),
        None => ("", 0),
    };
    format!("{COOKIE}={value}; Path=/demo; Max-Age={age}; HttpOnly; SameSite=Lax{secure}")
}

/// The `cs_demo` cookie values the request carries.
pub fn cookie_values(headers: &axum::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_only_under_their_key_and_unchanged() {
        let key = SessionKey::random();
        let s = Session::fresh();
        assert_eq!(s.state.len(), 32);
        assert_eq!(s.verifier.len(), 43);
        assert_ne!(s.state, Session::fresh().state);
        let value = key.seal(&s);
        assert_eq!(key.open(&value), Some(s.clone()));
        assert_eq!(SessionKey::random().open(&value), None, "another process");
        let forged = value.replacen(&s.state, &"0".repeat(32), 1);
        assert_eq!(
            key.open(&forged),
            None,
            "a state of the attacker's choosing"
        );
        let expired = Session { expires: 1, ..s };
        assert_eq!(key.open(&key.seal(&expired)), None);
        assert_eq!(key.open("garbage"), None);
        assert_eq!(key.open(""), None);
    }

    #[test]
    fn the_challenge_is_s256_of_the_verifier() {
        // Computed apart: `printf %s VERIFIER | openssl dgst -sha256 -binary | basenc
        // --base64url`, without the padding (RFC 7636 §4.2).
        let s = Session {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gZWFOEjXk".into(),
            expires: 0,
        };
        assert_eq!(s.challenge(), "f7Gnl8yE2HqPO3jWgUcBsbk1zQozsHeU3CvdI3GaI_M");
    }

    #[test]
    fn the_cookie_is_scoped_to_the_demo_and_hidden_from_scripts() {
        assert_eq!(
            set_cookie(Some("v"), false),
            "cs_demo=v; Path=/demo; Max-Age=3600; HttpOnly; SameSite=Lax"
        );
        assert!(set_cookie(None, true).ends_with("Max-Age=0; HttpOnly; SameSite=Lax; Secure"));
    }
}
