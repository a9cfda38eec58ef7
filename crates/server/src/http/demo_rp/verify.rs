//! What the demo relying party does with a code, as any OpenID Connect client must: redeem it
//! at the provider's token endpoint over real HTTP (RFC 6749 §4.1.3, `client_secret_basic`
//! §2.3.1, the PKCE `code_verifier` RFC 7636 §4.5), fetch the provider's JWK Set, and validate
//! the ID token (OpenID Connect Core §3.1.3.7): an RS256 signature by the key its `kid` names,
//! `iss` = the issuer, `aud` = our client id, `exp` in the future, and `nonce` = the one this
//! browser's sign-in sent. Every failure is a [`Failure`] the page explains; nothing panics.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::DemoRp;

/// Why a callback did not end in verified claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No cookie of ours (expired, another browser, a restarted demo).
    NoSession,
    /// The callback's `state` is not this browser's.
    State,
    /// RFC 9207: the callback names another issuer.
    Issuer,
    /// The provider sent the browser back with `error=` (RFC 6749 §4.1.2.1).
    Provider {
        error: String,
        description: Option<String>,
    },
    /// Neither a code nor an error.
    NoCode,
    /// The token endpoint refused the code (RFC 6749 §5.2).
    Token {
        error: String,
        description: Option<String>,
    },
    /// The provider could not be reached, or answered something that is not OAuth's.
    Unreachable { endpoint: &'static str },
    /// The ID token did not verify; the reason as a short technical word.
    IdToken(&'static str),
}

/// The claims the demo shows (OpenID Connect Core §2, §5.1; RFC 8176 `amr`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub auth_time: Option<i64>,
    #[serde(default)]
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub nonce: Option<String>,
}

/// The verified claims and the key that signed them.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    pub kid: String,
}

/// Largest answer read from the provider.
const MAX_ANSWER: usize = 256 * 1024;

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic's base64.
fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A JSON answer from the provider; its status beside it.
async fn json_answer(
    r: reqwest::RequestBuilder,
    endpoint: &'static str,
) -> Result<(u16, Value), Failure> {
    let unreachable = || Failure::Unreachable { endpoint };
    let resp = r.send().await.map_err(|e| {
        tracing::warn!(error = %e, endpoint, "the demo relying party could not reach the provider");
        unreachable()
    })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|_| unreachable())?;
    if body.len() > MAX_ANSWER {
        return Err(unreachable());
    }
    let value = serde_json::from_slice(&body).map_err(|_| unreachable())?;
    Ok((status, value))
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Redeems `code` at `/token`: the ID token.
pub async fn exchange(rp: &DemoRp, code: &str, verifier: &str) -> Result<String, Failure> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &rp.redirect_uri)
        .append_pair("code_verifier", verifier)
        .finish();
    let request = rp
        .http
        .post(format!("{}/token", rp.issuer))
        .basic_auth(
            form_encode(&rp.client_id),
            Some(form_encode(rp.client_secret.expose())),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    let (status, answer) = json_answer(request, "/token").await?;
    if status != 200 {
        return Err(Failure::Token {
            error: text(&answer, "error").unwrap_or_else(|| status.to_string()),
            description: text(&answer, "error_description"),
        });
    }
    text(&answer, "id_token").ok_or(Failure::Token {
        error: "no id_token".to_owned(),
        description: None,
    })
}

/// The provider's JWK Set.
pub async fn jwks(rp: &DemoRp) -> Result<Value, Failure> {
    let (status, set) = json_answer(rp.http.get(format!("{}/jwks", rp.issuer)), "/jwks").await?;
    if status != 200 {
        return Err(Failure::Unreachable { endpoint: "/jwks" });
    }
    Ok(set)
}

