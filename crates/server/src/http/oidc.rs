//! The OpenID Connect provider's machine endpoints: discovery (OpenID Connect Discovery 1.0
//! §4), the JWK Set, `/token` (RFC 6749 §4.1.3, errors §5.2) and `/userinfo` (OpenID Connect
//! Core §5.3, bearer errors RFC 6750 §3). Their answers are OAuth's JSON, never problem+json,
//! always `Cache-Control: no-store`; they allow cross-origin reads (no cookies are involved,
//! and single-page clients need them). The browser side (`/authorize` and the sign-in pages)
//! is [`super::flow`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use countersign_core::application::Applications;
use countersign_core::login::LoginService;
use countersign_core::oidc::{ClientAuth, OidcService, TokenRequest};
use countersign_core::otp::OtpService;
use serde_json::{Value, json};

use super::api::ApiState;
use super::body::read_whole;
use crate::oidc::SigningKeys;

/// A token request is a short form.
const MAX_TOKEN_FORM: usize = 8 * 1024;

/// What the provider's endpoints and pages share; built by the wiring.
pub struct OidcApi {
    pub service: Arc<OidcService>,
    pub keys: Arc<SigningKeys>,
    pub login: Arc<LoginService>,
    pub otp: Arc<OtpService>,
    pub applications: Arc<Applications>,
    /// Signs the sign-in cookie and derives the pages' CSRF fields.
    pub flow_key: super::flow::FlowKey,
    /// How long a browser has to finish signing in.
    pub sign_in_lifetime: Duration,
    /// `Secure` cookies: the issuer is https.
    pub secure_cookies: bool,
    /// `scheme://host[:port]` of the issuer: the origin the pages' forms come from.
    pub own_origins: Vec<String>,
}

pub fn routes(body_read_timeout: Duration) -> Router<ApiState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", axum::routing::post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(oauth_edge))
}

fn api(s: &ApiState) -> Option<&Arc<OidcApi>> {
    s.oidc.as_ref()
}

/// Outermost layer of the machine endpoints: `no-store` (RFC 6749 §5.1), CORS for every
/// origin without credentials, preflights answered, and errors no handler wrote in OAuth's
/// shape turned into one.
async fn oauth_edge(req: Request, next: Next) -> Response {
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        for (name, value) in [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ] {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    } else {
        super::error_in_shape(
            next.run(req).await,
            |t| t.starts_with(b"application/json"),
            |status| {
                let error = match status {
                    StatusCode::PAYLOAD_TOO_LARGE
                    | StatusCode::BAD_REQUEST
                    | StatusCode::METHOD_NOT_ALLOWED
                    | StatusCode::NOT_FOUND => "invalid_request",
                    _ => "server_error",
                };
                oauth_error(status, error, status.as_str())
            },
        )
    };
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    ] {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn not_enabled() -> Response {
    oauth_error(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "no OpenID Connect client is configured",
    )
}

async fn discovery(State(s): State<ApiState>) -> Response {
    let Some(o) = api(&s) else {
        return not_enabled();
    };
    let iss = &o.service.issuer;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/authorize"),
            "token_endpoint": format!("{iss}/token"),
            "userinfo_endpoint": format!("{iss}/userinfo"),
            "jwks_uri": format!("{iss}/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce",
                "amr", "acr", "name", "preferred_username", "email"],
            "acr_values_supported": [
                countersign_core::oidc::ACR_NONE,
                countersign_core::oidc::ACR_INFORMATION,
                countersign_core::oidc::ACR_APPROVAL,
            ],
            "ui_locales_supported": ["en", "tr"],
            "authorization_response_iss_parameter_supported": true,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        }),
    )
}

async fn jwks(State(s): State<ApiState>) -> Response {
    let Some(o) = api(&s) else {
        return not_enabled();
    };
    match o.keys.jwks().await {
        Ok(set) => {
            let mut resp = json_response(StatusCode::OK, &set);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "the JWK Set cannot be served");
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            )
        }
    }
}

/// `Authorization: Basic`, decoded: RFC 6749 §2.3.1 form-encodes the id and secret first.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let text = value
        .to_str()
        .map_err(|_| "malformed Authorization header")?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Err("malformed Authorization header");
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("client authentication is Basic or in the form");
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| "malformed Basic credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed Basic credentials")?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or("malformed Basic credentials")?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Why a token request could not be read.
enum TokenRequestError {
    /// The `Authorization` header.
    Basic(&'static str),
    Form(&'static str),
}

fn basic_challenge(why: &str) -> Response {
    let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"countersign\""),
    );
    resp
}

