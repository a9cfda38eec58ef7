//! The JSON API's state and router, and the OTP endpoints `/api/v1/otp/...` (deliver, verify,
//! the supported-mechanisms lookup) plus `/healthz`. Handlers only translate: JSON in, use
//! case, JSON or problem+json out. The [`router`] puts every front of the HTTP listener
//! together (this API, the login API of [`super::login`] and [`super::events`], the manager's
//! pages of [`super::pages`]) with the edge rules (bodies read whole within limits, JSON only
//! and problem+json for every error on the API, HTML on the pages), so a `oneshot` test sees
//! what a socket client sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use countersign_core::AuthError;
use countersign_core::Secret;
use countersign_core::attempt::{Caller, Front};
use countersign_core::audit::AuditQuery;
use countersign_core::login::LoginOutcome;
use countersign_core::mechanism::{MechanismChoice, MessageTexts};
use countersign_core::otp::{DeliverRequest, OtpService, RecipientView, VerifyRequest};
use countersign_core::ports::Store;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use super::body::MAX_BODY;
use super::body::{JsonBody, read_whole};
use super::login::{self, ApprovalApi, Keyless};
use super::problem::{Problem, every_answer};

/// What the API's handlers need, built by the wiring (`App::http_state`).
#[derive(Clone)]
pub struct ApiState {
    pub otp: Arc<OtpService>,
    pub store: Arc<dyn Store>,
    /// `[http] reveal_recipients`: full addresses in the mechanisms lookup, else masked.
    pub reveal_recipients: bool,
    /// `[http] body_read_timeout`.
    pub body_read_timeout: Duration,
    /// `[deliver_otp] enabled`: when false, the deliver endpoint does not exist (404).
    pub deliver_otp_enabled: bool,
    /// Use cases running detached from their request; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Approved OTP: the login API, waiting and the manager's page. `None`: those endpoints
    /// do not exist (404) and verify is the plain OTP check.
    pub approvals: Option<Arc<ApprovalApi>>,
    /// The OpenID Connect provider: its endpoints and the hosted sign-in. `None`: no client is
    /// configured, and those paths do not exist.
    pub oidc: Option<Arc<super::oidc::OidcApi>>,
    /// `countersign demo`'s relying party (`/demo`). `None`: those paths do not exist.
    pub demo_rp: Option<Arc<super::demo_rp::DemoRp>>,
    /// Cancelled when the listener stops: long-polls answer at once and event streams end, so
    /// shutdown does not wait for them.
    pub stopping: CancellationToken,
}

impl ApiState {
    pub fn new(
        otp: Arc<OtpService>,
        store: Arc<dyn Store>,
        reveal_recipients: bool,
        body_read_timeout: Duration,
        deliver_otp_enabled: bool,
    ) -> Self {
        Self {
            otp,
            store,
            reveal_recipients,
            body_read_timeout,
            deliver_otp_enabled,
            tasks: TaskTracker::new(),
            approvals: None,
            oidc: None,
            demo_rp: None,
            stopping: CancellationToken::new(),
        }
    }

    /// With Approved OTP: the login endpoints, the waiting endpoints and the manager's page.
    pub fn with_approvals(mut self, approvals: ApprovalApi) -> Self {
        self.approvals = Some(Arc::new(approvals));
        self
    }

    /// With the OpenID Connect provider.
    pub fn with_oidc(mut self, oidc: super::oidc::OidcApi) -> Self {
        self.oidc = Some(Arc::new(oidc));
        self
    }

    /// With the demo's relying party (only `countersign demo`).
    pub fn with_demo_rp(mut self, rp: Arc<super::demo_rp::DemoRp>) -> Self {
        self.demo_rp = Some(rp);
        self
    }

    /// Runs a use case to completion on a task of its own, so it finishes and writes its audit
    /// record even when the client goes away or the answer times out; the client waits at most
    /// [`REQUEST_TIMEOUT`]. Shutdown waits for these tasks too.
    pub(super) async fn run_detached<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, AuthError>> + Send + 'static,
    ) -> Result<T, Problem> {
        self.detached(f).await?.map_err(Problem::from)
    }

    /// As [`ApiState::run_detached`], leaving the use case's error to the caller to map.
    pub(super) async fn detached<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, AuthError>> + Send + 'static,
    ) -> Result<Result<T, AuthError>, Problem> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.tasks.spawn(f)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a request task failed");
                Err(Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(_) => Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "urn:countersign:problem:timeout",
                "Timed out",
                "the request took too long; it goes on in the background and is audited",
            )),
        }
    }
}

