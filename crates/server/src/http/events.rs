//! `GET /api/v1/logins/{id}/events`: a login's state as Server-Sent Events (HTML Living
//! Standard §9.2). The first `status` event goes out at once with the state as it is, then one
//! per change; a final state ends the stream, and so does the link's expiry (with the expired
//! state) and the server's shutdown. Comments every 15 s keep proxies from closing an idle
//! stream. The wait is `LoginService::wait`, so a decision reaches the stream the moment it is
//! recorded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use countersign_core::Timestamp;
use countersign_core::application::Application;
use countersign_core::login::LoginStatus;
use futures_util::stream;
use tokio_util::sync::CancellationToken;

use super::api::ApiState;
use super::login::{ApprovalApi, Keyless, LoginAnswer, application, approvals};
use super::problem::Problem;

/// How often an idle stream carries a comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let start = async {
        let approvals = approvals(&s)?;
        let app = application(&approvals, &headers, Keyless::Allowed)?;
        // An unknown login (or another application's) is the same 404 as a read, before any
        // stream starts.
        let first = approvals
            .login
            .status(&app.name, &id)
            .await
            .map_err(Problem::login)?;
        Ok::<_, Problem>(Watch {
            approvals,
            app,
            id,
            stopping: s.stopping.clone(),
            next: Step::Send(first),
        })
    }
    .await;
    let watch = match start {
        Ok(w) => w,
        Err(p) => return p.into_response(),
    };
    let events = stream::unfold(watch, |mut w| async move {
        let event = w.step().await?;
        Some((Ok::<_, Infallible>(event), w))
    });
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One stream's progress.
struct Watch {
    approvals: Arc<ApprovalApi>,
    app: Application,
    id: String,
    stopping: CancellationToken,
    next: Step,
}

enum Step {
    /// This state goes out next.
    Send(LoginStatus),
    /// Pending until this expiry: wait for the change.
    WaitUntil(Timestamp),
    Done,
}

impl Watch {
    /// The next event, or `None` when the stream is over.
    async fn step(&mut self) -> Option<Event> {
        loop {
            match std::mem::replace(&mut self.next, Step::Done) {
                Step::Done => return None,
                Step::Send(status) => {
                    self.next = match &status {
                        LoginStatus::Pending { expires_at } => Step::WaitUntil(*expires_at),
                        _ => Step::Done,
                    };
                    return Some(status_event(&self.id, status));
                }
                Step::WaitUntil(expires_at) => {
                    let login = &self.approvals.login;
                    let waited = tokio::select! {
                        status = login.wait(&self.app.name, &self.id, expires_at) => status,
                        () = self.stopping.cancelled() => return None,
                    };
                    match waited {
                        // Still pending (woken early): nothing changed, nothing to send.
                        Ok(LoginStatus::Pending { expires_at }) => {
                            self.next = Step::WaitUntil(expires_at);
                        }
                        Ok(status) => self.next = Step::Send(status),
                        Err(e) => {
                            let problem = Problem::login(e);
                            let data = serde_json::to_string(&problem).unwrap_or_default();
                            return Some(Event::default().event("error").data(data));
                        }
                    }
                }
            }
        }
    }
}

/// `event: status` with the answer object a read of the login would give.
fn status_event(id: &str, status: LoginStatus) -> Event {
    let data = match LoginAnswer::of_status(id, status) {
        Ok(answer) => serde_json::to_string(&answer),
        Err(problem) => serde_json::to_string(&problem),
    }
    .unwrap_or_default();
    Event::default().event("status").data(data)
}
