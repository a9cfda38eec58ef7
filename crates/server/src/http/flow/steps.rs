//! The steps of a hosted sign-in, each a handler of `/flow/{id}`: show where the user is,
//! take the password, wait for the manager, cancel the wait, go back to the client; and what
//! every step shares (the flow from its cookie, the form checks, issuing the code). The OTP
//! step is [`super::otp`], the wait's event stream [`super::events`]. Refusals are one
//! message whatever the reason (the audit keeps the real one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use countersign_core::application::{Application, AuthMethod};
use countersign_core::approval::ApprovalState;
use countersign_core::approval::DecidedBy;
use countersign_core::attempt::Caller;
use countersign_core::identity::Identity;
use countersign_core::login::{Admitted, LoginOutcome, LoginStatus};
use countersign_core::oidc::{
    ACR_APPROVAL, ACR_INFORMATION, ACR_NONE, AMR_MANAGER, AMR_PASSWORD, Authentication, Subject,
};
use countersign_core::{AuthError, Denial, Dn, Secret, Timestamp, User};

use super::cookie::{Flow, Step};
use super::{
    MAX_FORM, clear_flow_cookie, html, language, oidc, outcome_page, read_flow, see_other,
    set_flow_cookie,
};
use crate::http::api::{ApiState, caller};
use crate::http::body::MAX_BODY;
use crate::http::i18n::Lang;
use crate::http::oidc::OidcApi;
use crate::http::views::{FormError, Outcome, OutcomeKind, SignIn, Waiting};

/// How long past the approval link's expiry a waiting sign-in's cookie lives.
const WAIT_MARGIN_MS: i64 = 5 * 60 * 1000;

/// What every step starts from: the provider, the flow from its cookie, its application,
/// the language.
pub(super) struct Here {
    pub(super) o: Arc<OidcApi>,
    pub(super) flow: Flow,
    pub(super) app: Application,
    pub(super) lang: Lang,
    /// Who is asking (the client address, for rate limits and the audit).
    pub(super) caller: Caller,
}

/// The flow of the request, or the page that says the sign-in is gone.
/// (The page is boxed: a `Response` is large for an `Err`.)
fn here(
    s: &ApiState,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    id: &str,
) -> Result<Here, Box<Response>> {
    let (lang, _) = language(uri, headers);
    // No flow, so no client to go back to: the page says to start again from the application.
    let gone = || {
        let mut page = Outcome::standard(OutcomeKind::Error, id, "", lang);
        page.back.clear();
        Box::new(html(StatusCode::NOT_FOUND, page.render(lang)))
    };
    let o = oidc(s).ok_or_else(gone)?;
    let flow = read_flow(&o, headers, id).ok_or_else(gone)?;
    // The registration as it is now: a client or redirect URI the operator removed (or a
    // client made public since, which needs PKCE) ends the sign-in.
    let app = o
        .applications
        .by_name(&flow.request.client_id)
        .filter(|a| {
            a.oidc.as_ref().is_some_and(|c| {
                c.allows_redirect(&flow.request.redirect_uri)
                    && (!c.is_public() || flow.request.code_challenge.is_some())
            })
        })
        .cloned()
        .ok_or_else(gone)?;
    // The client's `ui_locales` counts when the user chose nothing (no `?lang=`, no cookie).
    let hint = flow.request.lang.as_deref().and_then(Lang::parse);
    let lang = super::language_with_hint(uri, headers, hint).unwrap_or(lang);
    Ok(Here {
        o,
        flow,
        app,
        lang,
        caller: caller(peer),
    })
}

/// A form POST: the CSRF checks, then its fields.
fn form(
    h: &Here,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Box<Response>> {
    let refused = || {
        Box::new(outcome_page(
            StatusCode::FORBIDDEN,
            OutcomeKind::Error,
            &h.flow.id,
            &h.app.name,
            h.lang,
        ))
    };
    let page = |status| Box::new(crate::http::pages::status_page(status, h.lang));
    if body.len() > MAX_FORM {
        return Err(page(StatusCode::PAYLOAD_TOO_LARGE));
    }
    if !crate::http::pages::is_form(headers) {
        return Err(page(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if crate::http::csrf::check_headers(headers, &h.o.own_origins).is_err() {
        return Err(refused());
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    // Each field once: which of two usernames would be meant?
    let mut names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(page(StatusCode::BAD_REQUEST));
    }
    let csrf = field(&fields, "csrf").unwrap_or_default();
    if !h.o.flow_key.csrf_ok(&h.flow.id, &csrf) {
        return Err(refused());
    }
    Ok(fields)
}

/// A form's fields, in order.
pub(super) type Fields = Vec<(String, String)>;

/// A flow page's request (GET): the flow from its cookie; otherwise the page that says the
/// sign-in is gone is the answer.
pub(super) struct Current(pub(super) Here);

impl FromRequestParts<ApiState> for Current {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .map(Extension);
        here(s, &parts.uri, &parts.headers, peer, &id)
            .map(Current)
            .map_err(|page| *page)
    }
}

/// A form POST to a flow: the flow from its cookie, then the form's checks and fields.
pub(super) struct Posted {
    pub(super) h: Here,
    pub(super) fields: Fields,
}

impl FromRequest<ApiState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, s: &ApiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Current(h) = Current::from_request_parts(&mut parts, s).await?;
        // The body was read whole (within its limit) by the layer in front.
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| crate::http::pages::status_page(StatusCode::BAD_REQUEST, h.lang))?;
        let fields = form(&h, &parts.headers, &body).map_err(|page| *page)?;
        Ok(Posted { h, fields })
    }
}

