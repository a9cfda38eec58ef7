//! The two sides of an authorization code flow as the bench plays them (OpenID Connect Core
//! 1.0 §3.1): the *browser* (one keep-alive connection: `/authorize` without following
//! redirects, the sign-in page, the form POST with the `cs_flow` cookie, the 303 to the
//! redirect URI read off its `Location`, never followed) and the *relying party's server*
//! (another connection: discovery and the JWK Set once, then `/token` with
//! `client_secret_basic` and the PKCE verifier, and the ID token checked as a client must:
//! RS256 under the published key, `iss`, `aud`, `exp`, `nonce`; §3.1.3.7).

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http_wire::{Conn, Response};

/// The bench's client (an `[[application]]` with a redirect URI and a secret).
pub const CLIENT_ID: &str = "bench-rp";
/// On loopback (RFC 8252 §7.3), and nobody listens there: the bench reads the 303's
/// `Location` instead of following it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/bench-callback";
/// At least 32 characters, as the config requires.
pub const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdefghij";

/// The flow's cookie name (contract: `cs_flow`, `Path=/flow/{id}`).
const FLOW_COOKIE: &str = "cs_flow";

/// What the relying party learnt once and keeps: the issuer (discovery) and the signing keys
/// by `kid` (the JWK Set).
pub struct Provider {
    pub issuer: String,
    keys: Vec<(String, DecodingKey)>,
}

impl Provider {
    /// `/.well-known/openid-configuration`, then its `jwks_uri`, over `conn`.
    pub async fn discover(conn: &mut Conn) -> anyhow::Result<Provider> {
        let config = json_of(get(conn, "/.well-known/openid-configuration").await?)?;
        let issuer = config["issuer"]
            .as_str()
            .ok_or_else(|| anyhow!("no issuer in the discovery document"))?
            .to_owned();
        let jwks_uri = config["jwks_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("no jwks_uri in the discovery document"))?;
        let path = url::Url::parse(jwks_uri)
            .with_context(|| format!("jwks_uri {jwks_uri}"))?
            .path()
            .to_owned();
        let r = get(conn, &path).await?;
        if r.status != 200 {
            bail!("{path}: HTTP {}", r.status);
        }
        let set: JwkSet = serde_json::from_slice(&r.body).context("the JWK Set")?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            keys.push((kid, DecodingKey::from_jwk(jwk)?));
        }
        if keys.is_empty() {
            bail!("the JWK Set has no key");
        }
        Ok(Provider { issuer, keys })
    }

    /// The ID token's claims, once its signature, issuer, audience, expiry and nonce are right.
    pub fn verify(&self, id_token: &str, nonce: &str) -> anyhow::Result<Value> {
        let header = jsonwebtoken::decode_header(id_token).context("the ID token's header")?;
        if header.alg != Algorithm::RS256 {
            bail!("ID token signed with {:?}, not RS256", header.alg);
        }
        let kid = header.kid.unwrap_or_default();
        let key = self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key)
            .ok_or_else(|| anyhow!("no key {kid:?} in the JWK Set fetched"))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[CLIENT_ID]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(id_token, key, &v).context("the ID token")?;
        if data.claims["nonce"].as_str() != Some(nonce) {
            bail!("the ID token's nonce is not the request's");
        }
        Ok(data.claims)
    }
}

/// One authorization request's secrets: `state`, `nonce` and the PKCE verifier (RFC 7636).
pub struct Request {
    pub state: String,
    pub nonce: String,
    verifier: String,
}

impl Request {
    pub fn new() -> anyhow::Result<Request> {
        Ok(Request {
            state: random_hex()?,
            nonce: random_hex()?,
            // 32 random bytes base64url: 43 characters (RFC 7636 §4.1).
            verifier: URL_SAFE_NO_PAD.encode(random_bytes::<32>()?),
        })
    }

    /// `GET /authorize?…` with `code_challenge` = base64url(SHA-256(verifier)) (§4.2, S256).
    fn authorize_path(&self) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "openid profile email")
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("/authorize?{query}")
    }
}

/// A sign-in in progress: its id and the cookie holding it.
pub struct Flow {
    pub id: String,
    pub cookie: String,
}

impl Flow {
    pub fn cookie_header(&self) -> String {
        format!("Cookie: {}", self.cookie)
    }

    /// A `Set-Cookie` of the answer replaces the flow's cookie (the next step is in it).
    pub fn update(&mut self, r: &Response) {
        if let Some(c) = flow_cookie(r) {
            self.cookie = c;
        }
    }
}

