//! The manager's page, `/approve/{token}`, and its stylesheet. `GET` (and `HEAD`, `OPTIONS`)
//! only shows: mail scanners and link previews fetch links, so nothing but a `POST` from the
//! page decides (DESIGN §4), and that POST must pass [`super::csrf`]. Decided, expired and
//! unknown links get pages of their own; an unknown and a malformed token get the same bytes.
//! Templates are askama's (checked at compile time, HTML-escaped); every answer on these
//! routes, errors included, is an HTML page with the security headers of [`page_edge`]. The
//! use cases are `LoginService::{approval_view, decide_by_link}`.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use countersign_core::approval::profile::one_line;
use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy};
use countersign_core::login::DecisionResult;
use countersign_core::{AuthError, Timestamp};

use super::api::{ApiState, caller};
use super::body::{MAX_BODY, read_whole};
use super::csrf::{self, Forged};
use super::login::approvals;

/// Paths of approval links; the tracing span does not show what follows.
pub const APPROVE_PREFIX: &str = "/approve/";

/// The form carries two short fields: anything larger is not ours.
const MAX_FORM: usize = 2 * 1024;

/// Longest user agent kept with a decision.
const MAX_USER_AGENT: usize = 256;

const STYLESHEET: &str = include_str!("../../assets/countersign.css");

/// No script, no inline style, nothing from elsewhere, forms only to us, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const ALLOW: &str = "GET, HEAD, POST";

pub fn routes(body_read_timeout: Duration) -> Router<ApiState> {
    let approve = get(show)
        .head(head)
        .post(decide)
        .options(options)
        .fallback(other_method);
    Router::new()
        // A catch-all, so a token with a `/` in it is a malformed token (the 404 page), not
        // another path.
        .route("/approve/{*token}", approve)
        // No token at all: the same page as an unknown one, not the API's JSON 404.
        .route("/approve", any(no_token))
        .route("/approve/", any(no_token))
        .route("/assets/countersign.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(page_edge))
}

/// Outermost layer of the pages: every answer carries the security headers, and an error that
/// is not a page yet (a body over the limit, a wrong method on the stylesheet) becomes one,
/// with its headers (`Allow`, `Connection`) kept.
pub async fn page_edge(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let mut resp = if (status.is_client_error() || status.is_server_error()) && !is_html {
        let (mut parts, _) = resp.into_parts();
        let (new_parts, body) = status_page(status).into_parts();
        for (name, value) in &new_parts.headers {
            parts.headers.insert(name, value.clone());
        }
        Response::from_parts(parts, body)
    } else {
        resp
    };
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// A time as the pages show it, and as `<time datetime>` carries it.
struct Shown {
    iso: String,
    shown: String,
}

impl Shown {
    fn of(t: Timestamp) -> Self {
        let iso = t.to_rfc3339();
        let shown = format!("{} UTC", iso.trim_end_matches('Z').replacen('T', " ", 1));
        Self { iso, shown }
    }
}

#[derive(Template)]
#[template(path = "approve.html")]
struct ApprovePage<'a> {
    display_name: &'a str,
    username: &'a str,
    application: &'a str,
    client: &'a str,
    asked_at: Shown,
    valid_until: Shown,
    csrf: String,
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    /// A class of the card: approved, rejected, expired, cancelled, unknown, refused, error.
    kind: &'static str,
    title: String,
    lines: Vec<String>,
}

fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    let (status, body) = match page {
        Ok(body) => (status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page could not be shown.</p>".to_owned(),
            )
        }
    };
    let len = body.len();
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Stated, so a HEAD answers with the length its GET has.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn notice(status: StatusCode, kind: &'static str, title: &str, lines: &[&str]) -> Response {
    let page = NoticePage {
        kind,
        title: title.to_owned(),
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
    };
    html(status, page.render())
}

/// Unknown or malformed: one page, the same bytes for both.
async fn no_token() -> Response {
    unknown_page()
}

fn unknown_page() -> Response {
    notice(
        StatusCode::NOT_FOUND,
        "unknown",
        "Link not valid",
        &[
            "This approval link is not valid. Check that you opened the whole link from the message.",
            "If someone needs your approval, they can sign in again and you will get a new message.",
        ],
    )
}