/// OpenID Connect Core §3.1.3.7 for `token`, with the keys of `jwks`.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
) -> Result<Verified, Failure> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Failure::IdToken("malformed"))?;
    // Only the algorithm the provider signs with: never `none`, never an HMAC keyed by the
    // public key (RFC 8725 §3.1).
    if header.alg != Algorithm::RS256 {
        return Err(Failure::IdToken("algorithm"));
    }
    let kid = header.kid.ok_or(Failure::IdToken("no kid"))?;
    let jwk = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
        .ok_or(Failure::IdToken("unknown kid"))?;
    let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|_| Failure::IdToken("key"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Failure::IdToken("key"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        Failure::IdToken(match e.kind() {
            ErrorKind::InvalidSignature => "signature",
            ErrorKind::ExpiredSignature => "exp",
            ErrorKind::InvalidIssuer => "iss",
            ErrorKind::InvalidAudience => "aud",
            ErrorKind::MissingRequiredClaim(_) => "missing claim",
            _ => "malformed",
        })
    })?;
    let sent = data.claims.nonce.as_deref().unwrap_or_default();
    if !countersign_core::crypto::ct_eq(sent.as_bytes(), nonce.as_bytes()) {
        return Err(Failure::IdToken("nonce"));
    }
    Ok(Verified {
        claims: data.claims,
        kid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Signer {
        der: Vec<u8>,
        jwks: Value,
    }

    fn signer() -> Signer {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
        let public = key.to_public_key();
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        }]});
        Signer { der, jwks }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn sign(s: &Signer, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&s.der)).unwrap()
    }

    fn good() -> Value {
        json!({
            "iss": "http://127.0.0.1:1", "sub": "s", "aud": "demo-app", "exp": now() + 600,
            "iat": now(), "auth_time": now(), "nonce": "n1", "amr": ["pwd", "mca"],
            "acr": "urn:countersign:acr:approval", "preferred_username": "dave",
        })
    }

    fn check(s: &Signer, token: &str) -> Result<Verified, Failure> {
        verify_id_token(token, &s.jwks, "http://127.0.0.1:1", "demo-app", "n1")
    }

    #[test]
    fn only_a_token_right_in_every_respect_is_believed() {
        let s = signer();
        let ok = check(&s, &sign(&s, "k1", &good())).unwrap();
        assert_eq!(ok.kid, "k1");
        assert_eq!(ok.claims.amr, ["pwd", "mca"]);
        assert_eq!(ok.claims.preferred_username.as_deref(), Some("dave"));

        let with = |name: &str, value: Value| {
            let mut c = good();
            c[name] = value;
            sign(&s, "k1", &c)
        };
        for (token, why) in [
            (with("aud", json!("another-app")), "aud"),
            (with("iss", json!("http://evil.example")), "iss"),
            (with("exp", json!(now() - 3600)), "exp"),
            (with("nonce", json!("replayed")), "nonce"),
            (sign(&s, "k2", &good()), "unknown kid"),
            ("not.a.token".to_owned(), "malformed"),
        ] {
            assert_eq!(
                check(&s, &token).unwrap_err(),
                Failure::IdToken(why),
                "{why}"
            );
        }
        let mut no_nonce = good();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        let token = sign(&s, "k1", &no_nonce);
        assert_eq!(check(&s, &token).unwrap_err(), Failure::IdToken("nonce"));

        // Signed by another key under the published kid.
        let other = signer();
        let token = sign(&other, "k1", &good());
        assert_eq!(
            check(&s, &token).unwrap_err(),
            Failure::IdToken("signature")
        );
        // A payload changed after signing.
        let token = sign(&s, "k1", &good());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut changed = good();
        changed["preferred_username"] = json!("bob");
        parts[1] = b64(changed.to_string().as_bytes());
        assert_eq!(
            check(&s, &parts.join(".")).unwrap_err(),
            Failure::IdToken("signature")
        );
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        let s = signer();
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","kid":"k1"}"#),
            b64(good().to_string().as_bytes())
        );
        assert_eq!(check(&s, &none).unwrap_err(), Failure::IdToken("malformed"));
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&header, &good(), &EncodingKey::from_secret(b"k")).unwrap();
        assert_eq!(check(&s, &hs).unwrap_err(), Failure::IdToken("algorithm"));
    }
}
