//! The login API: `POST /api/v1/logins` (a password or OTP login by an application) and
//! `GET /api/v1/logins/{id}?wait=S` (its state, long-polled up to S seconds), the answer shapes
//! they share with verify and the event stream ([`super::events`]), and who the caller is:
//! the application whose API key comes as `Authorization: Bearer` (RFC 6750 §2.1), or the
//! keyless application where the endpoint allows none. Handlers translate only; the use cases
//! are `LoginService::{login_password, login_otp, status, wait}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use countersign_core::application::{Application, Applications};
use countersign_core::login::{LoginOutcome, LoginService, LoginStatus};
use countersign_core::otp::VerifyRequest;
use countersign_core::{AuthError, Secret, Timestamp};
use serde::{Deserialize, Serialize};

use super::api::{ApiState, caller, json_ok, parse_json};
use super::body::JsonBody;
use super::csrf::CsrfKey;
use super::problem::Problem;

/// What the Approved OTP endpoints need, built by the wiring and set with
/// [`ApiState::with_approvals`].
pub struct ApprovalApi {
    pub login: Arc<LoginService>,
    pub applications: Applications,
    /// The application of callers that send no API key (verify, and reading the logins it
    /// started). Named `http` by the wiring.
    pub keyless: Application,
    /// The hidden field of the manager's page.
    pub csrf: CsrfKey,
    /// `scheme://host[:port]` of `[server] public_url` and of every approval profile's server:
    /// the origins the manager's page may be posted from.
    pub own_origins: Vec<String>,
}

/// Whether an endpoint serves callers without an API key (as the keyless application).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyless {
    Allowed,
    Refused,
}

/// Longest long-poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// The application calling: the one whose key is presented; none presented, the keyless one
/// if the endpoint allows it. A missing (where required), malformed or unknown key is the same
/// 401.
pub fn application(
    approvals: &ApprovalApi,
    headers: &HeaderMap,
    keyless: Keyless,
) -> Result<Application, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return match keyless {
            Keyless::Allowed => Ok(approvals.keyless.clone()),
            Keyless::Refused => Err(Problem::unauthenticated()),
        };
    };
    if values.next().is_some() {
        return Err(Problem::unauthenticated());
    }
    let key = value.to_str().ok().and_then(bearer_token);
    key.and_then(|k| approvals.applications.by_api_key(k))
        .cloned()
        .ok_or_else(Problem::unauthenticated)
}

/// The token of `Bearer <token>`: the scheme in any case (RFC 9110 §11.1), one or more spaces,
/// then the token68 and nothing else.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    (!token.is_empty() && token.bytes().all(token68)).then_some(token)
}

pub fn routes(router: Router<ApiState>) -> Router<ApiState> {
    router
        .route("/api/v1/logins", post(create))
        .route("/api/v1/logins/{id}", get(read))
        .route("/api/v1/logins/{id}/events", get(super::events::events))
}

/// The approval endpoints' state; the routes exist only when it is set.
pub fn approvals(s: &ApiState) -> Result<Arc<ApprovalApi>, Problem> {
    s.approvals
        .clone()
        .ok_or_else(|| Problem::for_status(StatusCode::NOT_FOUND))
}

/// A granted or pending login. A denial is a [`Problem`] (see [`Problem::login`]).
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginAnswer {
    Granted {
        user: UserView,
    },
    Pending {
        login: String,
        expires_at: String,
        poll: String,
        events: String,
    },
}

#[derive(Debug, Serialize)]
pub struct UserView {
    pub dn: String,
    pub username: String,
    pub display_name: Option<String>,
}

impl LoginAnswer {
    pub fn pending(login: &str, expires_at: Timestamp) -> Self {
        LoginAnswer::Pending {
            login: login.to_owned(),
            expires_at: expires_at.to_rfc3339(),
            poll: format!("/api/v1/logins/{login}?wait=30"),
            events: format!("/api/v1/logins/{login}/events"),
        }
    }

