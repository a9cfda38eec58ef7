//! The browser side of the OpenID Connect provider: `/authorize` (OpenID Connect Core
//! §3.1.2) and the hosted sign-in under `/flow/{id}`: password, the delivered OTP where the
//! application requires one, the wait for the manager (live over SSE, a refresh without
//! script), and the outcome. The sign-in's state is the signed cookie of [`cookie`]; every
//! form POST passes the header checks of [`super::csrf`] and carries the flow's CSRF field.
//! A `GET /flow/{id}` shows the step the user is at; once the login is granted it issues the
//! code and sends the browser back to the client (as `/authorize` itself would with a session).

pub mod cookie;
mod events;
mod otp;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use countersign_core::oidc::authorize::{self, AuthorizeError};

use self::cookie::{Flow, Step};
use super::api::ApiState;
use super::body::read_whole;
use super::i18n::Lang;
use super::oidc::OidcApi;
use super::views::{Outcome, OutcomeKind};

pub use cookie::FlowKey;

/// Forms here are short: username and password, a mechanism, a code.
const MAX_FORM: usize = 4 * 1024;

pub fn routes(body_read_timeout: Duration) -> Router<ApiState> {
    Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/flow/{id}", get(steps::show))
        .route("/flow/{id}/password", axum::routing::post(steps::password))
        .route("/flow/{id}/otp/send", axum::routing::post(otp::send))
        .route("/flow/{id}/otp", axum::routing::post(otp::verify))
        .route("/flow/{id}/cancel", axum::routing::post(steps::cancel))
        .route("/flow/{id}/back", get(steps::back))
        .route("/flow/{id}/events", get(events::events))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(super::pages::page_edge))
}

/// The page's language, and the `cs_lang` cookie to set when `?lang=` chose it.
pub(super) fn language(uri: &Uri, headers: &HeaderMap) -> (Lang, Option<HeaderValue>) {
    Lang::of_request(uri, headers)
}

/// The client's language hint (`ui_locales`), when the user chose no language themselves
/// (no `?lang=`, no `cs_lang` cookie): it comes before `Accept-Language`.
pub(super) fn language_with_hint(
    uri: &Uri,
    headers: &HeaderMap,
    hint: Option<Lang>,
) -> Option<Lang> {
    let hint = hint?;
    let by_query = uri.query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(n, v)| n == "lang" && Lang::parse(&v).is_some())
    });
    let by_cookie = super::i18n::cookie_value(headers, super::i18n::LANG_COOKIE)
        .is_some_and(|c| Lang::parse(&c).is_some());
    (!by_query && !by_cookie).then_some(hint)
}

pub(super) fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    super::pages::html(status, page)
}

/// An outcome page; `set_lang` is the language cookie to add.
pub(super) fn outcome_page(
    status: StatusCode,
    kind: OutcomeKind,
    flow: &str,
    application: &str,
    lang: Lang,
) -> Response {
    html(
        status,
        Outcome::standard(kind, flow, application, lang).render(lang),
    )
}

/// A page for a request whose client or redirect URI is wrong: never redirected.
fn bad_request_page(why: &str, lang: Lang) -> Response {
    let t = lang.catalogue();
    let page = Outcome {
        kind: OutcomeKind::Error,
        title: t.outcome_error_title.to_owned(),
        lines: vec![t.outcome_error_line.to_owned(), why.to_owned()],
        back: String::new(),
    };
    html(StatusCode::BAD_REQUEST, page.render(lang))
}

pub(super) fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(super) fn oidc(s: &ApiState) -> Option<Arc<OidcApi>> {
    s.oidc.clone()
}

async fn authorize_get(
    State(s): State<ApiState>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes());
    authorize(&s, &uri, &headers, params)
}

async fn authorize_post(
    State(s): State<ApiState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_FORM || !super::pages::is_form(&headers) {
        let (lang, _) = language(&uri, &headers);
        return bad_request_page("the request must be a form of at most 4 KiB", lang);
    }
    authorize(&s, &uri, &headers, parse_params(&body))
}

fn parse_params(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// Checks the request; a good one starts a flow: a new id, its cookie, and the sign-in page.
fn authorize(
    s: &ApiState,
    uri: &Uri,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Response {
    let (lang, _) = language(uri, headers);
    let Some(o) = oidc(s) else {
        return bad_request_page("OpenID Connect is not configured", lang);
    };
    let request = match authorize::check(&params, &o.applications) {
        Ok(r) => r,
        Err(AuthorizeError::NoRedirect(why)) => return bad_request_page(why.as_str(), lang),
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        }) => {
            let to = authorize::error_redirect(
                &redirect_uri,
                state.as_deref(),
                &o.service.issuer,
                error,
                &description,
            );
            return see_other(&to);
        }
    };
    let id = countersign_core::otp::generator::random_hex(o.service.random.as_ref(), 16);
    let now = o.service.clock.now();
    let flow = Flow {
        id: id.clone(),
        expires: now.plus(o.sign_in_lifetime).0,
        request: cookie::Request::of(&request),
        step: Step::SignIn,
    };
    // Browsers keep 4 KiB per cookie: a request whose state (JSON-escaped) would not fit is
    // refused now rather than lost at the next page.
    if o.flow_key.seal(&flow).len() > cookie::MAX_COOKIE - 256 {
        let to = authorize::error_redirect(
            &request.redirect_uri,
            None,
            &o.service.issuer,
            "invalid_request",
            "the request's state, nonce and login_hint are too large",
        );
        return see_other(&to);
    }
    let mut resp = see_other(&format!("/flow/{id}"));
    set_flow_cookie(&mut resp, &o, &flow);
    resp
}

/// Adds the flow's cookie, valid until the flow's expiry.
pub(super) fn set_flow_cookie(resp: &mut Response, o: &OidcApi, flow: &Flow) {
    let left = (flow.expires - o.service.clock.now().0).max(0) / 1000;
    let value = cookie::set_cookie(
        &flow.id,
        &o.flow_key.seal(flow),
        u64::try_from(left).unwrap_or(0),
        o.secure_cookies,
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Removes the flow's cookie (the sign-in is over).
pub(super) fn clear_flow_cookie(resp: &mut Response, o: &OidcApi, id: &str) {
    let value = cookie::set_cookie(id, "", 0, o.secure_cookies);
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The flow of `/flow/{id}` from its cookie.
pub(super) fn read_flow(o: &OidcApi, headers: &HeaderMap, id: &str) -> Option<Flow> {
    if !cookie::is_flow_id(id) {
        return None;
    }
    let now = o.service.clock.now();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, _)| *name == cookie::COOKIE)
        .find_map(|(_, value)| o.flow_key.open(value, id, now))
}