pub(super) fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// The flow with a new step, and the redirect to its page.
pub(super) fn advance(h: &Here, step: Step) -> Response {
    advance_until(h, step, h.flow.expires)
}

/// As [`advance`], the flow now valid until `expires` (ms).
pub(super) fn advance_until(h: &Here, step: Step, expires: i64) -> Response {
    let flow = Flow {
        step,
        expires,
        ..h.flow.clone()
    };
    let mut resp = see_other(&format!("/flow/{}", flow.id));
    set_flow_cookie(&mut resp, &h.o, &flow);
    resp
}

pub async fn show(Current(h): Current) -> Response {
    // (`?lang=`'s cookie is set by the page edge.)
    match h.flow.step.clone() {
        Step::SignIn => sign_in_page(&h, h.flow.request.login_hint.as_deref().unwrap_or(""), None),
        Step::Otp { dn, sent, .. } => match sent {
            None => super::otp::pick_page(&h, &dn, None).await,
            Some(sent) => super::otp::code_page(&h, &sent, None),
        },
        Step::Waiting {
            login,
            auth_time,
            amr,
        } => waiting(&h, &login, auth_time, amr).await,
    }
}

/// A page whose form may end in a redirect to the client. Chromium applies CSP `form-action`
/// to the redirects after a submission, so the client's redirect origin is allowed there too.
/// Always 200, a refused form included: 401 would need a `WWW-Authenticate` challenge
/// (RFC 9110 §15.5.2), which a form is not.
pub(super) fn form_page(h: &Here, page: Result<String, askama::Error>) -> Response {
    let mut resp = html(StatusCode::OK, page);
    let origin = url::Url::parse(&h.flow.request.redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization());
    if let Some(csp) = origin.and_then(|o| crate::http::pages::csp_with_form_targets(&[&o])) {
        resp.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    resp
}

fn sign_in_page(h: &Here, username: &str, error: Option<FormError>) -> Response {
    let csrf = h.o.flow_key.csrf(&h.flow.id);
    let page = SignIn {
        flow: &h.flow.id,
        csrf: &csrf,
        application: &h.app.name,
        username,
        error,
    };
    form_page(h, page.render(h.lang))
}

/// What a refused form says: one message for every wrong credential.
pub(super) fn form_error(e: &AuthError) -> FormError {
    match e {
        AuthError::RateLimited { .. } => FormError::TooManyAttempts,
        AuthError::Unavailable(_) => FormError::Unavailable,
        AuthError::NotDelivered { .. } => FormError::NotSent,
        _ => FormError::Refused,
    }
}

/// The identity a person typed: `dn:` and `u:` forms as they are, anything else a username.
fn identity_of(typed: &str) -> String {
    let typed = typed.trim();
    if typed.starts_with("dn:") || typed.starts_with("u:") {
        typed.to_owned()
    } else {
        format!("u:{typed}")
    }
}

pub async fn password(State(s): State<ApiState>, Posted { h, fields }: Posted) -> Response {
    if h.flow.step != Step::SignIn {
        return see_other(&format!("/flow/{}", h.flow.id));
    }
    let username = field(&fields, "username").unwrap_or_default();
    let password = Secret::new(field(&fields, "password").unwrap_or_default());
    let caller = h.caller.clone();
    let identity = identity_of(&username);
    let now = h.o.service.clock.now().0;
    // An application that may not take the password alone needs a delivered OTP after it.
    if !h.app.allows(AuthMethod::Password) && h.app.allows(AuthMethod::DeliveredOtp) {
        let (login, app, caller) = (h.o.login.clone(), h.app.clone(), caller.clone());
        let (identity, password) = (identity.clone(), password.clone());
        let checked = s
            .detached(async move {
                login
                    .password_step(&app, &identity, &password, &caller)
                    .await
            })
            .await
            .unwrap_or_else(|_| Err(AuthError::Unavailable("timed out".into())));
        return match checked {
            Ok(user) => advance(
                &h,
                Step::Otp {
                    dn: user.dn.to_string(),
                    username: user.username,
                    auth_time: now,
                    sent: None,
                },
            ),
            Err(e) => sign_in_page(&h, &username, Some(form_error(&e))),
        };
    }
    let login = h.o.login.clone();
    let app = h.app.clone();
    let result = s
        .detached(async move {
            login
                .login_password(&app, &identity, &password, &caller)
                .await
        })
        .await;
    match result {
        Ok(Ok(outcome)) => finish(&h, outcome, now, vec![AMR_PASSWORD.into()]).await,
        Ok(Err(AuthError::Denied(denial))) => denied_page(&h, denial),
        Ok(Err(e)) => sign_in_page(&h, &username, Some(form_error(&e))),
        Err(_) => sign_in_page(&h, &username, Some(FormError::Unavailable)),
    }
}

/// After the user's part: straight back to the client, or the wait for the manager.
pub(super) async fn finish(
    h: &Here,
    outcome: LoginOutcome,
    auth_time: i64,
    mut amr: Vec<String>,
) -> Response {
    match outcome {
        LoginOutcome::Granted { user, admitted } => {
            let acr = match admitted {
                Admitted::Directly => ACR_NONE,
                Admitted::Informed => ACR_INFORMATION,
                Admitted::WithinGrace => {
                    amr.push(AMR_MANAGER.into());
                    ACR_APPROVAL
                }
            };
            let authentication = Authentication {
                subject: Subject::of(&user),
                auth_time: Timestamp(auth_time),
                amr,
                acr: acr.into(),
            };
            issue(h, authentication).await
        }
        // The wait may outlast the sign-in's own time: the cookie lives until the link
        // expires, and a little more so the expiry itself is shown.
        LoginOutcome::Pending { login, expires_at } => advance_until(
            h,
            Step::Waiting {
                login,
                auth_time,
                amr,
            },
            h.flow.expires.max(expires_at.0 + WAIT_MARGIN_MS),
        ),
    }
}

/// The code, and the browser sent back to the client with it.
async fn issue(h: &Here, authentication: Authentication) -> Response {
    let request = h.flow.request.authorize_request();
    match h
        .o
        .service
        .issue_code(
            &request,
            &h.flow.id,
            Timestamp(h.flow.expires),
            authentication,
        )
        .await
    {
        Ok(to) => {
            let mut resp = see_other(&to);
            clear_flow_cookie(&mut resp, &h.o, &h.flow.id);
            resp
        }
        Err(countersign_core::ports::StoreError::Conflict(_)) => outcome_page(
            StatusCode::CONFLICT,
            OutcomeKind::Used,
            &h.flow.id,
            &h.app.name,
            h.lang,
        ),
        Err(e) => {
            // Told to the client (RFC 6749 §4.1.2.1), which can start again.
            tracing::warn!(error = %e, "an authorization code could not be stored");
            let to = h.o.service.error_redirect(
                &h.flow.request.authorize_request(),
                "temporarily_unavailable",
                "the sign-in could not be completed; try again",
            );
            let mut resp = see_other(&to);
            clear_flow_cookie(&mut resp, &h.o, &h.flow.id);
            resp
        }
    }
}

pub(super) fn denied_page(h: &Here, denial: Denial) -> Response {
    let kind = match denial {
        Denial::Rejected => OutcomeKind::Rejected,
        Denial::Expired => OutcomeKind::Expired,
        Denial::Cancelled => OutcomeKind::Cancelled,
        other => return refused_page(h, other),
    };
    outcome_page(StatusCode::OK, kind, &h.flow.id, &h.app.name, h.lang)
}

/// A sign-in the policies or the approval step refused, saying which kind of refusal (the
/// user's password was right by then, so there is nothing to hide from them).
fn refused_page(h: &Here, denial: Denial) -> Response {
    let t = h.lang.catalogue();
    let line = match denial {
        Denial::NoMatchingPolicy | Denial::MethodNotAllowed => t.outcome_not_allowed_line,
        Denial::ApproverUnreachable | Denial::ApprovalNotSent => t.outcome_unreachable_line,
        Denial::PendingElsewhere => t.outcome_elsewhere_line,
        _ => t.outcome_error_line,
    };
    let mut page = Outcome::standard(OutcomeKind::Error, &h.flow.id, &h.app.name, h.lang);
    page.title = t.outcome_denied_title.to_owned();
    page.lines = vec![crate::http::i18n::fill(
        line,
        &[("application", &h.app.name)],
    )];
    html(StatusCode::FORBIDDEN, page.render(h.lang))
}

/// The waiting step: still pending (the page), granted (the code), or over (the outcome).
async fn waiting(h: &Here, login: &str, auth_time: i64, mut amr: Vec<String>) -> Response {
    let status = h.o.login.status(&h.app.name, login).await;
    match status {
        Ok(LoginStatus::Pending { expires_at }) => {
            let approver = approver_shown(h, login).await;
            let csrf = h.o.flow_key.csrf(&h.flow.id);
            let page = Waiting {
                flow: &h.flow.id,
                csrf: &csrf,
                approver: &approver,
                expires_at,
                now: h.o.service.clock.now(),
            };
            html(StatusCode::OK, page.render(h.lang))
        }
        Ok(LoginStatus::Granted { user_dn, .. }) => {
            // The user the request was made for, in the same directory (a namesake DN in an
            // earlier directory of the chain is not them).
            let request = h.o.login.approvals.approval(login).await.ok().flatten();
            let user = match (user_of(h, &user_dn).await, request) {
                (Some(u), Some(r)) if u.key() == r.user => Some(u),
                _ => None,
            };
            let Some(user) = user else {
                return outcome_page(
                    StatusCode::FORBIDDEN,
                    OutcomeKind::Error,
                    &h.flow.id,
                    &h.app.name,
                    h.lang,
                );
            };
            amr.push(AMR_MANAGER.into());
            let authentication = Authentication {
                subject: Subject::of(&user),
                auth_time: Timestamp(auth_time),
                amr,
                acr: ACR_APPROVAL.into(),
            };
            issue(h, authentication).await
        }
        Ok(LoginStatus::Denied(denial)) => denied_page(h, denial),
        Err(e) => {
            tracing::debug!(error = %e, "a waiting sign-in could not be read");
            outcome_page(
                StatusCode::FORBIDDEN,
                OutcomeKind::Error,
                &h.flow.id,
                &h.app.name,
                h.lang,
            )
        }
    }
}

/// The user as the directory now describes them (name and address for the claims).
pub(super) async fn user_of(h: &Here, dn: &str) -> Option<User> {
    let identity = Identity::Dn(Dn::new(dn));
    h.o.login
        .directories
        .find_user(&identity)
        .await
        .ok()
        .flatten()
}

/// Who was asked, masked as Get Supported masks addresses.
async fn approver_shown(h: &Here, login: &str) -> String {
    let request = h.o.login.approvals.approval(login).await.ok().flatten();
    match request {
        Some(r) => mask(&r.recipient),
        None => String::new(),
    }
}

fn mask(address: &str) -> String {
    use countersign_core::mechanism::Channel;
    if address.contains('@') {
        Channel::Email.mask(address)
    } else {
        Channel::Sms.mask(address)
    }
}

pub async fn cancel(State(s): State<ApiState>, Posted { h, .. }: Posted) -> Response {
    if let Step::Waiting { login, .. } = &h.flow.step {
        let by = DecidedBy {
            channel: "sign-in page".to_owned(),
            address: h.caller.client.clone(),
            user_agent: None,
            operator: None,
        };
        let (service, login) = (h.o.login.clone(), login.clone());
        let _ = s
            .detached(async move { service.decide(&login, ApprovalState::Cancelled, by).await })
            .await;
    }
    see_other(&format!("/flow/{}", h.flow.id))
}

/// Back to the client without a code: `access_denied` (RFC 6749 §4.1.2.1).
pub async fn back(Current(h): Current) -> Response {
    // A GET changes nothing: a sign-in still waiting for the manager is not abandoned by a
    // link, only by the waiting page's cancel button (which withdraws the request).
    // An approved one is not refused either (the client would hear "denied" while the
    // sign-in's page could still fetch its code): it goes on to the client with the code.
    if let Step::Waiting { login, .. } = &h.flow.step
        && matches!(
            h.o.login.status(&h.app.name, login).await,
            Ok(LoginStatus::Pending { .. } | LoginStatus::Granted { .. })
        )
    {
        return see_other(&format!("/flow/{}", h.flow.id));
    }
    let to = h.o.service.error_redirect(
        &h.flow.request.authorize_request(),
        "access_denied",
        "the sign-in was not completed",
    );
    let mut resp = see_other(&to);
    clear_flow_cookie(&mut resp, &h.o, &h.flow.id);
    resp
}
