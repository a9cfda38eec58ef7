//! The OpenID Connect provider's rules (OpenID Connect Core 1.0, authorization code flow; OAuth
//! 2.0 RFC 6749; PKCE RFC 7636): the authorization request's checks ([`authorize`]), the codes a
//! finished sign-in issues, the token request ([`token`]), and the claims of ID tokens and
//! `/userinfo`. Clients are [`crate::application::Application`]s with an
//! [`crate::application::OidcClient`]. Signing the ID token (JOSE) and every protocol shape
//! (JSON, redirects, pages) belong to the server; the values it signs are decided here.

pub mod authorize;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::application::Applications;
use crate::crypto::to_hex;
use crate::model::{Timestamp, User};
use crate::otp::generator::random_hex;
use crate::ports::oidc::OidcStore;
use crate::ports::{Clock, Random, StoreError};

pub use authorize::{AuthorizeError, AuthorizeRequest};
pub use token::{ClientAuth, Issued, OAuthError, TokenRequest};

/// `amr` values (RFC 8176): the static password, a one-time password, and `mca`
/// ("multiple-channel authentication") for a manager's approval over a second channel.
pub const AMR_PASSWORD: &str = "pwd";
pub const AMR_OTP: &str = "otp";
pub const AMR_MANAGER: &str = "mca";

/// `acr` values: which kind of Approved OTP profile the sign-in went through.
pub const ACR_NONE: &str = "urn:countersign:acr:none";
pub const ACR_INFORMATION: &str = "urn:countersign:acr:information";
pub const ACR_APPROVAL: &str = "urn:countersign:acr:approval";

/// Who signed in, as the claims show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Stable per user: see [`Subject::of`].
    pub sub: String,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Subject {
    pub fn of(user: &User) -> Self {
        let sub = match &user.id {
            Some(id) => subject_id_of_entry(&user.directory, id),
            None => subject_id(&user.directory, &user.dn.normalized()),
        };
        Self {
            sub,
            username: user.username.clone(),
            name: user.display_name.clone(),
            email: user.mail.first().cloned(),
        }
    }
}

/// The `sub` of an entry with an immutable identifier (OpenID Connect Core §2: never
/// reassigned): 160 bits of SHA-256 over the directory's name and the entry's id, hex. It
/// survives a rename, is never another person's, and tells a client nothing it could use.
pub fn subject_id_of_entry(directory: &str, entry_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"countersign sub v2\0");
    h.update(directory.as_bytes());
    h.update([0]);
    h.update(entry_id.trim().to_ascii_lowercase().as_bytes());
    to_hex(&h.finalize()[..20])
}

/// The `sub` of a user whose directory gives no immutable identifier: 160 bits of SHA-256
/// over the directory's name and the normalized DN, hex. Stable across sign-ins and nodes,
/// but a renamed user gets a new one and a DN given to someone else later carries it on.
pub fn subject_id(directory: &str, normalized_dn: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"countersign sub v1\0");
    h.update(directory.as_bytes());
    h.update([0]);
    h.update(normalized_dn.as_bytes());
    to_hex(&h.finalize()[..20])
}

/// How the user signed in, for `auth_time`, `amr` and `acr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub subject: Subject,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: String,
}

/// What an authorization code stands for, bound to the client, the redirect URI and the PKCE
/// challenge of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub client: String,
    pub redirect_uri: String,
    /// The S256 challenge, when the request had one.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub authentication: Authentication,
    pub expires_at: Timestamp,
    /// The sign-in flow that issued it (one redeemable code per flow).
    pub flow: String,
    /// Until when the flow's cookie could come back: the store keeps the code (and so the
    /// flow's "done") at least until then.
    pub flow_expires_at: Timestamp,
}

/// What an access token allows: `/userinfo` for its subject, within its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub client: String,
    /// SHA-256 of the code it was issued from, so a replay of that code revokes it.
    pub code_hash: Vec<u8>,
    pub subject: Subject,
    pub scope: Vec<String>,
    pub expires_at: Timestamp,
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1), before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    /// `profile` scope.
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    /// `email` scope.
    pub email: Option<String>,
}

/// Lifetimes of what the provider issues.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Authorization codes: short (RFC 6749 §4.1.2 recommends at most 10 minutes).
    pub code: Duration,
    pub access_token: Duration,
    pub id_token: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: Duration::from_secs(60),
            access_token: Duration::from_secs(600),
            id_token: Duration::from_secs(600),
        }
    }
}

/// The provider: the clients, where codes and tokens are kept, and the issuer it names.
pub struct OidcService {
    /// `iss`: the public URL, without a trailing slash.
    pub issuer: String,
    pub applications: Arc<Applications>,
    pub store: Arc<dyn OidcStore>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub lifetimes: Lifetimes,
    /// Exchanges of real codes (and replays) are audited; unknown codes and failed client
    /// authentications are not (anyone can send those, and a record each would be a write
    /// each).
    pub audit: crate::attempt::AuditTrail,
}

/// A fresh 256-bit value (codes, access tokens), hex, and the SHA-256 kept of it.
fn fresh_secret(random: &dyn Random) -> (String, Vec<u8>) {
    let value = random_hex(random, 32);
    let hash = hash_secret(&value);
    (value, hash)
}

/// SHA-256 of a code or token as presented (they are 256-bit random: a fast hash is enough).
pub fn hash_secret(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

impl OidcService {
    /// Ends a sign-in: a single-use code for `request`'s client, and the redirect that hands it
    /// over (with `state` and, RFC 9207, `iss`). A flow whose code is still unredeemed gets a
    /// new one in its place (a double submit: the browser follows the second answer);
    /// `Conflict` when the flow's code was redeemed. `flow_expires_at`: until when the flow's
    /// cookie could come back.
    pub async fn issue_code(
        &self,
        request: &AuthorizeRequest,
        flow: &str,
        flow_expires_at: Timestamp,
        authentication: Authentication,
    ) -> Result<String, StoreError> {
        let (code, hash) = fresh_secret(self.random.as_ref());
        let grant = CodeGrant {
            client: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: request.scope.clone(),
            authentication,
            expires_at: self.clock.now().plus(self.lifetimes.code),
            flow: flow.to_owned(),
            flow_expires_at,
        };
        self.store.put_code(&hash, &grant).await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        Ok(with_query(&request.redirect_uri, &params))
    }

    /// The redirect that tells the client the sign-in ended without a code (RFC 6749
    /// §4.1.2.1), e.g. `access_denied` after a rejection.
    pub fn error_redirect(
        &self,
        request: &AuthorizeRequest,
        error: &str,
        description: &str,
    ) -> String {
        authorize::error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            &self.issuer,
            error,
            description,
        )
    }

    /// The claims `/userinfo` answers for an access token (RFC 6750 bearer); `None` when the
    /// token is unknown, revoked or expired.
    pub async fn userinfo(&self, token: &str) -> Result<Option<AccessGrant>, StoreError> {
        let grant = self.store.access_token(&hash_secret(token)).await?;
        Ok(grant.filter(|g| g.expires_at > self.clock.now()))
    }
}

/// `uri` with `params` added to its query (RFC 6749 §4.1.2: the redirect URI's own query is
/// kept), values percent-encoded.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    // Registered redirect URIs have no fragment (RFC 6749 §3.1.2; the configuration refuses
    // one), so the query is the end of the URI.
    let mut out = uri.to_owned();
    if !uri.contains('?') {
        out.push('?');
    } else if !(uri.ends_with('?') || uri.ends_with('&')) {
        out.push('&');
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(name));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
