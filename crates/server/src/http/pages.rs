//! The manager's page, `/approve/{token}`, the pages' stylesheet and script, and the edge every
//! page answer passes ([`page_edge`]: the language, the security headers, errors as pages). `GET` (and `HEAD`, `OPTIONS`)
//! only shows: mail scanners and link previews fetch links, so nothing but a `POST` from the
//! page decides (DESIGN §4), and that POST must pass [`super::csrf`]. Decided, expired and
//! unknown links get pages of their own; an unknown and a malformed token get the same bytes.
//! Templates are askama's (checked at compile time, HTML-escaped); every answer on these
//! routes, errors included, is an HTML page with the security headers of [`page_edge`]. The
//! use cases are `LoginService::{approval_view, decide_by_link}`. Every string comes from the
//! request's language's catalogue ([`super::i18n`]); times are shown in UTC.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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
use super::i18n::{Catalogue, Lang, Piece, fill, pieces};
use super::login::approvals;
use super::views::Shown;

/// Paths of approval links; the tracing span does not show what follows.
pub const APPROVE_PREFIX: &str = "/approve/";

/// The form carries two short fields: anything larger is not ours.
const MAX_FORM: usize = 2 * 1024;

/// Longest user agent kept with a decision.
const MAX_USER_AGENT: usize = 256;

const STYLESHEET: &str = include_str!("../../assets/countersign.css");

/// The waiting page's script (the only script of the pages).
const WAITING_SCRIPT: &str = include_str!("../../assets/waiting.js");

/// Scripts and styles only from our own files (never inline), the event stream only from us,
/// nothing from elsewhere, forms only to us, never framed. A handler whose form must be able to
/// redirect to another origin sets its own (see [`csp_with_form_targets`]); [`page_edge`] keeps
/// it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                       style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// [`CSP`] with `form-action` also allowing these origins (`https://app.example.com`).
/// Chromium applies `form-action` to the redirects that follow a form's POST too (CSP Level 3,
/// `form-action`; checked with Chromium 156), so a sign-in POST answered by a 303 to the relying party's
/// `redirect_uri` is blocked unless that origin is listed. `None` if an origin is not a plain
/// `scheme://host[:port]` (nothing is then allowed beyond our own).
pub fn csp_with_form_targets(origins: &[&str]) -> Option<HeaderValue> {
    let plain = |o: &&str| {
        let rest = o
            .strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"));
        rest.is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
    };
    if !origins.iter().all(plain) {
        return None;
    }
    let mut targets = String::from("'self'");
    for o in origins {
        targets.push(' ');
        targets.push_str(o);
    }
    HeaderValue::from_str(&CSP.replace("form-action 'self'", &format!("form-action {targets}")))
        .ok()
}

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
        .route("/assets/waiting.js", get(waiting_script))
        // Browsers ask for it on every page; no icon, and no error in their console either.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(page_edge))
}

/// Outermost layer of the pages: it chooses the request's [`Lang`] (handed to the handlers as
/// an extension; a `GET ?lang=` also sets the `cs_lang` cookie), every answer carries the
/// security headers and its language, and an error that is not a page yet (a body over the
/// limit, a wrong method on the stylesheet) becomes one, with its headers (`Allow`,
/// `Connection`) kept.
pub async fn page_edge(mut req: Request, next: Next) -> Response {
    let (lang, set_cookie) = Lang::of_request(req.uri(), req.headers());
    let remember =
        set_cookie.filter(|_| req.method() == Method::GET || req.method() == Method::HEAD);
    req.extensions_mut().insert(lang);
    let mut resp = super::error_in_shape(
        next.run(req).await,
        |t| t.starts_with(b"text/html"),
        |status| status_page(status, lang),
    );
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.code()),
    );
    if let Some(cookie) = remember {
        headers.append(header::SET_COOKIE, cookie);
    }
    resp
}

#[derive(Template)]
#[template(path = "approve.html")]
struct ApprovePage<'a> {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    lead: Vec<Piece>,
    advice: String,
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
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    /// A class of the card: approved, rejected, expired, cancelled, unknown, refused, error.
    kind: &'static str,
    title: String,
    lines: Vec<String>,
}

/// A rendered page as the answer, `text/html` with its length; a page that did not render is
/// logged and answered with a bare 500 page.
pub fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
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

fn notice(
    lang: Lang,
    status: StatusCode,
    kind: &'static str,
    title: &str,
    lines: &[&str],
) -> Response {
    let page = NoticePage {
        lang,
        langs: Lang::ALL,
        t: lang.catalogue(),
        kind,
        title: title.to_owned(),
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
    };
    html(status, page.render())
}

/// Unknown or malformed: one page, the same bytes for both.
async fn no_token(lang: Lang) -> Response {
    unknown_page(lang)
}

fn unknown_page(lang: Lang) -> Response {
    let t = lang.catalogue();
    notice(
        lang,
        StatusCode::NOT_FOUND,
        "unknown",
        t.link_invalid_title,
        &[t.link_invalid_line, t.link_invalid_again],
    )
}

