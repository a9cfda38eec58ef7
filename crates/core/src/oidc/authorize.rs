//! The authorization request (OpenID Connect Core §3.1.2.1, RFC 6749 §4.1.1, RFC 7636 §4.3):
//! which client, where to send the user back, and what to carry. Until the client and its
//! redirect URI are known to be right nothing may be sent to the URI (RFC 6749 §4.1.2.1: the
//! user is told on our own page); every later problem goes back to the client as an error
//! redirect.

use super::with_query;
use crate::application::Applications;

/// Longest `state` and `nonce` carried (they travel in a cookie and a URL).
pub const MAX_STATE: usize = 1024;
pub const MAX_NONCE: usize = 512;
/// Longest `login_hint` used to fill in the username.
const MAX_LOGIN_HINT: usize = 256;

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scopes granted: `openid`, and `profile` / `email` when asked for; others ignored
    /// (RFC 6749 §3.3 lets the server grant fewer).
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// An S256 challenge (RFC 7636): `plain` is refused.
    pub code_challenge: Option<String>,
    /// `login_hint`: the username to fill in.
    pub login_hint: Option<String>,
    /// `ui_locales`, as sent: a language preference for the pages.
    pub ui_locales: Option<String>,
}

/// Why an authorization request went no further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI is missing or not registered: shown to the user, never
    /// redirected (an open redirector otherwise).
    NoRedirect(NoRedirect),
    /// Told to the client at its redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRedirect {
    MissingClient,
    UnknownClient,
    MissingRedirectUri,
    UnregisteredRedirectUri,
    /// `client_id` or `redirect_uri` given more than once.
    Repeated,
}

impl NoRedirect {
    pub fn as_str(self) -> &'static str {
        match self {
            NoRedirect::MissingClient => "the request names no client (client_id)",
            NoRedirect::UnknownClient => "the client (client_id) is not registered",
            NoRedirect::MissingRedirectUri => "the request has no redirect_uri",
            NoRedirect::UnregisteredRedirectUri => {
                "the redirect_uri is not registered for this client"
            }
            NoRedirect::Repeated => "client_id or redirect_uri is given more than once",
        }
    }
}

/// The error redirect of RFC 6749 §4.1.2.1, with `iss` (RFC 9207).
pub fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    issuer: &str,
    error: &str,
    description: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    with_query(redirect_uri, &params)
}

/// The request's parameters, each name at most once.
struct Params<'a> {
    all: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// The value of `name`; `Err` when it is given more than once (RFC 6749 §3.1).
    fn one(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut found = None;
        for (n, v) in self.all {
            if n == name {
                if found.is_some() {
                    return Err(());
                }
                found = Some(v.as_str());
            }
        }
        // An empty parameter is treated as omitted (RFC 6749 §3.1).
        Ok(found.filter(|v| !v.is_empty()))
    }
}

/// Checks an authorization request's parameters (from the query of a GET or the form of a
/// POST; OpenID Connect Core §3.1.2.1 requires both).
pub fn check(
    params: &[(String, String)],
    applications: &Applications,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let p = Params { all: params };
    let no_redirect = AuthorizeError::NoRedirect;
    let client_id = p
        .one("client_id")
        .map_err(|()| no_redirect(NoRedirect::Repeated))?
        .ok_or(no_redirect(NoRedirect::MissingClient))?;
    let client = applications
        .by_name(client_id)
        .and_then(|a| a.oidc.as_ref())
        .ok_or(no_redirect(NoRedirect::UnknownClient))?;
    let redirect_uri = p
        .one("redirect_uri")
        .map_err(|()| no_redirect(NoRedirect::Repeated))?
        .ok_or(no_redirect(NoRedirect::MissingRedirectUri))?;
    if !client.allows_redirect(redirect_uri) {
        return Err(no_redirect(NoRedirect::UnregisteredRedirectUri));
    }
    // From here on, problems go back to the client. `state` first, so they carry it: as it
    // was sent, or not at all when it cannot be (too long, or not UTF-8 and so already
    // changed by decoding).
    let state = p.one("state").ok().flatten();
    let echo = state.filter(|s| s.len() <= MAX_STATE && !s.contains('\u{FFFD}'));
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: echo.map(str::to_owned),
        error,
        description: description.to_owned(),
    };
    if p.one("state").is_err() {
        return Err(fail("invalid_request", "state is given more than once"));
    }
    let mut request = AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope: Vec::new(),
        state: state.map(str::to_owned),
        nonce: None,
        code_challenge: None,
        login_hint: None,
        ui_locales: None,
    };
    check_rest(&p, &mut request, client.is_public()).map_err(|(e, d)| fail(e, &d))?;
    Ok(request)
}

