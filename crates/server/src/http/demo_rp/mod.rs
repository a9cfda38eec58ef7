//! The demo's relying party, served by countersign itself and only under `countersign demo`
//! (the routes exist only in an [`ApiState`] built `with_demo_rp`): a newcomer clicks through
//! the whole OpenID Connect code flow in a browser. `GET /demo` is a start page; its button
//! (`POST /demo/login`) begins the flow with a fresh `state`, `nonce` and PKCE S256 verifier
//! kept in the cookie of [`session`], then 303 to `/authorize`. `GET /demo/callback` checks
//! `state` (and RFC 9207's `iss`), redeems the code at the provider's `/token` over real HTTP
//! and verifies the ID token against `/jwks` ([`verify`]), then shows the claims; an `error=`
//! answer and every failure get a page of their own saying what went wrong, with a way to try
//! again. The pages pass [`super::pages::page_edge`] like every other page.

pub mod session;
pub mod verify;

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use countersign_core::crypto::ct_eq;
use countersign_core::{Secret, Timestamp};

use super::api::ApiState;
use super::body::read_whole;
use super::i18n::{Catalogue, Lang, Piece, fill, pieces};
use super::pages::html;
use super::views::Shown;
use session::{Session, SessionKey};
use verify::{Failure, Verified};

/// How long the relying party waits for the provider's `/token` and `/jwks`.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The demo relying party: a confidential client of this very server.
pub struct DemoRp {
    /// The provider's issuer, which is also where the relying party reaches it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `{issuer}/demo/callback`, as registered.
    pub redirect_uri: String,
    pub http: reqwest::Client,
    key: SessionKey,
    secure_cookies: bool,
    /// The issuer's origin: where the start form comes from.
    own_origins: Vec<String>,
}

impl DemoRp {
    /// The relying party of client `client_id` at `issuer` (its redirect URI is
    /// `{issuer}/demo/callback`), with a cookie key of its own drawn now.
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> Result<DemoRp, reqwest::Error> {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let own_origins = url::Url::parse(&issuer)
            .map(|u| vec![u.origin().ascii_serialization()])
            .unwrap_or_default();
        Ok(DemoRp {
            redirect_uri: format!("{issuer}/demo/callback"),
            secure_cookies: issuer.starts_with("https://"),
            issuer,
            client_id: client_id.to_owned(),
            client_secret,
            http,
            key: SessionKey::random(),
            own_origins,
        })
    }
}

pub fn routes(body_read_timeout: Duration) -> Router<ApiState> {
    Router::new()
        .route("/demo", get(start_page))
        .route("/demo/login", post(login))
        .route("/demo/callback", get(callback))
        .layer(axum::middleware::from_fn_with_state(
            body_read_timeout,
            read_whole,
        ))
        .layer(axum::middleware::from_fn(super::pages::page_edge))
}

#[derive(Template)]
#[template(path = "demo_start.html")]
struct StartPage {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
}

/// One line of the claims' list.
struct ClaimRow {
    /// The claim's name (the `dd`'s id is `claim-{name}`).
    name: &'static str,
    label: &'static str,
    value: Option<String>,
    time: Option<Shown>,
}

#[derive(Template)]
#[template(path = "demo_claims.html")]
struct ClaimsPage {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    lead: Vec<Piece>,
    claims: Vec<ClaimRow>,
}

#[derive(Template)]
#[template(path = "demo_failed.html")]
struct FailedPage {
    lang: Lang,
    langs: [Lang; 2],
    t: &'static Catalogue,
    lines: Vec<String>,
    /// OAuth's error code, when there is one.
    code: Option<String>,
    description: Option<String>,
}

async fn start_page(lang: Lang) -> Response {
    let page = StartPage {
        lang,
        langs: Lang::ALL,
        t: lang.catalogue(),
    };
    html(StatusCode::OK, page.render())
}

fn demo_rp(s: &ApiState) -> Option<&DemoRp> {
    s.demo_rp.as_deref()
}

/// The start button: a new sign-in, remembered in the cookie, and off to `/authorize`.
async fn login(State(s): State<ApiState>, lang: Lang, headers: HeaderMap) -> Response {
    let Some(rp) = demo_rp(&s) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Another site may not start a sign-in in this browser (login CSRF).
    if super::csrf::check_headers(&headers, &rp.own_origins).is_err() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let session = Session::fresh();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &rp.client_id)
        .append_pair("redirect_uri", &rp.redirect_uri)
        .append_pair("scope", "openid profile email")
        .append_pair("state", &session.state)
        .append_pair("nonce", &session.nonce)
        .append_pair("code_challenge", &session.challenge())
        .append_pair("code_challenge_method", "S256")
        .append_pair("ui_locales", lang.code())
        .finish();
    let mut resp = see_other(&format!("/authorize?{query}"));
    set_session_cookie(&mut resp, rp, Some(&rp.key.seal(&session)));
    resp
}

fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn set_session_cookie(resp: &mut Response, rp: &DemoRp, value: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(value, rp.secure_cookies)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The callback's query, each parameter once (a repeated one counts as absent: RFC 6749 §3.1
/// forbids repeating them).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        let mut found = self.0.iter().filter(|(n, _)| n == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v.as_str()),
            _ => None,
        }
    }
}

