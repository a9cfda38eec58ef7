//! OpenID Connect: an `[[application]]` with `redirect_uris` is a client (its `client_id` is its
//! name), with a client secret from a file or the environment unless `public_client = true`;
//! `[oidc]` holds the lifetimes of what the provider issues. The issuer is `[server]
//! public_url`, which clients must be able to reach.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::validator::{At, SecretSource, Span, Validator};
use crate::config::MIN_API_KEY_CHARS;

/// The OIDC fields of an `[[application]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientFields {
    pub redirect_uris: Option<Vec<String>>,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    /// A client that cannot keep a secret (a single-page or native app): PKCE instead.
    pub public_client: Option<bool>,
}

/// An application's client part, checked.
#[derive(Debug, Clone)]
pub struct OidcClientConfig {
    pub redirect_uris: Vec<String>,
    /// `None` for a public client.
    pub secret: Option<countersign_core::Secret>,
    pub secret_from: Option<SecretSource>,
}

/// `[oidc]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcSection {
    code_lifetime: Option<String>,
    access_token_lifetime: Option<String>,
    id_token_lifetime: Option<String>,
    /// How long a browser has to finish signing in (the sign-in cookie's life), not counting
    /// the wait for a manager, which the approval link's expiry bounds.
    sign_in_lifetime: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct OidcConfig {
    pub code_lifetime: Duration,
    pub access_token_lifetime: Duration,
    pub id_token_lifetime: Duration,
    pub sign_in_lifetime: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            code_lifetime: Duration::from_secs(60),
            access_token_lifetime: Duration::from_secs(600),
            id_token_lifetime: Duration::from_secs(600),
            sign_in_lifetime: Duration::from_secs(900),
        }
    }
}

/// A redirect URI a client may register: absolute, no fragment (RFC 6749 §3.1.2), `https`, or
/// `http` to a loopback host only (RFC 8252 §7.3; RFC 9700 §2.1: no plain-text redirects
/// elsewhere). Anything else is `Err(why)`.
fn check_redirect_uri(text: &str) -> Result<(), String> {
    if !text.is_ascii() {
        return Err(format!(
            "{text:?}: write non-ASCII characters percent-encoded"
        ));
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not an absolute URL: {e}"))?;
    if url.fragment().is_some() || text.contains('#') {
        return Err(format!(
            "{text:?} has a fragment (#...), which a redirect URI must not"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{text:?}: http is allowed only to a loopback host; use https"
                ))
            }
        }
        s => Err(format!("{text:?}: scheme {s} is not http(s)")),
    }
}

