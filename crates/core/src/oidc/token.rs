//! The token request (RFC 6749 §4.1.3, §5; RFC 7636 §4.5–4.6; OpenID Connect Core §3.1.3):
//! the client authenticates, the code is redeemed once, its bindings (client, redirect URI,
//! PKCE verifier) are checked, and an access token and the ID token's claims come back. A code
//! presented a second time fails and revokes what it issued (RFC 6749 §4.1.2).

use sha2::{Digest, Sha256};

use super::{AccessGrant, CodeGrant, IdTokenClaims, OidcService, fresh_secret, hash_secret};
use crate::application::OidcClient;
use crate::attempt::{Attempt, Caller};
use crate::audit::AuditAction;
use crate::crypto::ct_eq;
use crate::error::AuthError;
use crate::ports::oidc::Redeemed;

/// The form of a token request, as sent. (`Debug` leaves the code and verifier out.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("code", &redacted(&self.code))
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &redacted(&self.code_verifier))
            .finish()
    }
}

/// How the client authenticated (RFC 6749 §2.3.1). (`Debug` leaves the secret out.)
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: the Authorization header.
    Basic { id: String, secret: String },
    /// `client_secret_post`: in the form.
    Post { id: String, secret: String },
    /// A public client names itself only (`client_id` in the form).
    None { id: String },
    /// No client named at all, or more than one way used at once.
    Invalid(&'static str),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Basic { id, .. } => write!(f, "Basic({id}, <redacted>)"),
            ClientAuth::Post { id, .. } => write!(f, "Post({id}, <redacted>)"),
            ClientAuth::None { id } => write!(f, "None({id})"),
            ClientAuth::Invalid(why) => write!(f, "Invalid({why})"),
        }
    }
}

/// An error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    /// `invalid_client` after `client_secret_basic`: answered 401 with `WWW-Authenticate`.
    pub basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    /// The HTTP status RFC 6749 §5.2 gives it: 401 for `invalid_client` only with the
    /// `WWW-Authenticate` challenge, which answers an `Authorization` header; 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" if self.basic_challenge => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }
}

/// A successful token response, before the ID token is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: Vec<String>,
    pub id_token: IdTokenClaims,
}

