//! The ID-token signing keys: RSA 2048 (RS256, the algorithm OpenID Connect Core §15.1 makes
//! mandatory), made with the `rsa` crate at first start, kept in the store sealed with
//! AES-256-GCM under a key derived from the server's secret key (a stolen database alone cannot
//! sign tokens), identified by their RFC 7638 thumbprint as `kid`. The newest unretired key
//! signs (looked up at each signing, so a rotation anywhere takes effect at once); a key
//! retired by a rotation is still published in the JWKS until every token it
//! signed has expired. Tokens are encoded and signed by `jsonwebtoken` (over `ring`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_core::oidc::IdTokenClaims;
use countersign_core::ports::oidc::{OidcStore, SigningKeyRecord};
use countersign_core::ports::{Clock, StoreError};
use hmac::{Hmac, Mac};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// RSA modulus size. 2048 bits is the common floor (NIST SP 800-57 through 2030).
const RSA_BITS: usize = 2048;

const SEAL_LABEL: &[u8] = b"countersign oidc signing key seal v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing keys cannot be read or stored: {0}")]
    Store(#[from] StoreError),
    #[error("signing key {kid} cannot be opened (was the server key changed?)")]
    Unseal { kid: String },
    #[error("signing key generation failed: {0}")]
    Generate(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The key sealing the private keys at rest.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// Derived from the server's secret key with its own label.
    pub fn derive(server_key: &[u8]) -> Self {
        let mut out = [0; 32];
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(server_key) {
            m.update(SEAL_LABEL);
            out.copy_from_slice(&m.finalize().into_bytes());
        }
        Self(out)
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .ok()
            .map(LessSafeKey::new)
    }

    /// nonce ‖ ciphertext ‖ tag; the `kid` is bound as associated data.
    fn seal(&self, kid: &str, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = || KeyError::Generate("sealing failed".into());
        let key = self.aead().ok_or_else(failed)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| failed())?;
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut body,
        )
        .map_err(|_| failed())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let key = self.aead()?;
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A key opened for use.
struct OpenKey {
    kid: String,
    /// PKCS#1 DER of the private key, for `jsonwebtoken`; zeroed when dropped.
    der: zeroize::Zeroizing<Vec<u8>>,
    jwk: Value,
}

fn open_key(seal: &SealKey, record: &SigningKeyRecord) -> Result<OpenKey, KeyError> {
    let unseal = || KeyError::Unseal {
        kid: record.kid.clone(),
    };
    let der = zeroize::Zeroizing::new(seal.open(&record.kid, &record.sealed).ok_or_else(unseal)?);
    let private = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| unseal())?;
    let (n, e) = (
        URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    );
    let jwk =
        json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": record.kid, "n": n, "e": e });
    Ok(OpenKey {
        kid: record.kid.clone(),
        der,
        jwk,
    })
}

/// The RFC 7638 JWK thumbprint of an RSA public key: SHA-256 over `{"e":..,"kty":"RSA","n":..}`.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Makes a new key and its sealed record (slow: run it off the async threads).
fn generate(
    seal: &SealKey,
    now: countersign_core::Timestamp,
) -> Result<SigningKeyRecord, KeyError> {
    let failed = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let private =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS).map_err(|e| failed(&e))?;
    let der = private.to_pkcs1_der().map_err(|e| failed(&e))?;
    let kid = thumbprint(
        &URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        &URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    );
    let sealed = seal.seal(&kid, der.as_bytes())?;
    Ok(SigningKeyRecord {
        kid,
        created_at: now,
        retired_at: None,
        sealed,
    })
}

/// Adds a freshly made key as the signing key; the previous one is retired (still published
/// until its tokens expire). Returns the new `kid`.
pub async fn rotate(
    store: &dyn OidcStore,
    seal: &SealKey,
    clock: &dyn Clock,
) -> Result<String, KeyError> {
    let (seal, now) = (seal.clone(), clock.now());
    let record = tokio::task::spawn_blocking(move || generate(&seal, now))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    store.add_signing_key(&record).await?;
    Ok(record.kid)
}

/// The keys as a running node uses them.
pub struct SigningKeys {
    store: Arc<dyn OidcStore>,
    seal: SealKey,
    clock: Arc<dyn Clock>,
    /// How long a retired key stays published: the ID tokens' lifetime.
    publish_after_retirement: Duration,
    current: Mutex<Option<Arc<OpenKey>>>,
}

impl SigningKeys {
    pub fn new(
        store: Arc<dyn OidcStore>,
        seal: SealKey,
        clock: Arc<dyn Clock>,
        publish_after_retirement: Duration,
    ) -> Self {
        Self {
            store,
            seal,
            clock,
            publish_after_retirement,
            current: Mutex::new(None),
        }
    }