impl Validator<'_> {
    /// The client part of application `key`, when it has one.
    pub(super) fn oidc_client(
        &mut self,
        c: &ClientFields,
        span: &Span,
        key: &str,
    ) -> Option<OidcClientConfig> {
        let public = c.public_client.unwrap_or(false);
        let files = (
            c.client_secret_file.as_deref(),
            c.client_secret_env.as_deref(),
        );
        let has_secret = files.0.is_some() || files.1.is_some();
        let Some(uris) = &c.redirect_uris else {
            if has_secret || c.public_client.is_some() {
                let message = "an OpenID Connect client needs redirect_uris";
                self.key_error(
                    span,
                    "redirect_uris",
                    format!("{key}.redirect_uris"),
                    message,
                );
            }
            return None;
        };
        if uris.is_empty() {
            let message = "must list at least one redirect URI";
            self.key_error(
                span,
                "redirect_uris",
                format!("{key}.redirect_uris"),
                message,
            );
        }
        for uri in uris {
            if let Err(message) = check_redirect_uri(uri) {
                self.key_error(
                    span,
                    "redirect_uris",
                    format!("{key}.redirect_uris"),
                    message,
                );
            }
        }
        let secret = self.secret(
            span,
            key,
            "client_secret",
            files,
            At::Field("client_secret_file"),
        );
        let field = if c.client_secret_file.is_some() {
            "client_secret_file"
        } else {
            "client_secret_env"
        };
        match (&secret, public) {
            (Some(_), true) => {
                let message = "a public client has no secret: remove it or public_client";
                self.key_error(span, field, format!("{key}.{field}"), message);
            }
            (None, false) if !has_secret => {
                let message = "missing: set client_secret_file (or client_secret_env), or \
                               public_client = true for a client that cannot keep a secret";
                self.key_error(
                    span,
                    "redirect_uris",
                    format!("{key}.client_secret_file"),
                    message,
                );
            }
            // RFC 6749 Appendix A: a client secret is printable ASCII; clients form-encode it
            // in Basic credentials, which some forget, so spaces, `+` and `%` are refused too.
            (Some((s, _)), false)
                if !s
                    .expose()
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'+' && b != b'%') =>
            {
                let message = "the client secret must be printable ASCII without spaces, '+' \
                               or '%' (e.g. `openssl rand -hex 32`)";
                self.key_error(span, field, format!("{key}.{field}"), message);
            }
            (Some((s, _)), false) if s.expose().trim().chars().count() < MIN_API_KEY_CHARS => {
                let message = format!(
                    "the client secret is shorter than {MIN_API_KEY_CHARS} characters; make one \
                     with `openssl rand -hex 32`"
                );
                self.key_error(span, field, format!("{key}.{field}"), message);
            }
            _ => {}
        }
        let (secret, secret_from) = match secret {
            Some((s, from)) if !public => (
                Some(countersign_core::Secret::new(s.expose().trim())),
                Some(from),
            ),
            _ => (None, None),
        };
        Some(OidcClientConfig {
            redirect_uris: uris.clone(),
            secret,
            secret_from,
        })
    }

    /// `[server] public_url` as an issuer (OpenID Connect Discovery §3: https, no query or
    /// fragment; ours also no path, since the pages' paths and cookies are absolute): `http`
    /// only to a loopback host (a demo or a test).
    pub(super) fn issuer(&mut self, public_url: &str, span: Option<Span>) {
        let problem = match url::Url::parse(public_url) {
            Err(e) => Some(format!("{public_url:?} is not a URL: {e}")),
            Ok(u) if u.query().is_some() || u.fragment().is_some() => Some(format!(
                "{public_url:?}: an issuer has no query or fragment"
            )),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => Some(format!(
                "{public_url:?}: an issuer has no user name or password in it"
            )),
            Ok(u) if u.path() != "/" => Some(format!(
                "{public_url:?}: serve countersign at the root of its host name (no path) to \
                 be an OpenID Connect issuer"
            )),
            Ok(u) if u.scheme() == "https" => None,
            Ok(_) if check_redirect_uri(public_url).is_ok() => None,
            Ok(_) => Some(format!(
                "{public_url:?}: an OpenID Connect issuer must be https (http only to a loopback \
                 host)"
            )),
        };
        if let Some(message) = problem {
            self.error(span, "server.public_url", message);
        }
    }

    /// `[oidc]`, with its defaults.
    pub(super) fn oidc(&mut self, o: &OidcSection, span: &Span) -> OidcConfig {
        let d = OidcConfig::default();
        let mut lifetime = |name: &str, text: &Option<String>, default: Duration, max: Duration| {
            let key = format!("oidc.{name}");
            let value = self.duration(span, &key, text.as_deref(), default);
            if value.is_zero() || value > max {
                let message = format!(
                    "must be more than 0 and at most {}",
                    humantime::format_duration(max)
                );
                self.key_error(span, name, key, message);
            }
            value
        };
        OidcConfig {
            // RFC 6749 §4.1.2: "a maximum authorization code lifetime of 10 minutes".
            code_lifetime: lifetime(
                "code_lifetime",
                &o.code_lifetime,
                d.code_lifetime,
                Duration::from_secs(600),
            ),
            access_token_lifetime: lifetime(
                "access_token_lifetime",
                &o.access_token_lifetime,
                d.access_token_lifetime,
                Duration::from_secs(86_400),
            ),
            id_token_lifetime: lifetime(
                "id_token_lifetime",
                &o.id_token_lifetime,
                d.id_token_lifetime,
                Duration::from_secs(86_400),
            ),
            sign_in_lifetime: lifetime(
                "sign_in_lifetime",
                &o.sign_in_lifetime,
                d.sign_in_lifetime,
                Duration::from_secs(86_400),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_redirect_uri;

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        for ok in [
            "https://rp.example/cb",
            "https://rp.example/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert_eq!(check_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://rp.example/cb",
            "https://rp.example/cb#x",
            "/relative",
            "javascript:alert(1)",
            "ftp://rp.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