type Refused = (&'static str, String);

fn invalid(description: impl Into<String>) -> Refused {
    ("invalid_request", description.into())
}

/// Every check after the redirect URI is known, in the order a client can best act on.
fn check_rest(p: &Params<'_>, r: &mut AuthorizeRequest, public: bool) -> Result<(), Refused> {
    let one = |name: &str| {
        p.one(name)
            .map_err(|()| invalid(format!("{name} is given more than once")))
    };
    // OpenID Connect Core §6: request objects are not supported.
    if one("request")?.is_some() {
        return Err((
            "request_not_supported",
            "request objects are not supported".into(),
        ));
    }
    if one("request_uri")?.is_some() {
        return Err((
            "request_uri_not_supported",
            "request_uri is not supported".into(),
        ));
    }
    if one("registration")?.is_some() {
        return Err((
            "registration_not_supported",
            "registration is not supported".into(),
        ));
    }
    match one("response_type")? {
        None => return Err(invalid("response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
    }
    if let Some(mode) = one("response_mode")?
        && mode != "query"
    {
        return Err(invalid("only response_mode=query is supported"));
    }
    let scope = one("scope")?.unwrap_or("");
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "the scope must include openid".into()));
    }
    for s in ["openid", "profile", "email"] {
        if scope.split(' ').any(|x| x == s) {
            r.scope.push(s.to_owned());
        }
    }
    if let Some(state) = &r.state {
        if state.len() > MAX_STATE {
            return Err(invalid(format!("state is longer than {MAX_STATE} bytes")));
        }
        if state.contains('\u{FFFD}') {
            return Err(invalid("state is not UTF-8"));
        }
    }
    r.nonce = one("nonce")?.map(str::to_owned);
    if r.nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(invalid(format!("nonce is longer than {MAX_NONCE} bytes")));
    }
    r.code_challenge = pkce(
        one("code_challenge")?,
        one("code_challenge_method")?,
        public,
    )?;
    prompt(one("prompt")?)?;
    if let Some(age) = one("max_age")?
        && age.parse::<u64>().is_err()
    {
        return Err(invalid("max_age is not a number of seconds"));
    }
    // Every sign-in here is a fresh authentication, so any max_age is met; auth_time is
    // always in the ID token.
    r.login_hint = one("login_hint")?
        .filter(|h| h.len() <= MAX_LOGIN_HINT && !h.chars().any(char::is_control))
        .map(str::to_owned);
    r.ui_locales = one("ui_locales")?.map(|l| l.chars().take(64).collect());
    Ok(())
}

/// RFC 7636 §4.3/§4.4.1: S256 only; required of public clients.
fn pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    public: bool,
) -> Result<Option<String>, Refused> {
    match (challenge, method) {
        (None, None) if public => Err(invalid("code_challenge required (PKCE) for this client")),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid("code_challenge_method without code_challenge")),
        (Some(_), None | Some("plain")) => Err(invalid(
            "code_challenge_method must be S256 (plain is not supported)",
        )),
        (Some(c), Some("S256")) if is_s256_challenge(c) => Ok(Some(c.to_owned())),
        (Some(_), Some("S256")) => Err(invalid("code_challenge is not an S256 challenge")),
        (Some(_), Some(_)) => Err(invalid("code_challenge_method must be S256")),
    }
}

/// An S256 challenge is BASE64URL(SHA-256(verifier)) without padding: 43 characters.
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `prompt=none` cannot be met: there is no sign-in session to reuse.
fn prompt(prompt: Option<&str>) -> Result<(), Refused> {
    let Some(prompt) = prompt else {
        return Ok(());
    };
    let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
    if values.contains(&"none") {
        if values.len() > 1 {
            return Err(invalid("prompt=none cannot be combined with other values"));
        }
        return Err(("login_required", "the user must sign in".into()));
    }
    Ok(())
}
