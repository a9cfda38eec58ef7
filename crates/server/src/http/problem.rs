//! RFC 9457 problem details: the one place use-case errors become HTTP statuses. Credential
//! problems all become the same 401 with the same text, whatever the real reason. The
//! [`every_answer`] layer makes the rule hold for answers no handler wrote (axum's 405 and
//! extractor rejections): every error is problem+json and nothing is cached.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use countersign_core::{AuthError, Undelivered};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tried: Option<Vec<TriedMechanism>>,
    /// Login answers only (an RFC 9457 §3.2 extension member): `denied`. Not named `status`,
    /// which RFC 9457 §3.1.3 gives the HTTP status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// With `outcome`: the reason code (`invalid_credentials`, `rejected`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Answer with `WWW-Authenticate: Bearer` (RFC 6750 §3).
    #[serde(skip)]
    pub bearer_challenge: bool,
}

/// The `outcome` of a login that a problem answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Denied,
}

#[derive(Debug, Serialize)]
pub struct TriedMechanism {
    pub mechanism: String,
    pub reason: String,
}

const UNIFORM_REFUSAL: &str = "the identity, the password or the one-time password is not valid, or the account cannot be used";

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            tried: None,
            outcome: None,
            reason: None,
            retry_after: None,
            bearer_challenge: false,
        }
    }

    /// 401 for a missing, malformed or unknown API key: the same answer for each, with the
    /// `Bearer` challenge and nothing about which applications exist.
    pub fn unauthenticated() -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "urn:countersign:problem:unauthenticated",
            "Unauthenticated",
            "send the application's API key as Authorization: Bearer <key>",
        );
        p.bearer_challenge = true;
        p
    }

    /// A login use case's error as the login API answers it: every first-factor failure (a
    /// malformed identity included) is the uniform 401, a denial is 403 with its reason code,
    /// both marked `"outcome": "denied"`; limits and outages as everywhere.
    pub fn login(e: AuthError) -> Self {
        match e {
            AuthError::MalformedIdentity(_) | AuthError::InvalidCredentials(_) => Self::from(
                AuthError::InvalidCredentials(countersign_core::Refusal::UnknownUser),
            )
            .denied("invalid_credentials"),
            AuthError::Denied(d) => Self::from(e).denied(d.code()),
            AuthError::AuthorizationDenied(_) => Self::from(e).denied("authorization_denied"),
            other => Self::from(other),
        }
    }

    /// As [`Problem::login`] for the OTP verify endpoint, which keeps its 400 for a malformed
    /// identity (the same answer from every OTP operation, on both fronts).
    pub fn verify_login(e: AuthError) -> Self {
        match e {
            AuthError::MalformedIdentity(_) => Self::from(e),
            other => Self::login(other),
        }
    }

    fn denied(mut self, reason: &'static str) -> Self {
        self.outcome = Some(Outcome::Denied);
        self.reason = Some(reason);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "urn:countersign:problem:bad-request",
            "Bad request",
            detail,
        )
    }

    /// The problem for a status that carries no use-case meaning (routing, framing, limits).
    pub fn for_status(status: StatusCode) -> Self {
        let (kind, title, detail) = match status {
            StatusCode::NOT_FOUND => (
                "urn:countersign:problem:not-found",
                "Not found",
                "no such endpoint",
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "urn:countersign:problem:method-not-allowed",
                "Method not allowed",
                "this endpoint does not answer that method; see the Allow header",
            ),
            StatusCode::REQUEST_TIMEOUT => (
                "urn:countersign:problem:timeout",
                "Request timeout",
                "the request body was not received in time",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "urn:countersign:problem:too-large",
                "Request body too large",
                "request bodies are limited to 64 KiB",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "urn:countersign:problem:unsupported-media-type",
                "Unsupported media type",
                "the body must be sent with Content-Type: application/json",
            ),
            s if s.is_server_error() => (
                "urn:countersign:problem:internal",
                "Internal error",
                "the request failed; it has been logged",
            ),
            _ => (
                "urn:countersign:problem:bad-request",
                "Bad request",
                "the request is malformed",
            ),
        };
        Self::new(status, kind, title, detail)
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MalformedIdentity(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "urn:countersign:problem:malformed-identity",
                "Malformed identity",
                e.to_string(),
            ),
            AuthError::InvalidRequest(detail) => Self::bad_request(detail),
            AuthError::InvalidCredentials(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "urn:countersign:problem:invalid-credentials",
                "Invalid credentials",
                UNIFORM_REFUSAL,
            ),
            AuthError::Denied(denial) => Self::new(
                StatusCode::FORBIDDEN,
                "urn:countersign:problem:login-denied",
                "Login denied",
                denial.as_str(),
            ),
            AuthError::UnknownLogin => Self::new(
                StatusCode::NOT_FOUND,
                "urn:countersign:problem:unknown-login",
                "Unknown login",
                "no such login",
            ),
            AuthError::AuthorizationDenied(_) => Self::new(
                StatusCode::FORBIDDEN,
                "urn:countersign:problem:authorization-denied",
                "Authorization denied",
                e.to_string(),
            ),
            AuthError::NotDelivered { ref tried } => {
                // 502 when a transport failed; 422 when nothing could even be attempted.
                let transport_failed = tried
                    .iter()
                    .any(|(_, why)| *why == Undelivered::TransportFailed);
                let status = if transport_failed {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                let mut p = Self::new(
                    status,
                    "urn:countersign:problem:not-delivered",
                    "Not delivered",
                    e.to_string(),
                );
                p.tried = Some(
                    tried
                        .iter()
                        .map(|(m, r)| TriedMechanism {
                            mechanism: m.clone(),
                            reason: r.as_str().to_owned(),
                        })
                        .collect(),
                );
                p
            }
            AuthError::NoSuchUser => Self::new(
                StatusCode::NOT_FOUND,
                "urn:countersign:problem:no-such-user",
                "No such user",
                "no user has that DN",
            ),
            AuthError::RateLimited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let mut p = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "urn:countersign:problem:rate-limited",
                    "Too many attempts",
                    format!("too many attempts; retry after {} s", secs.max(1)),
                );
                p.retry_after = Some(secs.max(1));
                p
            }
            AuthError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "urn:countersign:problem:unavailable",
                "Service unavailable",
                "a directory or the store cannot be reached; try again later",
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned());
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if self.bearer_challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Outermost layer: an error answer that is not problem+json yet (axum's 405 with its `Allow`,
/// an extractor's rejection) becomes one, with its headers kept; and no answer is cached
/// (`Cache-Control: no-store`: answers carry users' DNs, addresses and refusals).
pub async fn every_answer(req: Request, next: Next) -> Response {
    let mut resp = super::error_in_shape(
        next.run(req).await,
        |t| t == b"application/problem+json",
        |status| Problem::for_status(status).into_response(),
    );
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
