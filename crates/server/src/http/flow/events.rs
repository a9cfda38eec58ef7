//! The waiting page's event stream, `GET /flow/{id}/events`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use countersign_core::AuthError;
use countersign_core::login::LoginStatus;
use futures_util::stream;
use tokio_util::sync::CancellationToken;

use super::cookie::Step;
use super::steps::{Current, Here};
use crate::http::api::ApiState;

/// The wait as Server-Sent Events: `status` events with `{"status": "pending" | "granted" |
/// "denied"}`, ending on a final state, the link's expiry or shutdown. The page then loads
/// `/flow/{id}`, which continues.
pub async fn events(State(s): State<ApiState>, Current(h): Current) -> Response {
    let Step::Waiting { login, .. } = h.flow.step.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let watch = Watch::First(Box::new(h), login, s.stopping.clone());
    let events = stream::unfold(watch, |mut w| async move {
        loop {
            match w {
                Watch::Done => return None,
                Watch::First(h, login, stopping) => {
                    let status = h.o.login.status(&h.app.name, &login).await;
                    let (event, last) = status_event(&status);
                    let next = if last {
                        Watch::Done
                    } else {
                        Watch::Waiting(h, login, stopping)
                    };
                    return Some((Ok::<_, Infallible>(event), next));
                }
                Watch::Waiting(h, login, stopping) => {
                    // The wait ends by itself at the link's expiry (then: expired).
                    let far = h.o.service.clock.now().plus(Duration::from_secs(86_400));
                    let status = tokio::select! {
                        s = h.o.login.wait(&h.app.name, &login, far) => s,
                        () = stopping.cancelled() => return None,
                    };
                    if matches!(status, Ok(LoginStatus::Pending { .. })) {
                        // Woken without a change: nothing to send.
                        w = Watch::Waiting(h, login, stopping);
                        continue;
                    }
                    let (event, _) = status_event(&status);
                    return Some((Ok(event), Watch::Done));
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

enum Watch {
    First(Box<Here>, String, CancellationToken),
    Waiting(Box<Here>, String, CancellationToken),
    Done,
}

/// The event for a status, and whether it is the last.
fn status_event(status: &Result<LoginStatus, AuthError>) -> (Event, bool) {
    let (name, last) = match status {
        Ok(LoginStatus::Pending { .. }) => ("pending", false),
        Ok(LoginStatus::Granted { .. }) => ("granted", true),
        _ => ("denied", true),
    };
    let event = Event::default()
        .event("status")
        .data(format!(r#"{{"status":"{name}"}}"#));
    (event, last)
}