fn unavailable_page() -> Response {
    notice(
        StatusCode::SERVICE_UNAVAILABLE,
        "error",
        "Try again shortly",
        &[
            "The server cannot look this request up right now. Nothing was decided; please try the link again in a moment.",
        ],
    )
}

fn refused_page(why: Forged) -> Response {
    // Debug, not warn: anyone can send these, and a warning each would let them fill the log.
    tracing::debug!(
        reason = why.as_str(),
        "approval POST refused as a possible forgery"
    );
    notice(
        StatusCode::FORBIDDEN,
        "refused",
        "Request refused",
        &[
            "This request did not come from the approval page, so nothing was decided. Open the link from your message again and use the buttons on that page.",
        ],
    )
}

/// The generic page of an error status no handler wrote a page for.
fn status_page(status: StatusCode) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let line = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request was too large. Nothing was decided.",
        StatusCode::METHOD_NOT_ALLOWED => "This page does not take that kind of request.",
        s if s.is_server_error() => "The server could not answer. Nothing was decided.",
        _ => "The request could not be read. Nothing was decided.",
    };
    notice(status, "error", title, &[line])
}

/// The page of a request that is no longer pending.
fn final_page(request: &ApprovalRequest, state: ApprovalState, status: StatusCode) -> Response {
    let who = who(request);
    let at = |t: Option<Timestamp>| Shown::of(t.unwrap_or(request.expires_at)).shown;
    match state {
        ApprovalState::Expired => notice(
            StatusCode::GONE,
            "expired",
            "Link expired",
            &[
                &format!(
                    "The request of {who} to sign in to {} expired undecided at {}.",
                    request.application,
                    Shown::of(request.expires_at).shown
                ),
                "Nothing can be decided through this link any more. If the sign-in is still wanted, they can sign in again and you will get a new message.",
            ],
        ),
        _ => {
            let (kind, verb) = match state {
                ApprovalState::Approved => ("approved", "approved"),
                ApprovalState::Rejected => ("rejected", "rejected"),
                _ => ("cancelled", "cancelled"),
            };
            notice(
                status,
                kind,
                &format!("Already {verb}"),
                &[&format!(
                    "The request of {who} to sign in to {} was already {verb} at {}. Nothing was changed.",
                    request.application,
                    at(request.decided_at)
                )],
            )
        }
    }
}

fn who(request: &ApprovalRequest) -> String {
    let username = one_line(&request.username);
    match &request.display_name {
        Some(name) if name != &request.username => format!("{} ({username})", one_line(name)),
        _ => username,
    }
}

async fn show(State(s): State<ApiState>, Path(token): Path<String>) -> Response {
    let Ok(approvals) = approvals(&s) else {
        return unknown_page();
    };
    let view = match approvals.login.approval_view(&token).await {
        Ok(view) => view,
        Err(AuthError::UnknownLogin) => return unknown_page(),
        Err(e) => {
            tracing::warn!(error = %e, "an approval page could not be read");
            return unavailable_page();
        }
    };
    let r = &view.request;
    if view.state != ApprovalState::Pending {
        return final_page(r, view.state, StatusCode::OK);
    }
    // Values from a directory, shown as one short line (no line breaks or direction
    // overrides that would rearrange the sentence around them), as in the manager's message.
    let display_name = one_line(r.display_name.as_deref().unwrap_or(&r.username));
    let username = one_line(&r.username);
    let application = one_line(&r.application);
    let page = ApprovePage {
        display_name: &display_name,
        username: &username,
        application: &application,
        client: r.client.as_deref().unwrap_or("unknown"),
        asked_at: Shown::of(r.created_at),
        valid_until: Shown::of(r.expires_at),
        csrf: approvals.csrf.token_for(&token),
    };
    html(StatusCode::OK, page.render())
}

/// GET's headers, no body.
async fn head(state: State<ApiState>, token: Path<String>) -> Response {
    let (parts, _) = show(state, token).await.into_parts();
    Response::from_parts(parts, Body::empty())
}

async fn options() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    resp
}