/// Longest a use case may take before the client gets a 503 (couriers have their own limits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Every endpoint of the HTTP listener. The API's routes and the pages get their own edge
/// layers (problem+json for the one, HTML for the other), so neither rewrites the other's
/// answers; the tracing span covers both.
pub fn router(state: ApiState) -> Router {
    let mut api = Router::new();
    if state.deliver_otp_enabled {
        api = api.route("/api/v1/otp/deliver", post(deliver));
    }
    api = api
        .route("/api/v1/otp/verify", post(verify))
        .route("/api/v1/otp/mechanisms", get(mechanisms))
        .route("/healthz", get(healthz));
    if state.approvals.is_some() {
        api = login::routes(api);
    }
    let api = api
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(every_answer));
    let mut router = if state.approvals.is_some() {
        api.merge(super::pages::routes(state.body_read_timeout))
    } else {
        api
    };
    if state.oidc.is_some() {
        router = router
            .merge(super::oidc::routes(state.body_read_timeout))
            .merge(super::flow::routes(state.body_read_timeout));
    }
    if state.demo_rp.is_some() {
        router = router.merge(super::demo_rp::routes(state.body_read_timeout));
    }
    router
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

/// One tracing span per request (method and path; never the query or the body, and never an
/// approval link's token, which approves the login as a code would).
async fn trace_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let path = req.uri().path();
    let path = if path.starts_with(super::pages::APPROVE_PREFIX) {
        "/approve/…"
    } else {
        path
    };
    let span = tracing::info_span!("http", method = %req.method(), path = %path);
    let start = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            ms = start.elapsed().as_millis() as u64,
            "answered"
        );
    });
    resp
}

/// Holds the static password: deliberately not `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverBody {
    pub authentication_id: String,
    pub static_password: String,
    #[serde(default)]
    pub mechanisms: Option<Vec<MechanismItem>>,
    pub message_subject: Option<String>,
    pub full_text_before_otp: Option<String>,
    pub full_text_after_otp: Option<String>,
    pub compact_text_before_otp: Option<String>,
    pub compact_text_after_otp: Option<String>,
}

/// A mechanism name, or a name with the recipient to use (spec §3.1 forms [2] and [3]).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum MechanismItem {
    Name(String),
    WithRecipient {
        name: String,
        #[serde(default)]
        recipient_id: Option<String>,
    },
}

#[derive(Debug, Serialize)]
pub struct DeliverAnswer {
    pub delivery_mechanism: String,
    pub recipient_dn: String,
    pub recipient_id: String,
}

/// Holds the OTP: deliberately not `Debug`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    pub authentication_id: String,
    pub otp: String,
    pub authorization_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyAnswer {
    pub user_dn: String,
    pub username: String,
}