    pub fn of_outcome(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::Granted { user, .. } => LoginAnswer::Granted {
                user: UserView {
                    dn: user.dn.to_string(),
                    username: user.username,
                    display_name: user.display_name,
                },
            },
            LoginOutcome::Pending { login, expires_at } => Self::pending(&login, expires_at),
        }
    }

    /// Login `id`'s state as its application reads it.
    pub fn of_status(id: &str, status: LoginStatus) -> Result<Self, Problem> {
        match status {
            LoginStatus::Pending { expires_at } => Ok(Self::pending(id, expires_at)),
            LoginStatus::Granted {
                user_dn,
                username,
                display_name,
            } => Ok(LoginAnswer::Granted {
                user: UserView {
                    dn: user_dn,
                    username,
                    display_name,
                },
            }),
            LoginStatus::Denied(d) => Err(Problem::login(AuthError::Denied(d))),
        }
    }

    /// 200 granted; 202 pending, with `Location` naming the login (RFC 9110 §15.3.3).
    pub fn into_response(self) -> Response {
        let location = match &self {
            LoginAnswer::Pending { login, .. } => {
                HeaderValue::from_str(&format!("/api/v1/logins/{login}")).ok()
            }
            LoginAnswer::Granted { .. } => None,
        };
        let mut resp = json_ok(self);
        if let Some(location) = location {
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp.headers_mut().insert(header::LOCATION, location);
        }
        resp
    }
}

/// The 202 pending answer.
pub fn pending_response(login: &str, expires_at: Timestamp) -> Response {
    LoginAnswer::pending(login, expires_at).into_response()
}

/// Holds the password or the OTP: deliberately not `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    authentication_id: String,
    password: Option<String>,
    otp: Option<String>,
    authorization_id: Option<String>,
}

enum Factor {
    Password(Secret),
    Otp(VerifyRequest),
}

impl LoginBody {
    fn factor(self) -> Result<(String, Factor), Problem> {
        let id = self.authentication_id;
        match (self.password, self.otp) {
            (Some(password), None) if self.authorization_id.is_none() => {
                Ok((id, Factor::Password(Secret::new(password))))
            }
            (Some(_), None) => Err(Problem::bad_request(
                "authorization_id goes only with an otp login",
            )),
            (None, Some(otp)) => Ok((
                id.clone(),
                Factor::Otp(VerifyRequest {
                    authentication_id: id,
                    authorization_id: self.authorization_id,
                    otp: Secret::new(otp),
                }),
            )),
            _ => Err(Problem::bad_request("send exactly one of password and otp")),
        }
    }
}

async fn create(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    let result = async {
        let approvals = approvals(&s)?;
        let app = application(&approvals, &headers, Keyless::Refused)?;
        let (id, factor) = parse_json::<LoginBody>(&body)?.factor()?;
        let (service, caller) = (approvals.login.clone(), caller(peer));
        let outcome = s
            .detached(async move {
                match factor {
                    Factor::Password(password) => {
                        service.login_password(&app, &id, &password, &caller).await
                    }
                    Factor::Otp(request) => service.login_otp(&app, request, &caller).await,
                }
            })
            .await?;
        outcome.map_err(Problem::login)
    }
    .await;
    match result {
        Ok(outcome) => LoginAnswer::of_outcome(outcome).into_response(),
        Err(p) => p.into_response(),
    }
}

/// `?wait=S`: whole seconds, 0 to [`MAX_WAIT_SECS`]; absent: 0.
fn wait_of(query: Option<&str>) -> Result<u64, Problem> {
    let mut wait = 0;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name == "wait" {
            wait = value
                .parse::<u64>()
                .ok()
                .filter(|w| *w <= MAX_WAIT_SECS)
                .ok_or_else(|| {
                    Problem::bad_request(format!(
                        "wait must be whole seconds from 0 to {MAX_WAIT_SECS}"
                    ))
                })?;
        }
    }
    Ok(wait)
}

async fn read(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let approvals = approvals(&s)?;
        let app = application(&approvals, &headers, Keyless::Allowed)?;
        let wait = wait_of(query.as_deref())?;
        let login = &approvals.login;
        let status = if wait == 0 {
            login.status(&app.name, &id).await
        } else {
            let until = login.clock.now().plus(Duration::from_secs(wait));
            // Reading has no effect to finish: a client that leaves drops its wait. At
            // shutdown the waiter gets the state as it is.
            tokio::select! {
                status = login.wait(&app.name, &id, until) => status,
                () = s.stopping.cancelled() => login.status(&app.name, &id).await,
            }
        };
        LoginAnswer::of_status(&id, status.map_err(Problem::login)?)
    }
    .await;
    match result {
        Ok(answer) => answer.into_response(),
        Err(p) => p.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token("Bearer abc-123"), Some("abc-123"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER a+b/c=="), Some("a+b/c=="));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearerabc",
            "abc",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn waits_are_whole_seconds_up_to_a_minute() {
        assert_eq!(wait_of(None).unwrap(), 0);
        assert_eq!(wait_of(Some("wait=30")).unwrap(), 30);
        assert_eq!(wait_of(Some("x=1&wait=60")).unwrap(), 60);
        for bad in ["wait=61", "wait=-1", "wait=1.5", "wait=", "wait=abc"] {
            assert_eq!(wait_of(Some(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