fn unavailable_page(lang: Lang) -> Response {
    let t = lang.catalogue();
    notice(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        "error",
        t.unavailable_title,
        &[t.unavailable_line],
    )
}

fn refused_page(why: Forged, lang: Lang) -> Response {
    // Debug, not warn: anyone can send these, and a warning each would let them fill the log.
    tracing::debug!(
        reason = why.as_str(),
        "approval POST refused as a possible forgery"
    );
    let t = lang.catalogue();
    notice(
        lang,
        StatusCode::FORBIDDEN,
        "refused",
        t.refused_title,
        &[t.refused_line],
    )
}

/// The generic page of an error status no handler wrote a page for.
pub fn status_page(status: StatusCode, lang: Lang) -> Response {
    let t = lang.catalogue();
    let (title, line) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (t.status_too_large_title, t.status_too_large_line),
        StatusCode::METHOD_NOT_ALLOWED => (t.status_method_title, t.status_method_line),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (t.status_media_type_title, t.status_request_line),
        StatusCode::BAD_REQUEST => (t.status_bad_request_title, t.status_request_line),
        StatusCode::NOT_FOUND => (t.status_not_found_title, t.status_request_line),
        s if s.is_server_error() => (t.status_server_title, t.status_server_line),
        _ => (t.status_other_title, t.status_request_line),
    };
    notice(lang, status, "error", title, &[line])
}

/// The page of a request that is no longer pending.
fn final_page(
    request: &ApprovalRequest,
    state: ApprovalState,
    status: StatusCode,
    lang: Lang,
) -> Response {
    let t = lang.catalogue();
    let who = who(request);
    let values = |time: Timestamp| {
        let time = Shown::of(time).shown;
        move |text: &str| {
            fill(
                text,
                &[
                    ("who", &who),
                    ("application", &request.application),
                    ("time", &time),
                ],
            )
        }
    };
    if state == ApprovalState::Expired {
        let line = values(request.expires_at)(t.link_expired_line);
        return notice(
            lang,
            StatusCode::GONE,
            "expired",
            t.link_expired_title,
            &[&line, t.link_expired_again],
        );
    }
    let (kind, title, line) = match state {
        ApprovalState::Approved => (
            "approved",
            t.already_approved_title,
            t.already_approved_line,
        ),
        ApprovalState::Rejected => (
            "rejected",
            t.already_rejected_title,
            t.already_rejected_line,
        ),
        _ => (
            "cancelled",
            t.already_cancelled_title,
            t.already_cancelled_line,
        ),
    };
    let line = values(request.decided_at.unwrap_or(request.expires_at))(line);
    notice(lang, status, kind, title, &[&line])
}

fn who(request: &ApprovalRequest) -> String {
    let username = one_line(&request.username);
    match &request.display_name {
        Some(name) if name != &request.username => format!("{} ({username})", one_line(name)),
        _ => username,
    }
}

async fn show(State(s): State<ApiState>, lang: Lang, Path(token): Path<String>) -> Response {
    let Ok(approvals) = approvals(&s) else {
        return unknown_page(lang);
    };
    let view = match approvals.login.approval_view(&token).await {
        Ok(view) => view,
        Err(AuthError::UnknownLogin) => return unknown_page(lang),
        Err(e) => {
            tracing::warn!(error = %e, "an approval page could not be read");
            return unavailable_page(lang);
        }
    };
    let r = &view.request;
    if view.state != ApprovalState::Pending {
        return final_page(r, view.state, StatusCode::OK, lang);
    }
    // Values from a directory, shown as one short line (no line breaks or direction
    // overrides that would rearrange the sentence around them), as in the manager's message.
    let display_name = one_line(r.display_name.as_deref().unwrap_or(&r.username));
    let username = one_line(&r.username);
    let application = one_line(&r.application);
    let t = lang.catalogue();
    let page = ApprovePage {
        lang,
        langs: Lang::ALL,
        t,
        lead: pieces(
            t.approve_lead,
            &[("user", &display_name), ("application", &application)],
        ),
        advice: fill(t.approve_advice, &[("user", &display_name)]),
        display_name: &display_name,
        username: &username,
        application: &application,
        client: r.client.as_deref().unwrap_or(t.unknown_client),
        asked_at: Shown::of(r.created_at),
        valid_until: Shown::of(r.expires_at),
        csrf: approvals.csrf.token_for(&token),
    };
    html(StatusCode::OK, page.render())
}

/// GET's headers, no body.
async fn head(state: State<ApiState>, lang: Lang, token: Path<String>) -> Response {
    let (parts, _) = show(state, lang, token).await.into_parts();
    Response::from_parts(parts, Body::empty())
}

async fn options() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    resp
}

async fn other_method(lang: Lang) -> Response {
    let mut resp = status_page(StatusCode::METHOD_NOT_ALLOWED, lang);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    resp
}