#[derive(Debug, Deserialize)]
pub struct MechanismsQuery {
    pub dn: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MechanismEntry {
    pub delivery_mechanism: String,
    pub is_supported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
}

pub(super) fn caller(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Caller {
    Caller {
        front: Front::Http,
        client: peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string()),
        bound_as: None,
    }
}

/// The body as `T`: a JSON object (serde would also take an array of the fields in order, which
/// no client means to send).
pub(super) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    let object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !object {
        return Err(Problem::bad_request("request body: expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| Problem::bad_request(format!("request body: {e}")))
}

pub(super) fn json_ok<T: Serialize>(value: T) -> Response {
    let mut resp = Json(value).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn deliver(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(body): JsonBody,
) -> Response {
    let result = async {
        let b: DeliverBody = parse_json(&body)?;
        let req = DeliverRequest {
            authentication_id: b.authentication_id,
            static_password: Some(Secret::new(b.static_password)),
            mechanisms: b.mechanisms.map(|list| {
                list.into_iter()
                    .map(|m| match m {
                        MechanismItem::Name(name) => MechanismChoice {
                            name,
                            recipient: None,
                        },
                        MechanismItem::WithRecipient { name, recipient_id } => MechanismChoice {
                            name,
                            recipient: recipient_id,
                        },
                    })
                    .collect()
            }),
            texts: MessageTexts {
                subject: b.message_subject,
                full_before: b.full_text_before_otp,
                full_after: b.full_text_after_otp,
                compact_before: b.compact_text_before_otp,
                compact_after: b.compact_text_after_otp,
            },
        };
        let d = {
            let (otp, caller) = (s.otp.clone(), caller(peer));
            s.run_detached(async move { otp.deliver(req, &caller).await })
                .await?
        };
        Ok::<_, Problem>(DeliverAnswer {
            delivery_mechanism: d.mechanism,
            recipient_dn: d.user_dn.to_string(),
            recipient_id: d.recipient,
        })
    }
    .await;
    match result {
        Ok(a) => json_ok(a),
        Err(p) => p.into_response(),
    }
}

/// The OTP check. With Approved OTP it is an OTP login of the application whose key is sent
/// (none sent: the keyless application), so it may answer 202 pending; granted answers keep
/// their shape.
async fn verify(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Response {
    let app = match &s.approvals {
        Some(a) => match login::application(a, &headers, Keyless::Allowed) {
            Ok(app) => Some((a.clone(), app)),
            Err(p) => return p.into_response(),
        },
        None => None,
    };
    let req = match parse_json::<VerifyBody>(&body) {
        Ok(b) => VerifyRequest {
            authentication_id: b.authentication_id,
            authorization_id: b.authorization_id,
            otp: Secret::new(b.otp),
        },
        Err(p) => return p.into_response(),
    };
    let caller = caller(peer);
    let Some((approvals, app)) = app else {
        let otp = s.otp.clone();
        return match s
            .run_detached(async move { otp.verify(req, &caller).await })
            .await
        {
            Ok(user) => json_ok(VerifyAnswer {
                user_dn: user.dn.to_string(),
                username: user.username,
            }),
            Err(p) => p.into_response(),
        };
    };
    let service = approvals.login.clone();
    let outcome = s
        .detached(async move { service.login_otp(&app, req, &caller).await })
        .await;
    match outcome {
        Ok(Ok(LoginOutcome::Granted { user, .. })) => json_ok(VerifyAnswer {
            user_dn: user.dn.to_string(),
            username: user.username,
        }),
        Ok(Ok(LoginOutcome::Pending { login, expires_at })) => {
            login::pending_response(&login, expires_at)
        }
        Ok(Err(e)) => Problem::verify_login(e).into_response(),
        Err(p) => p.into_response(),
    }
}

async fn mechanisms(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<MechanismsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let dn =
            q.dn.filter(|d| !d.trim().is_empty())
                .ok_or_else(|| Problem::bad_request("query parameter dn is required"))?;
        let list = {
            let (otp, caller) = (s.otp.clone(), caller(peer));
            let view = if s.reveal_recipients {
                RecipientView::Full
            } else {
                RecipientView::Masked
            };
            s.run_detached(async move { otp.supported_mechanisms(&dn, &caller, view).await })
                .await?
        };
        Ok::<_, Problem>(
            list.into_iter()
                .map(|m| MechanismEntry {
                    delivery_mechanism: m.mechanism,
                    is_supported: m.supported,
                    recipient_id: m.recipient,
                })
                .collect::<Vec<_>>(),
        )
    }
    .await;
    match result {
        Ok(list) => json_ok(serde_json::json!({ "mechanisms": list })),
        Err(p) => p.into_response(),
    }
}

async fn healthz(State(s): State<ApiState>) -> Response {
    // A read that touches the database proves the store answers.
    let probe = AuditQuery {
        limit: 1,
        ..Default::default()
    };
    match s.store.list_audit(&probe).await {
        Ok(_) => json_ok(serde_json::json!({ "status": "ok" })),
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:countersign:problem:unavailable",
            "Service unavailable",
            "the store does not answer",
        )
        .into_response(),
    }
}

async fn not_found() -> Response {
    Problem::for_status(StatusCode::NOT_FOUND).into_response()
}