async fn other_method() -> Response {
    let mut resp = status_page(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    resp
}

async fn stylesheet() -> Response {
    let mut resp = STYLESHEET.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    resp
}

/// `application/x-www-form-urlencoded`, as the page's form sends it.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The form's fields: `csrf` and `decision`, each once.
struct Form {
    csrf: Option<String>,
    decision: Option<String>,
    repeated: bool,
}

fn read_form(body: &[u8]) -> Form {
    let mut form = Form {
        csrf: None,
        decision: None,
        repeated: false,
    };
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match name.as_ref() {
            "csrf" => &mut form.csrf,
            "decision" => &mut form.decision,
            _ => continue,
        };
        form.repeated |= slot.is_some();
        *slot = Some(value.into_owned());
    }
    form
}

/// The User-Agent as kept with a decision: control characters removed, at most 256
/// characters, nothing when empty.
fn safe_user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::USER_AGENT)?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    let kept: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

async fn decide(
    State(s): State<ApiState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(approvals) = approvals(&s) else {
        return unknown_page();
    };
    if body.len() > MAX_FORM {
        return status_page(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if let Err(why) = csrf::check_headers(&headers, &approvals.own_origins) {
        return refused_page(why);
    }
    if !is_form(&headers) {
        return status_page(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let form = read_form(&body);
    if form.repeated {
        return status_page(StatusCode::BAD_REQUEST);
    }
    if let Err(why) = csrf::check_field(&approvals.csrf, &token, form.csrf.as_deref()) {
        return refused_page(why);
    }
    let approve = match form.decision.as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        _ => return status_page(StatusCode::BAD_REQUEST),
    };
    let by = DecidedBy {
        channel: "link".to_owned(),
        address: caller(peer).client,
        user_agent: safe_user_agent(&headers),
        operator: None,
    };
    let login = approvals.login.clone();
    // Detached: a decision, once begun, is recorded and audited even if the manager's phone
    // loses the connection.
    let result = s
        .detached(async move { login.decide_by_link(&token, approve, by).await })
        .await;
    match result {
        Ok(Ok(DecisionResult::Decided(r))) => decided_page(&r),
        Ok(Ok(DecisionResult::AlreadyFinal(r))) => final_page(&r, r.state, StatusCode::CONFLICT),
        Ok(Err(AuthError::UnknownLogin)) => unknown_page(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "an approval decision failed");
            unavailable_page()
        }
        Err(_) => unavailable_page(),
    }
}

/// The answer to the decision that was recorded.
fn decided_page(r: &ApprovalRequest) -> Response {
    let who = who(r);
    if r.state == ApprovalState::Approved {
        notice(
            StatusCode::OK,
            "approved",
            "Sign-in approved",
            &[&format!(
                "You approved the sign-in of {who} to {}. They are being let in now.",
                r.application
            )],
        )
    } else {
        notice(
            StatusCode::OK,
            "rejected",
            "Sign-in rejected",
            &[
                &format!(
                    "You rejected the sign-in of {who} to {}. They are not let in.",
                    r.application
                ),
                "If you think someone else knows their password, tell your security team.",
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_kept_safe_and_short() {
        let mut h = HeaderMap::new();
        assert_eq!(safe_user_agent(&h), None);
        h.insert(
            header::USER_AGENT,
            // A tab and U+0085 (NEL, a C1 control) as UTF-8: all a header value can carry.
            HeaderValue::from_bytes(b"Phone\xc2\x85/1.0\tx").unwrap(),
        );
        assert_eq!(safe_user_agent(&h).as_deref(), Some("Phone/1.0x"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_str(&"é".repeat(300)).unwrap(),
        );
        assert_eq!(safe_user_agent(&h).unwrap().chars().count(), 256);
    }

    #[test]
    fn forms_are_read_field_by_field() {
        let f = read_form(b"csrf=ab&decision=approve&x=1");
        assert_eq!(f.csrf.as_deref(), Some("ab"));
        assert_eq!(f.decision.as_deref(), Some("approve"));
        assert!(!f.repeated);
        assert!(read_form(b"decision=approve&decision=reject").repeated);
    }

    #[test]
    fn times_show_in_utc() {
        let t = Shown::of(Timestamp(1_700_000_000_000));
        assert_eq!(t.iso, "2023-11-14T22:13:20Z");
        assert_eq!(t.shown, "2023-11-14 22:13:20 UTC");
    }
}