/// The token request's form and client authentication. Every parameter at most once
/// (RFC 6749 §3.2); one way of authenticating only (§2.3).
fn read_token_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(TokenRequest, ClientAuth), TokenRequestError> {
    if !super::pages::is_form(headers) {
        return Err(TokenRequestError::Form(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut form = std::collections::BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if !seen.insert(name.clone().into_owned()) {
            return Err(TokenRequestError::Form(
                "a parameter is given more than once",
            ));
        }
        if !value.is_empty() {
            form.insert(name.into_owned(), value.into_owned());
        }
    }
    let mut take = |name: &str| form.remove(name);
    let request = TokenRequest {
        grant_type: take("grant_type"),
        code: take("code"),
        redirect_uri: take("redirect_uri"),
        code_verifier: take("code_verifier"),
    };
    let (form_id, form_secret) = (take("client_id"), take("client_secret"));
    let basic = basic_credentials(headers).map_err(TokenRequestError::Basic)?;
    let auth = match (basic, form_id, form_secret) {
        (Some(_), _, Some(_)) => ClientAuth::Invalid("more than one client authentication"),
        (Some((id, _)), Some(form_id), None) if form_id != id => {
            ClientAuth::Invalid("client_id differs from the Basic credentials")
        }
        (Some((id, secret)), _, None) => ClientAuth::Basic { id, secret },
        (None, Some(id), Some(secret)) => ClientAuth::Post { id, secret },
        (None, Some(id), None) => ClientAuth::None { id },
        (None, None, _) => ClientAuth::Invalid("no client authentication"),
    };
    Ok((request, auth))
}

async fn token(
    State(s): State<ApiState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(o) = api(&s) else {
        return not_enabled();
    };
    if body.len() > MAX_TOKEN_FORM {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request too large",
        );
    }
    let (request, auth) = match read_token_request(&headers, &body) {
        Ok(r) => r,
        // Credentials in the Authorization header that cannot be read: the client tried to
        // authenticate (RFC 6749 §5.2: 401 with the challenge).
        Err(TokenRequestError::Basic(why)) => return basic_challenge(why),
        Err(TokenRequestError::Form(why)) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
        }
    };
    let caller = super::api::caller(peer);
    let issued = match o.service.exchange(&request, &auth, &caller).await {
        Ok(issued) => issued,
        Err(e) => {
            if e.basic_challenge {
                return basic_challenge(&e.description);
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return oauth_error(status, e.error, &e.description);
        }
    };
    let id_token = match o.keys.sign(&issued.id_token).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "an ID token could not be signed");
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "try again",
            );
        }
    };
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "id_token": id_token,
            "scope": issued.scope.join(" "),
        }),
    )
}

/// `/userinfo` with an access token in the Authorization header (RFC 6750 §2.1).
async fn userinfo(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(o) = api(&s) else {
        return not_enabled();
    };
    // RFC 6750 §3: no token at all is a bare challenge (no error code); a token we do not
    // accept is `invalid_token`; a malformed header is `invalid_request` (400).
    let challenge = |error: Option<&str>| {
        let (value, body) = match error {
            Some(e) => (
                format!("Bearer realm=\"countersign\", error=\"{e}\""),
                json!({ "error": e, "error_description": "the access token is not valid" }),
            ),
            None => (
                "Bearer realm=\"countersign\"".to_owned(),
                json!({ "error_description": "an access token is required" }),
            ),
        };
        let mut resp = json_response(StatusCode::UNAUTHORIZED, &body);
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(header::AUTHORIZATION) {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one Authorization header",
            )
        } else {
            challenge(None)
        };
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty())
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the Authorization header is not a Bearer token",
        );
    };
    let grant = match o.service.userinfo(&token).await {
        Ok(Some(g)) => g,
        Ok(None) => return challenge(Some("invalid_token")),
        Err(e) => {
            tracing::warn!(error = %e, "userinfo could not reach the store");
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            );
        }
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(grant.subject.sub));
    if grant.scope.iter().any(|s| s == "profile") {
        claims.insert("preferred_username".into(), json!(grant.subject.username));
        if let Some(name) = &grant.subject.name {
            claims.insert("name".into(), json!(name));
        }
    }
    if grant.scope.iter().any(|s| s == "email")
        && let Some(email) = &grant.subject.email
    {
        claims.insert("email".into(), json!(email));
    }
    json_response(StatusCode::OK, &Value::Object(claims))
}