async fn callback(
    State(s): State<ApiState>,
    lang: Lang,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(rp) = demo_rp(&s) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = Params(
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect(),
    );
    // The pages' language switch links to `?lang=`: on the callback that is no answer from the
    // provider, so it goes to the start page in that language (the claims are shown once).
    if let Some(chosen) = params.get("lang")
        && ["state", "code", "error"]
            .iter()
            .all(|n| params.get(n).is_none())
    {
        let lang = Lang::parse(chosen).unwrap_or(lang);
        return see_other(&format!("/demo?lang={}", lang.code()));
    }
    let session = session::cookie_values(&headers)
        .iter()
        .find_map(|v| rp.key.open(v));
    let result = complete(rp, session.as_ref(), &params).await;
    // A callback for another sign-in (or a forged one) leaves this browser's sign-in alone;
    // any other answer ends it (the code, if any, was spent).
    let ended = !matches!(result, Err(Failure::NoSession | Failure::State));
    let mut resp = match result {
        Ok(verified) => claims_page(&verified, lang),
        Err(failure) => failed_page(&failure, lang),
    };
    if ended {
        set_session_cookie(&mut resp, rp, None);
    }
    resp
}

/// From the callback to verified claims (OpenID Connect Core §3.1.2.7, §3.1.3.5, §3.1.3.7).
async fn complete(
    rp: &DemoRp,
    session: Option<&Session>,
    params: &Params,
) -> Result<Verified, Failure> {
    let session = session.ok_or(Failure::NoSession)?;
    // RFC 6749 §10.12: the answer must carry the state this browser's sign-in sent.
    let state = params.get("state").unwrap_or_default();
    if !ct_eq(state.as_bytes(), session.state.as_bytes()) {
        return Err(Failure::State);
    }
    // RFC 9207 §2.4: when the provider names itself, it must be the one we asked.
    if params.get("iss").is_some_and(|iss| iss != rp.issuer) {
        return Err(Failure::Issuer);
    }
    if let Some(error) = params.get("error") {
        return Err(Failure::Provider {
            error: error.to_owned(),
            description: params.get("error_description").map(str::to_owned),
        });
    }
    let code = params.get("code").ok_or(Failure::NoCode)?;
    let id_token = verify::exchange(rp, code, &session.verifier).await?;
    let jwks = verify::jwks(rp).await?;
    verify::verify_id_token(&id_token, &jwks, &rp.issuer, &rp.client_id, &session.nonce)
}

fn claims_page(v: &Verified, lang: Lang) -> Response {
    let t = lang.catalogue();
    let c = &v.claims;
    let row = |name, label, value: Option<&String>| ClaimRow {
        name,
        label,
        value: value.cloned(),
        time: None,
    };
    let auth_time = c
        .auth_time
        .map(|secs| Shown::of(Timestamp(secs.saturating_mul(1000))));
    let amr = (!c.amr.is_empty()).then(|| c.amr.join(" "));
    let claims = vec![
        row("sub", t.demo_claim_sub, Some(&c.sub)),
        row("name", t.demo_claim_name, c.name.as_ref()),
        row(
            "preferred_username",
            t.demo_claim_username,
            c.preferred_username.as_ref(),
        ),
        row("email", t.demo_claim_email, c.email.as_ref()),
        ClaimRow {
            name: "auth_time",
            label: t.demo_claim_auth_time,
            value: None,
            time: auth_time,
        },
        row("amr", t.demo_claim_amr, amr.as_ref()),
        row("acr", t.demo_claim_acr, c.acr.as_ref()),
    ];
    let page = ClaimsPage {
        lang,
        langs: Lang::ALL,
        t,
        lead: pieces(t.demo_signed_in_lead, &[("kid", &v.kid)]),
        claims,
    };
    html(StatusCode::OK, page.render())
}

fn failed_page(failure: &Failure, lang: Lang) -> Response {
    let t = lang.catalogue();
    let mut code = None;
    let mut description = None;
    let (status, lines) = match failure {
        Failure::NoSession => (StatusCode::BAD_REQUEST, vec![t.demo_no_session_line.into()]),
        Failure::State => (StatusCode::BAD_REQUEST, vec![t.demo_state_line.into()]),
        Failure::Issuer => (StatusCode::BAD_REQUEST, vec![t.demo_issuer_line.into()]),
        Failure::NoCode => (StatusCode::BAD_REQUEST, vec![t.demo_no_code_line.into()]),
        Failure::Provider {
            error,
            description: d,
        } => {
            code = Some(error.clone());
            description.clone_from(d);
            let mut lines = vec![fill(t.demo_provider_line, &[("error", error)])];
            if error == "access_denied" {
                lines.push(t.demo_denied_line.into());
            }
            (StatusCode::FORBIDDEN, lines)
        }
        Failure::Token {
            error,
            description: d,
        } => {
            code = Some(error.clone());
            description.clone_from(d);
            let line = fill(t.demo_token_line, &[("error", error)]);
            (StatusCode::BAD_GATEWAY, vec![line])
        }
        Failure::Unreachable { endpoint } => {
            let line = fill(t.demo_unreachable_line, &[("endpoint", endpoint)]);
            (StatusCode::BAD_GATEWAY, vec![line])
        }
        Failure::IdToken(why) => {
            code = Some((*why).to_owned());
            let line = fill(t.demo_id_token_line, &[("why", why)]);
            (StatusCode::BAD_GATEWAY, vec![line])
        }
    };
    let page = FailedPage {
        lang,
        langs: Lang::ALL,
        t,
        lines,
        code,
        description,
    };
    html(status, page.render())
}