async fn stylesheet() -> Response {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

async fn waiting_script() -> Response {
    asset(WAITING_SCRIPT, "application/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `application/x-www-form-urlencoded`, as the page's form sends it.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
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
    lang: Lang,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(approvals) = approvals(&s) else {
        return unknown_page(lang);
    };
    if body.len() > MAX_FORM {
        return status_page(StatusCode::PAYLOAD_TOO_LARGE, lang);
    }
    if let Err(why) = csrf::check_headers(&headers, &approvals.own_origins) {
        return refused_page(why, lang);
    }
    if !is_form(&headers) {
        return status_page(StatusCode::UNSUPPORTED_MEDIA_TYPE, lang);
    }
    let form = read_form(&body);
    if form.repeated {
        return status_page(StatusCode::BAD_REQUEST, lang);
    }
    if let Err(why) = csrf::check_field(&approvals.csrf, &token, form.csrf.as_deref()) {
        return refused_page(why, lang);
    }
    let approve = match form.decision.as_deref() {
        Some("approve") => true,
        Some("reject") => false,
        _ => return status_page(StatusCode::BAD_REQUEST, lang),
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
        Ok(Ok(DecisionResult::Decided(r))) => decided_page(&r, lang),
        Ok(Ok(DecisionResult::AlreadyFinal(r))) => {
            final_page(&r, r.state, StatusCode::CONFLICT, lang)
        }
        Ok(Err(AuthError::UnknownLogin)) => unknown_page(lang),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "an approval decision failed");
            unavailable_page(lang)
        }
        Err(_) => unavailable_page(lang),
    }
}

/// The answer to the decision that was recorded.
fn decided_page(r: &ApprovalRequest, lang: Lang) -> Response {
    let t = lang.catalogue();
    let who = who(r);
    let values = [
        ("who", who.as_str()),
        ("application", r.application.as_str()),
    ];
    if r.state == ApprovalState::Approved {
        let line = fill(t.decided_approved_line, &values);
        notice(
            lang,
            StatusCode::OK,
            "approved",
            t.decided_approved_title,
            &[&line],
        )
    } else {
        let line = fill(t.decided_rejected_line, &values);
        notice(
            lang,
            StatusCode::OK,
            "rejected",
            t.decided_rejected_title,
            &[&line, t.decided_rejected_advice],
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
    fn forms_may_be_let_redirect_to_the_named_origins_only() {
        let csp =
            csp_with_form_targets(&["https://app.example.com", "http://127.0.0.1:8080"]).unwrap();
        let csp = csp.to_str().unwrap();
        assert!(
            csp.contains("; form-action 'self' https://app.example.com http://127.0.0.1:8080; "),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'; script-src 'self'; connect-src 'self';"));
        assert_eq!(csp_with_form_targets(&[]).unwrap().to_str().unwrap(), CSP);
        for odd in [
            "https://a.example/cb",
            "https://a.example; script-src *",
            "ftp://a.example",
            "https://",
            "*",
        ] {
            assert!(csp_with_form_targets(&[odd]).is_none(), "{odd}");
        }
    }

    async fn through_the_edge(req: Request, handler_csp: bool) -> Response {
        use tower::ServiceExt;
        let handler = move |lang: Lang| async move {
            let mut resp = html(StatusCode::OK, Ok(format!("<p>{lang}</p>")));
            if let Some(csp) = csp_with_form_targets(&["https://rp.example"])
                && handler_csp
            {
                resp.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, csp);
            }
            resp
        };
        Router::new()
            .route("/flow/x", get(handler).post(handler))
            .layer(axum::middleware::from_fn(page_edge))
            .oneshot(req)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_edge_chooses_the_language_and_keeps_a_handlers_own_csp() {
        let get_tr = Request::get("/flow/x?lang=tr").body(Body::empty()).unwrap();
        let resp = through_the_edge(get_tr, false).await;
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_LANGUAGE], "tr");
        assert_eq!(
            h[header::SET_COOKIE],
            "cs_lang=tr; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
        );
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");

        // A POST with `?lang=` is answered in it but sets nothing; a handler's CSP stays.
        let post = Request::post("/flow/x?lang=tr")
            .header(header::ACCEPT_LANGUAGE, "en")
            .body(Body::empty())
            .unwrap();
        let resp = through_the_edge(post, true).await;
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_LANGUAGE], "tr");
        assert!(h.get(header::SET_COOKIE).is_none());
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("form-action 'self' https://rp.example;")
        );

        // An error the edge turns into a page speaks the request's language.
        let put = Request::put("/flow/x")
            .header(header::COOKIE, "cs_lang=tr")
            .body(Body::empty())
            .unwrap();
        let resp = through_the_edge(put, false).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("<html lang=\"tr\">"), "{body}");
        assert!(body.contains("Bu istek türü kabul edilmiyor"), "{body}");
    }
}