/// `GET /authorize`: must answer 303 to `/flow/{id}` with the flow's cookie.
pub async fn authorize(browser: &mut Conn, req: &Request) -> anyhow::Result<Flow> {
    let r = get(browser, &req.authorize_path()).await?;
    let location = r.header("location").unwrap_or_default().to_owned();
    if r.status != 303 || !location.starts_with("/flow/") {
        bail!(
            "/authorize: HTTP {}, Location {location:?}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let id = location["/flow/".len()..]
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let cookie = flow_cookie(&r).ok_or_else(|| anyhow!("/authorize set no {FLOW_COOKIE}"))?;
    Ok(Flow { id, cookie })
}

/// `GET /flow/{id}` with the cookie: the page's HTML (200 expected).
pub async fn page(browser: &mut Conn, flow: &Flow) -> anyhow::Result<String> {
    let path = format!("/flow/{}", flow.id);
    browser
        .send("GET", &path, &[flow.cookie_header()], b"")
        .await?;
    let r = browser.response().await?;
    if r.status != 200 {
        bail!("{path}: HTTP {}", r.status);
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// `GET /flow/{id}` with the cookie, answered by a redirect (the flow is over).
pub async fn page_redirect(browser: &mut Conn, flow: &Flow) -> anyhow::Result<Response> {
    let path = format!("/flow/{}", flow.id);
    browser
        .send("GET", &path, &[flow.cookie_header()], b"")
        .await?;
    browser.response().await
}

/// The sign-in form posted as a browser posts it (same-origin Fetch Metadata, our `Origin`,
/// the page's CSRF field): the answer, unread beyond its head and body.
pub async fn sign_in(
    browser: &mut Conn,
    origin: &str,
    flow: &Flow,
    csrf: &str,
    username: &str,
) -> anyhow::Result<Response> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", csrf)
        .append_pair("username", username)
        .append_pair("password", "bench-password")
        .finish();
    let headers = [
        flow.cookie_header(),
        "Content-Type: application/x-www-form-urlencoded".to_owned(),
        format!("Origin: {origin}"),
        "Sec-Fetch-Site: same-origin".to_owned(),
    ];
    let path = format!("/flow/{}/password", flow.id);
    browser
        .send("POST", &path, &headers, form.as_bytes())
        .await?;
    browser.response().await
}

/// The code from a 303 to the redirect URI, once its `state` and `iss` (RFC 9207) are right.
pub fn code_of(r: &Response, req: &Request, issuer: &str) -> anyhow::Result<String> {
    let location = r.header("location").unwrap_or_default();
    if r.status != 303 || !location.starts_with(REDIRECT_URI) {
        bail!(
            "expected a 303 to the client, got HTTP {} to {location:?}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let url = url::Url::parse(location).with_context(|| format!("Location {location}"))?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(error) = param("error") {
        bail!("the client was sent error={error}");
    }
    if param("state").as_deref() != Some(&req.state) {
        bail!("the redirect's state is not the request's");
    }
    if param("iss").as_deref() != Some(issuer) {
        bail!("the redirect's iss is not the issuer");
    }
    param("code").ok_or_else(|| anyhow!("no code in {location}"))
}

/// `POST /token` (RFC 6749 §4.1.3) with `client_secret_basic` (§2.3.1) and the verifier; the
/// ID token's verified claims.
pub async fn redeem(
    rp: &mut Conn,
    provider: &Provider,
    req: &Request,
    code: &str,
) -> anyhow::Result<Value> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_verifier", &req.verifier)
        .finish();
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let headers = [
        format!("Authorization: Basic {basic}"),
        "Content-Type: application/x-www-form-urlencoded".to_owned(),
    ];
    rp.send("POST", "/token", &headers, form.as_bytes()).await?;
    let answer = json_of(rp.response().await?).context("/token")?;
    let id_token = answer["id_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no id_token in the token response"))?;
    provider.verify(id_token, &req.nonce)
}

/// The `csrf` hidden field of a page's form.
pub fn csrf_of(page: &str) -> anyhow::Result<String> {
    let at = page
        .find("name=\"csrf\"")
        .ok_or_else(|| anyhow!("no csrf field on the page"))?;
    page[at..]
        .split_once("value=\"")
        .and_then(|(_, v)| v.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .ok_or_else(|| anyhow!("no value in the csrf field"))
}

/// `cs_flow=…` from a `Set-Cookie` that sets it (not one that clears it).
fn flow_cookie(r: &Response) -> Option<String> {
    r.all("set-cookie").find_map(|c| {
        let pair = c.split(';').next()?.trim();
        let (name, value) = pair.split_once('=')?;
        (name == FLOW_COOKIE && !value.is_empty()).then(|| pair.to_owned())
    })
}

async fn get(conn: &mut Conn, path: &str) -> anyhow::Result<Response> {
    conn.send("GET", path, &[], b"").await?;
    conn.response().await
}

fn json_of(r: Response) -> anyhow::Result<Value> {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if r.status != 200 {
        bail!("HTTP {}: {body}", r.status);
    }
    Ok(body)
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut b = [0; N];
    getrandom::fill(&mut b).map_err(|e| anyhow!("getrandom: {e}"))?;
    Ok(b)
}

/// 128 random bits, hex.
fn random_hex() -> anyhow::Result<String> {
    Ok(random_bytes::<16>()?
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(location: &str) -> Response {
        Response {
            status: 303,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
        }
    }

    fn request() -> Request {
        Request {
            state: "s1".into(),
            nonce: "n1".into(),
            verifier: "v".repeat(43),
        }
    }

    const ISS: &str = "http://127.0.0.1:8080";

    #[test]
    fn a_code_counts_only_with_the_requests_state_and_the_issuer() {
        let ok = format!("{REDIRECT_URI}?code=abc&state=s1&iss=http%3A%2F%2F127.0.0.1%3A8080");
        assert_eq!(code_of(&redirect(&ok), &request(), ISS).unwrap(), "abc");
        let wrong_state = ok.replace("state=s1", "state=s2");
        assert!(code_of(&redirect(&wrong_state), &request(), ISS).is_err());
        let no_state = format!("{REDIRECT_URI}?code=abc&iss=http%3A%2F%2F127.0.0.1%3A8080");
        assert!(code_of(&redirect(&no_state), &request(), ISS).is_err());
        assert!(code_of(&redirect(&ok), &request(), "http://other").is_err());
        let error = format!("{REDIRECT_URI}?error=access_denied&state=s1");
        assert!(code_of(&redirect(&error), &request(), ISS).is_err());
        let elsewhere = ok.replace(REDIRECT_URI, "http://127.0.0.1:10/x");
        assert!(code_of(&redirect(&elsewhere), &request(), ISS).is_err());
        let mut page = redirect(&ok);
        page.status = 200;
        assert!(code_of(&page, &request(), ISS).is_err(), "not a redirect");
    }

    #[test]
    fn the_flow_cookie_is_taken_from_a_set_cookie_that_sets_it_not_one_that_clears_it() {
        let mut r = redirect("/flow/x");
        r.headers.push((
            "set-cookie".into(),
            "cs_lang=tr; Path=/; SameSite=Lax".into(),
        ));
        r.headers.push((
            "set-cookie".into(),
            "cs_flow=; Path=/flow/x; Max-Age=0".into(),
        ));
        assert_eq!(flow_cookie(&r), None);
        r.headers.push((
            "set-cookie".into(),
            "cs_flow=abc.def; Path=/flow/x; Max-Age=900; HttpOnly".into(),
        ));
        assert_eq!(flow_cookie(&r).as_deref(), Some("cs_flow=abc.def"));
    }

    #[test]
    fn the_csrf_field_is_read_from_the_form_and_its_absence_is_an_error() {
        let page = r#"<form><input type="hidden" name="csrf" value="f00d"><input name="x"></form>"#;
        assert_eq!(csrf_of(page).unwrap(), "f00d");
        assert!(csrf_of("<form></form>").is_err());
    }

    #[test]
    fn the_authorize_request_carries_the_s256_challenge_of_its_verifier() {
        let req = request();
        let path = req.authorize_path();
        let url = url::Url::parse(&format!("http://h{path}")).unwrap();
        let param = |n: &str| {
            url.query_pairs()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.into_owned())
        };
        // RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))).
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest("v".repeat(43).as_bytes()));
        assert_eq!(param("code_challenge"), Some(expected));
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("redirect_uri").as_deref(), Some(REDIRECT_URI));
        assert_eq!(param("state").as_deref(), Some("s1"));
        assert_eq!(param("nonce").as_deref(), Some("n1"));
        let fresh = Request::new().unwrap();
        assert_eq!(fresh.verifier.len(), 43);
        assert_ne!(fresh.state, Request::new().unwrap().state);
    }
}
