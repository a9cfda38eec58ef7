//! The in-progress sign-in, kept by the browser: a `cs_flow` cookie scoped to `/flow/{id}`
//! (so sign-ins in several tabs do not meet), `HttpOnly`, `SameSite=Lax`, `Secure` when the
//! issuer is https, holding the authorization request and how far the user got, as JSON
//! authenticated with HMAC-SHA-256 under a key derived from the server key (every node can
//! read what another wrote) and bound to its flow id and expiry. Nothing about the login is in
//! a URL but the flow's id. The forms' CSRF field is another HMAC of the flow id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_core::Timestamp;
use countersign_core::crypto::{ct_eq, to_hex};
use countersign_core::oidc::AuthorizeRequest;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const COOKIE: &str = "cs_flow";

/// Longest cookie accepted (browsers keep 4 KiB per cookie).
pub const MAX_COOKIE: usize = 4096;

const LABEL: &[u8] = b"countersign sign-in flow v1";

/// The key of the sign-in cookies and of the forms' CSRF fields.
#[derive(Clone)]
pub struct FlowKey([u8; 32]);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowKey(<redacted>)")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// How far the user got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Step {
    SignIn,
    /// The password was right; a delivered OTP comes next. `sent` once one went out.
    Otp {
        dn: String,
        username: String,
        auth_time: i64,
        sent: Option<Sent>,
    },
    /// Waiting for the manager's decision on `login`.
    Waiting {
        login: String,
        auth_time: i64,
        amr: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub mechanism: String,
    /// Masked, as shown.
    pub address: String,
}

/// The authorization request, as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub login_hint: Option<String>,
    /// The first language of `ui_locales` (OpenID Connect Core §3.1.2.1) the pages have.
    #[serde(default)]
    pub lang: Option<String>,
}

impl Request {
    pub fn of(r: &AuthorizeRequest) -> Self {
        Self {
            client_id: r.client_id.clone(),
            redirect_uri: r.redirect_uri.clone(),
            scope: r.scope.clone(),
            state: r.state.clone(),
            nonce: r.nonce.clone(),
            code_challenge: r.code_challenge.clone(),
            login_hint: r.login_hint.clone(),
            lang: r.ui_locales.as_deref().and_then(|l| {
                l.split(' ')
                    // BCP 47 tags: `tr-TR` is Turkish.
                    .find_map(|tag| crate::http::i18n::Lang::parse(tag.split('-').next()?))
                    .map(|lang| lang.code().to_owned())
            }),
        }
    }

    pub fn authorize_request(&self) -> AuthorizeRequest {
        AuthorizeRequest {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            scope: self.scope.clone(),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            code_challenge: self.code_challenge.clone(),
            login_hint: self.login_hint.clone(),
            ui_locales: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub id: String,
    /// Milliseconds since the epoch after which the cookie is not accepted.
    pub expires: i64,
    pub request: Request,
    pub step: Step,
}

impl FlowKey {
    pub fn derive(server_key: &[u8]) -> Self {
        Self(mac(server_key, &[LABEL]))
    }

    /// The cookie's value: base64url(JSON) "." base64url(HMAC(id, JSON)).
    pub fn seal(&self, flow: &Flow) -> String {
        let json = serde_json::to_vec(flow).unwrap_or_default();
        let tag = mac(&self.0, &[b"cookie", flow.id.as_bytes(), &json]);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The flow `id`'s cookie if it is ours, for that flow, and not expired at `now`.
    pub fn open(&self, value: &str, id: &str, now: Timestamp) -> Option<Flow> {
        if value.len() > MAX_COOKIE {
            return None;
        }
        let (body, tag) = value.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = mac(&self.0, &[b"cookie", id.as_bytes(), &json]);
        if !ct_eq(&expected, &tag) {
            return None;
        }
        let flow: Flow = serde_json::from_slice(&json).ok()?;
        (flow.id == id && flow.expires > now.0).then_some(flow)
    }

    /// The hidden field of the flow's forms.
    pub fn csrf(&self, id: &str) -> String {
        to_hex(&mac(&self.0, &[b"csrf", id.as_bytes()]))
    }

    pub fn csrf_ok(&self, id: &str, presented: &str) -> bool {
        ct_eq(self.csrf(id).as_bytes(), presented.as_bytes())
    }
}

/// `Set-Cookie` for the flow: scoped to its path, gone when `max_age` is 0.
pub fn set_cookie(id: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/flow/{id}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// A flow id: 128 random bits, hex.
pub fn is_flow_id(id: &str) -> bool {
    countersign_core::crypto::is_hex_of(id, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            id: "0123456789abcdef0123456789abcdef".into(),
            expires: 2_000,
            request: Request {
                client_id: "rp".into(),
                redirect_uri: "https://rp/cb".into(),
                scope: vec!["openid".into()],
                state: Some("s".into()),
                nonce: None,
                code_challenge: None,
                login_hint: None,
                lang: None,
            },
            step: Step::Waiting {
                login: "l".into(),
                auth_time: 1,
                amr: vec!["pwd".into()],
            },
        }
    }

    #[test]
    fn cookies_open_only_for_their_flow_key_and_time() {
        let key = FlowKey::derive(b"a server key of thirty-two bytes");
        let f = flow();
        let value = key.seal(&f);
        assert_eq!(key.open(&value, &f.id, Timestamp(1_000)), Some(f.clone()));
        assert_eq!(key.open(&value, &f.id, Timestamp(2_000)), None, "expired");
        assert_eq!(
            key.open(&value, "ffffffffffffffffffffffffffffffff", Timestamp(1)),
            None
        );
        let other = FlowKey::derive(b"another server key, thirty-two b");
        assert_eq!(other.open(&value, &f.id, Timestamp(1)), None);
        let (body, tag) = value.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(body).unwrap();
        json[10] ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json));
        assert_eq!(key.open(&forged, &f.id, Timestamp(1)), None);
        assert_eq!(key.open("garbage", &f.id, Timestamp(1)), None);
    }

    #[test]
    fn cookies_are_scoped_to_their_flow_and_secure_over_https() {
        let c = set_cookie("abc", "v", 900, true);
        assert_eq!(
            c,
            "cs_flow=v; Path=/flow/abc; Max-Age=900; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!set_cookie("abc", "v", 900, false).contains("Secure"));
    }

    #[test]
    fn csrf_fields_belong_to_their_flow() {
        let key = FlowKey::derive(b"a server key of thirty-two bytes");
        let field = key.csrf("a");
        assert!(key.csrf_ok("a", &field));
        assert!(!key.csrf_ok("b", &field));
        assert!(!key.csrf_ok("a", ""));
    }
}
