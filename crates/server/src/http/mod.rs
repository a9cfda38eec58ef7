//! The HTTP front: [`api`] holds the state, the router and the OTP API (request → use case →
//! response, testable with `oneshot`); [`login`] the login API and long-poll, [`events`] the
//! login's event stream, [`pages`] the manager's approval page with [`csrf`] guarding its form,
//! and the edge of every page; [`views`] renders the hosted sign-in pages in the languages of
//! [`i18n`]; [`body`] the edge rules on request bodies, [`problem`] maps use-case errors to RFC
//! 9457 problem+json once, and [`listener`] owns the socket and its limits. Its state is built by
//! the wiring and handed in; this module never reads the configuration. [`demo_rp`] is the
//! relying party `countersign demo` adds beside the provider.

pub mod api;
pub mod body;
pub mod csrf;
pub mod demo_rp;
pub mod events;
pub mod flow;
pub mod forwarded;
pub mod i18n;
pub mod listener;
pub mod login;
pub mod oidc;
pub mod pages;
pub mod problem;
pub mod views;

pub use api::{ApiState, router};

use axum::http::{StatusCode, header};
use axum::response::Response;

/// What every edge layer (the API's, the pages', OAuth's) does to an error answer that is not
/// in its own shape yet (axum's 405, an extractor's rejection, a body over the limit): the
/// body and content headers of `replacement(status)`, the status and the other headers
/// (`Allow`, `Connection`, `WWW-Authenticate`) kept. `ours` reads the answer's Content-Type.
pub(crate) fn error_in_shape(
    resp: Response,
    ours: impl Fn(&[u8]) -> bool,
    replacement: impl FnOnce(StatusCode) -> Response,
) -> Response {
    let status = resp.status();
    let in_shape = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| ours(v.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || in_shape {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (new_parts, body) = replacement(status).into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}
pub use csrf::CsrfKey;
pub use listener::{HttpLimits, HttpServer};
pub use login::ApprovalApi;
