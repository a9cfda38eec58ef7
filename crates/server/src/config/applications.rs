//! `[[application]]` (the seed's "application profiles"): the clients of countersign, each with
//! the authentication methods it may use, whether Approved OTP applies to its logins and, for
//! HTTP callers, its API key (read like every secret, from a file or the environment). Also the
//! one reference into them from the fronts: `[ldap] application`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use countersign_core::Secret;
use countersign_core::application::AuthMethod;
use serde::Deserialize;

use super::fronts::LdapConfig;
use super::oidc::{ClientFields, OidcClientConfig};
use super::validator::{At, SecretSource, Span, Validator};

/// `[[application]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplicationSection {
    /// Letters, digits, `.`, `_` and `-`: it appears in messages to managers and the audit.
    name: String,
    /// The API key HTTP callers present (`Authorization: Bearer ...`); at least 32 characters.
    api_key_file: Option<PathBuf>,
    api_key_env: Option<String>,
    /// `password` and/or `delivered_otp`; default both.
    methods: Option<Vec<String>>,
    /// Whether Approved OTP policies apply to its logins; default true.
    approved_otp: Option<bool>,
    /// OpenID Connect (see [`super::oidc`]).
    redirect_uris: Option<Vec<String>>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    public_client: Option<bool>,
}

/// An `[[application]]`, checked.
#[derive(Debug, Clone)]
pub struct ApplicationConfig {
    pub name: String,
    /// The API key, surrounding white space removed; `None` for an application without one
    /// (e.g. the one LDAP binds count as).
    pub api_key: Option<Secret>,
    /// Where `api_key` was read from (for `config show`).
    pub api_key_from: Option<SecretSource>,
    pub methods: Vec<AuthMethod>,
    pub approved_otp: bool,
    /// Set when the application is an OpenID Connect client.
    pub oidc: Option<OidcClientConfig>,
}

/// Shortest API key accepted: 32 characters, e.g. 128 bits as hex, or more as base64.
pub const MIN_API_KEY_CHARS: usize = 32;

impl Validator<'_> {
    /// Every `[[application]]`, in order; names unique and plain, API keys long and distinct.
    pub(super) fn applications(
        &mut self,
        sections: &[(ApplicationSection, Span)],
    ) -> Vec<ApplicationConfig> {
        let mut apps: Vec<ApplicationConfig> = Vec::new();
        for (i, (a, span)) in sections.iter().enumerate() {
            let key = format!("application[{i}]");
            self.application_name(a, span, &key, &apps);
            let files = (a.api_key_file.as_deref(), a.api_key_env.as_deref());
            let secret = self.secret(span, &key, "api_key", files, At::Field("api_key_file"));
            let field = if a.api_key_file.is_some() {
                "api_key_file"
            } else {
                "api_key_env"
            };
            let (api_key, api_key_from) = match secret {
                Some((k, from)) => {
                    let k = Secret::new(k.expose().trim());
                    if k.expose().chars().count() < MIN_API_KEY_CHARS {
                        let message = format!(
                            "the API key is shorter than {MIN_API_KEY_CHARS} characters; make \
                             one with `openssl rand -hex 32`"
                        );
                        self.key_error(span, field, format!("{key}.{field}"), message);
                    }
                    let twin = apps.iter().find(|x| x.api_key.as_ref() == Some(&k));
                    if let Some(twin) = twin {
                        let message = format!("the same API key as application {:?}", twin.name);
                        self.key_error(span, field, format!("{key}.{field}"), message);
                    }
                    (Some(k), Some(from))
                }
                None => (None, None),
            };
            let client = ClientFields {
                redirect_uris: a.redirect_uris.clone(),
                client_secret_file: a.client_secret_file.clone(),
                client_secret_env: a.client_secret_env.clone(),
                public_client: a.public_client,
            };
            let oidc = self.oidc_client(&client, span, &key);
            apps.push(ApplicationConfig {
                name: a.name.clone(),
                api_key,
                api_key_from,
                methods: self.auth_methods(span, &key, "methods", a.methods.as_deref()),
                approved_otp: a.approved_otp.unwrap_or(true),
                oidc,
            });
        }
        apps
    }

    /// A name: not empty, plain characters, not taken.
    fn application_name(
        &mut self,
        a: &ApplicationSection,
        span: &Span,
        key: &str,
        earlier: &[ApplicationConfig],
    ) {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let problem = if a.name.is_empty() {
            Some("must not be empty".to_owned())
        } else if !a.name.chars().all(plain) {
            Some(format!(
                "{:?}: only letters, digits, '.', '_' and '-'",
                a.name
            ))
        } else if ["ldap", "http"].contains(&a.name.to_ascii_lowercase().as_str()) {
            Some(format!(
                "{:?} is reserved: it names the application of LDAP binds without [ldap] \
                 application and of HTTP callers without an API key",
                a.name
            ))
        } else if earlier.iter().any(|x| x.name == a.name) {
            Some(format!("application {:?} is defined twice", a.name))
        } else {
            None
        };
        if let Some(message) = problem {
            self.key_error(span, "name", format!("{key}.name"), message);
        }
    }

    /// A list of authentication methods (`key.field`): known, none twice, at least one; all of
    /// them when absent.
    pub(super) fn auth_methods(
        &mut self,
        span: &Span,
        key: &str,
        field: &str,
        names: Option<&[String]>,
    ) -> Vec<AuthMethod> {
        let Some(names) = names else {
            return AuthMethod::ALL.to_vec();
        };
        let full = format!("{key}.{field}");
        if names.is_empty() {
            self.key_error(span, field, full.clone(), "must name at least one method");
        }
        let mut seen = BTreeSet::new();
        let mut methods = Vec::new();
        for n in names {
            match AuthMethod::parse(n) {
                Some(m) if seen.insert(n.as_str()) => methods.push(m),
                Some(_) => {
                    let message = format!("{n:?} is listed twice");
                    self.key_error(span, field, full.clone(), message);
                }
                None => {
                    let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
                    let message = format!("{n:?}: expected {}", known.join(" or "));
                    self.key_error(span, field, full.clone(), message);
                }
            }
        }
        methods
    }

    /// `[ldap] application` names an `[[application]]`.
    pub(super) fn ldap_application(
        &mut self,
        ldap: &LdapConfig,
        span: &Span,
        apps: &[ApplicationConfig],
    ) {
        if let Some(name) = &ldap.application
            && !apps.iter().any(|a| &a.name == name)
        {
            let message = format!("{name:?} names no [[application]]");
            self.key_error(span, "application", "ldap.application", message);
        }
    }
}
