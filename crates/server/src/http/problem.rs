//! RFC 9457 problem details: the one place use-case errors become HTTP statuses. Credential
//! problems all become the same 401 with the same text, whatever the real reason.

use axum::http::{HeaderValue, StatusCode, header};
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
    #[serde(skip)]
    pub retry_after: Option<u64>,
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
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "urn:countersign:problem:bad-request",
            "Bad request",
            detail,
        )
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
        resp
    }
}