    /// The signing key: the newest unretired one; one is made when there is none (first start).
    /// The list is read from the store each time (a small table), so a rotation by the command
    /// line or another node signs from the next token on; the opened key is kept while it is
    /// still the newest.
    async fn signing(&self) -> Result<Arc<OpenKey>, KeyError> {
        let mut current = self.current.lock().await;
        let mut records = self.store.signing_keys().await?;
        if !records.iter().any(|r| r.retired_at.is_none()) {
            rotate(self.store.as_ref(), &self.seal, self.clock.as_ref()).await?;
            records = self.store.signing_keys().await?;
        }
        let record = records
            .into_iter()
            .rev()
            .find(|r| r.retired_at.is_none())
            .ok_or_else(|| KeyError::Generate("the new key was not kept".into()))?;
        if let Some(key) = current.as_ref().filter(|k| k.kid == record.kid) {
            return Ok(key.clone());
        }
        let key = Arc::new(open_key(&self.seal, &record)?);
        *current = Some(key.clone());
        Ok(key)
    }

    /// Makes sure a signing key exists and opens (called at start, so a server key that
    /// cannot open the stored keys is found before the first sign-in).
    pub async fn ensure(&self) -> Result<String, KeyError> {
        Ok(self.signing().await?.kid.clone())
    }

    /// The ID token: a JWS (RS256) over the claims, with the key's `kid`.
    /// The RSA signature (about a millisecond of CPU) runs on a blocking thread, not on the
    /// threads that serve requests.
    pub async fn sign(&self, claims: &IdTokenClaims) -> Result<String, KeyError> {
        let key = self.signing().await?;
        let claims = claims_json(claims);
        tokio::task::spawn_blocking(move || {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            let encoding = jsonwebtoken::EncodingKey::from_rsa_der(&key.der);
            jsonwebtoken::encode(&header, &claims, &encoding)
        })
        .await
        .map_err(|e| KeyError::Sign(e.to_string()))?
        .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// The JWK Set (RFC 7517 §5): every key that signs or signed tokens still valid. Read
    /// from the store each time, so a key made on another node is published at once.
    pub async fn jwks(&self) -> Result<Value, KeyError> {
        self.signing().await?;
        // A minute's margin: a token signed just before the retirement, or on a node whose
        // clock is a little behind, is still verifiable to its last second.
        let cutoff = self
            .clock
            .now()
            .minus(self.publish_after_retirement + Duration::from_secs(60));
        let mut records = self.store.signing_keys().await?;
        // The signing key first, then the most recently retired.
        records.sort_by_key(|r| {
            (
                r.retired_at.is_some(),
                std::cmp::Reverse(r.retired_at),
                std::cmp::Reverse(r.created_at),
            )
        });
        let mut keys = Vec::new();
        for record in &records {
            if record.retired_at.is_some_and(|r| r < cutoff) {
                continue;
            }
            // A retired key that no longer opens (the server key was changed) is left out and
            // logged; it must not take the keys that work down with it.
            match open_key(&self.seal, record) {
                Ok(key) => keys.push(key.jwk.clone()),
                Err(e) if record.retired_at.is_some() => {
                    tracing::warn!(error = %e, "a retired signing key is left out of the JWKS");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(json!({ "keys": keys }))
    }
}

/// The claims as JSON; optional ones left out when absent (OpenID Connect Core §5.3.2).
pub fn claims_json(c: &IdTokenClaims) -> Value {
    let mut m = Map::new();
    m.insert("iss".into(), json!(c.iss));
    m.insert("sub".into(), json!(c.sub));
    m.insert("aud".into(), json!(c.aud));
    m.insert("exp".into(), json!(c.exp));
    m.insert("iat".into(), json!(c.iat));
    m.insert("auth_time".into(), json!(c.auth_time));
    if let Some(nonce) = &c.nonce {
        m.insert("nonce".into(), json!(nonce));
    }
    m.insert("amr".into(), json!(c.amr));
    m.insert("acr".into(), json!(c.acr));
    for (name, value) in [
        ("name", &c.name),
        ("preferred_username", &c.preferred_username),
        ("email", &c.email),
    ] {
        if let Some(v) = value {
            m.insert(name.into(), json!(v));
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_key_and_kid() {
        let seal = SealKey::derive(b"the server key, 32 bytes at least");
        let sealed = seal.seal("kid-1", b"private").unwrap();
        assert_eq!(
            seal.open("kid-1", &sealed).as_deref(),
            Some(&b"private"[..])
        );
        assert_eq!(seal.open("kid-2", &sealed), None, "bound to its kid");
        let other = SealKey::derive(b"another server key, 32 bytes too");
        assert_eq!(other.open("kid-1", &sealed), None);
        assert_eq!(seal.open("kid-1", &sealed[..5]), None);
    }

    #[test]
    fn thumbprints_follow_rfc7638() {
        // RFC 7638 §3.1's example key.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