/// A PKCE verifier (RFC 7636 §4.1): 43 to 128 unreserved characters.
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) without padding (RFC 7636 §4.6).
pub fn s256(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

impl OidcService {
    /// The client the request authenticated as, or `invalid_client`.
    fn authenticate_client(&self, auth: &ClientAuth) -> Result<(String, &OidcClient), OAuthError> {
        let basic = matches!(auth, ClientAuth::Basic { .. });
        let refused = |description: &str| OAuthError {
            basic_challenge: basic,
            ..OAuthError::new("invalid_client", description)
        };
        let (id, secret) = match auth {
            ClientAuth::Invalid(why) => return Err(OAuthError::new("invalid_request", *why)),
            ClientAuth::Basic { id, secret } | ClientAuth::Post { id, secret } => {
                (id, Some(secret))
            }
            ClientAuth::None { id } => (id, None),
        };
        let client = self.applications.by_name(id).and_then(|a| a.oidc.as_ref());
        let Some(client) = client else {
            return Err(refused("client authentication failed"));
        };
        let ok = match (client.is_public(), secret) {
            (true, None) => true,
            (false, Some(secret)) => client.secret_matches(secret),
            _ => false,
        };
        if !ok {
            return Err(refused("client authentication failed"));
        }
        Ok((id.clone(), client))
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3). Once the code is known to be real,
    /// the outcome is audited (action `token`): exchanged, refused on a binding, or replayed.
    pub async fn exchange(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        caller: &Caller,
    ) -> Result<Issued, OAuthError> {
        let mut seen: Option<Attempt> = None;
        let result = self.exchange_steps(request, auth, caller, &mut seen).await;
        if let Some(attempt) = seen {
            let audited = result
                .as_ref()
                .map(|_| ())
                .map_err(|e| AuthError::InvalidRequest(format!("{}: {}", e.error, e.description)));
            self.audit.record(attempt, &audited).await;
        }
        result
    }

    async fn exchange_steps(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        caller: &Caller,
        seen: &mut Option<Attempt>,
    ) -> Result<Issued, OAuthError> {
        match request.grant_type.as_deref() {
            None => return Err(OAuthError::new("invalid_request", "grant_type is missing")),
            Some("authorization_code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "only authorization_code is supported",
                ));
            }
        }
        let (client_id, client) = self.authenticate_client(auth)?;
        let Some(code) = request.code.as_deref() else {
            return Err(OAuthError::new("invalid_request", "code is missing"));
        };
        let code_hash = hash_secret(code);
        let unavailable = |e: crate::ports::StoreError| {
            tracing::warn!(error = %e, "the token endpoint could not reach the store");
            OAuthError::new("temporarily_unavailable", "try again shortly")
        };
        // Marked used before its other bindings are checked: whatever follows, this code is
        // spent. Presented by another client it is left untouched (that client could be anyone
        // naming a public client).
        let redeemed = self
            .store
            .redeem_code(&code_hash, &client_id)
            .await
            .map_err(unavailable)?;
        let attempt = |grant: &CodeGrant| {
            let subject = &grant.authentication.subject;
            let mut a = Attempt::new(AuditAction::Token, caller, &subject.username);
            a.login_facts().application = Some(grant.client.clone());
            a
        };
        let grant = match redeemed {
            Redeemed::Fresh(grant) => grant,
            Redeemed::Replayed(grant) => {
                let revoked = self
                    .store
                    .revoke_code_tokens(&code_hash)
                    .await
                    .map_err(unavailable)?;
                tracing::warn!(
                    client = %grant.client,
                    revoked,
                    "an authorization code was presented again; its tokens are revoked"
                );
                let mut a = attempt(&grant);
                a.note(format!(
                    "authorization code presented again: {revoked} access token(s) revoked"
                ));
                *seen = Some(a);
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the code was already used",
                ));
            }
            Redeemed::OtherClient => {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the code was issued to another client",
                ));
            }
            Redeemed::Unknown => {
                return Err(OAuthError::new("invalid_grant", "the code is not valid"));
            }
        };
        *seen = Some(attempt(&grant));
        let now = self.clock.now();
        if grant.expires_at <= now {
            return Err(OAuthError::new("invalid_grant", "the code has expired"));
        }
        // The registration as it is now: a redirect URI the operator removed (or a client made
        // public since) gets nothing from a code issued before.
        if !client.allows_redirect(&grant.redirect_uri) {
            return Err(OAuthError::new(
                "invalid_grant",
                "the redirect_uri is no longer registered",
            ));
        }
        if client.is_public() && grant.code_challenge.is_none() {
            return Err(OAuthError::new(
                "invalid_grant",
                "a public client must use PKCE",
            ));
        }
        match request.redirect_uri.as_deref() {
            None => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "redirect_uri is missing",
                ));
            }
            Some(uri) if uri != grant.redirect_uri => {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request's",
                ));
            }
            Some(_) => {}
        }
        check_verifier(
            grant.code_challenge.as_deref(),
            request.code_verifier.as_deref(),
        )?;

        let (access_token, token_hash) = fresh_secret(self.random.as_ref());
        let access = AccessGrant {
            client: client_id.clone(),
            code_hash: code_hash.clone(),
            subject: grant.authentication.subject.clone(),
            scope: grant.scope.clone(),
            expires_at: now.plus(self.lifetimes.access_token),
        };
        self.store
            .put_access_token(&token_hash, &access)
            .await
            .map_err(unavailable)?;
        let a = &grant.authentication;
        let profile = grant.scope.iter().any(|s| s == "profile");
        let email = grant.scope.iter().any(|s| s == "email");
        let id_token = IdTokenClaims {
            iss: self.issuer.clone(),
            sub: a.subject.sub.clone(),
            aud: client_id,
            exp: now.plus(self.lifetimes.id_token).millis() / 1000,
            iat: now.millis() / 1000,
            auth_time: a.auth_time.millis() / 1000,
            nonce: grant.nonce.clone(),
            amr: a.amr.clone(),
            acr: a.acr.clone(),
            name: a.subject.name.clone().filter(|_| profile),
            preferred_username: Some(a.subject.username.clone()).filter(|_| profile),
            email: a.subject.email.clone().filter(|_| email),
        };
        Ok(Issued {
            access_token,
            expires_in: self.lifetimes.access_token.as_secs(),
            scope: grant.scope,
            id_token,
        })
    }
}

/// RFC 7636 §4.6, and RFC 9700 §2.1.1: a verifier without a challenge is refused too, so a
/// client that sends PKCE cannot be downgraded by a request that left it out.
fn check_verifier(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    let grant = |d: &str| OAuthError::new("invalid_grant", d);
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(grant(
            "code_verifier sent, but the request had no code_challenge",
        )),
        (Some(_), None) => Err(grant("code_verifier is missing")),
        (Some(c), Some(v)) => {
            if is_verifier(v) && ct_eq(s256(v).as_bytes(), c.as_bytes()) {
                Ok(())
            } else {
                Err(grant("code_verifier does not match the code_challenge"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_must_match_and_be_well_formed() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = s256(v);
        assert!(check_verifier(Some(&c), Some(v)).is_ok());
        assert!(check_verifier(None, None).is_ok());
        for (challenge, verifier) in [
            (Some(c.as_str()), None),
            (Some(c.as_str()), Some("short")),
            (Some(c.as_str()), Some(&*"a".repeat(43))),
            (None, Some(v)),
        ] {
            assert_eq!(
                check_verifier(challenge, verifier).unwrap_err().error,
                "invalid_grant"
            );
        }
    }
}
