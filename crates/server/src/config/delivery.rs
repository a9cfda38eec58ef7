//! Delivery: `[[mail_profile]]` (SMTP servers), `[[sms_profile]]` (HTTP SMS gateways) and the
//! `[[delivery_mechanism]]`s that send OTPs through them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use countersign_core::Secret;
use countersign_core::mechanism::Channel;
use serde::Deserialize;

use super::validator::{At, SecretSource, Span, Validator};

/// `[[mail_profile]]`: an SMTP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MailProfileSection {
    name: String,
    host: String,
    /// Default: 25 (`none`), 587 (`starttls`), 465 (`tls`).
    port: Option<u16>,
    /// `none`, `starttls` (required, not opportunistic) or `tls` (implicit TLS).
    tls: Option<String>,
    /// PEM file of extra CA certificates to trust for this server.
    ca_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    /// `Name <address>` or `address`.
    from: String,
    /// Connect and command timeout; default `10s`.
    timeout: Option<String>,
    /// Connections kept open between mails for reuse; default 4, `0` for a new connection per
    /// mail.
    max_idle_connections: Option<usize>,
    /// A kept connection unused this long is closed instead of reused; default `30s` (well
    /// within the 5 minutes an SMTP server waits for a command, RFC 5321 §4.5.3.2.7).
    idle_timeout: Option<String>,
}

/// `[[sms_profile]]`: an HTTP SMS gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmsProfileSection {
    name: String,
    url: String,
    /// `POST` (default), `PUT` or `GET` (fields go in the query string).
    method: Option<String>,
    /// Plain headers.
    headers: Option<BTreeMap<String, String>>,
    /// Headers whose value is read from a file (API keys, tokens).
    header_files: Option<BTreeMap<String, PathBuf>>,
    /// Headers whose value is read from an environment variable.
    header_env: Option<BTreeMap<String, String>>,
    /// Fields of the request; `{to}` and `{message}` in a value are replaced.
    body: BTreeMap<String, String>,
    /// `json` (default) or `form`.
    encoding: Option<String>,
    /// Default `10s`.
    timeout: Option<String>,
    /// Statuses that mean "sent"; default any 2xx.
    success_status: Option<Vec<u16>>,
}

/// `[[delivery_mechanism]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MechanismSection {
    pub(super) name: String,
    /// `email`, `sms` or `file`.
    #[serde(rename = "type")]
    kind: String,
    enabled: Option<bool>,
    mail_profile: Option<String>,
    sms_profile: Option<String>,
    /// `file`: the directory each message is written to.
    directory: Option<PathBuf>,
    /// `file`: which addresses it pretends to reach: `email` (default) or `sms`.
    channel: Option<String>,
    /// `file`: also print each message on standard error (default true).
    print: Option<bool>,
    subject: Option<String>,
    text_before_otp: Option<String>,
    text_after_otp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    StartTls,
    Implicit,
}

#[derive(Debug, Clone)]
pub struct MailProfile {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub ca_pem: Option<Vec<u8>>,
    /// The file `ca_pem` was read from (for `config show`).
    pub ca_file: Option<PathBuf>,
    pub credentials: Option<(String, Secret)>,
    /// Where the password of `credentials` was read from (for `config show`).
    pub password_from: Option<SecretSource>,
    pub from: String,
    pub timeout: Duration,
    pub max_idle_connections: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Json,
    Form,
}

#[derive(Debug, Clone)]
pub struct SmsProfile {
    pub name: String,
    pub url: String,
    pub method: String,
    /// Header values may be secrets (read from files or the environment).
    pub headers: Vec<(String, Secret)>,
    /// The headers read from files or the environment, and from where (for `config show`).
    pub secret_headers: BTreeMap<String, SecretSource>,
    pub body: BTreeMap<String, String>,
    pub encoding: SmsEncoding,
    pub timeout: Duration,
    pub success_status: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Email { mail_profile: String },
    Sms { sms_profile: String },
    File { directory: PathBuf, print: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechanismConfig {
    pub name: String,
    pub channel: Channel,
    pub enabled: bool,
    pub transport: Transport,
    pub subject: Option<String>,
    pub text_before_otp: Option<String>,
    pub text_after_otp: Option<String>,
}

impl Validator<'_> {
    pub(super) fn mail_profiles(
        &mut self,
        sections: &[(MailProfileSection, Span)],
    ) -> Vec<MailProfile> {
        sections
            .iter()
            .enumerate()
            .map(|(i, (m, span))| self.mail_profile(m, span, &format!("mail_profile[{i}]")))
            .collect()
    }

    fn mail_profile(&mut self, m: &MailProfileSection, span: &Span, key: &str) -> MailProfile {
        let tls = match m.tls.as_deref().unwrap_or("starttls") {
            "none" => Tls::None,
            "starttls" => Tls::StartTls,
            "tls" => Tls::Implicit,
            other => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.tls"),
                    format!("{other:?}: expected none, starttls or tls"),
                );
                Tls::StartTls
            }
        };
        let files = (m.password_file.as_deref(), m.password_env.as_deref());
        let password = self.secret(span, key, "password", files, At::Section);
        let credentials = match (&m.username, password) {
            (Some(u), Some((p, from))) => Some((u.clone(), p, from)),
            (None, None) => None,
            (Some(_), None) => {
                if m.password_file.is_none() && m.password_env.is_none() {
                    self.error(
                        Some(span.clone()),
                        format!("{key}.username"),
                        "needs password_file or password_env",
                    );
                }
                None
            }
            (None, Some(_)) => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.username"),
                    "missing: a password was given without a username",
                );
                None
            }
        };
        let ca_pem = m
            .ca_file
            .as_ref()
            .and_then(|p| self.pem_file(span, At::Section, &format!("{key}.ca_file"), p));
        if !m.from.contains('@') {
            self.error(
                Some(span.clone()),
                format!("{key}.from"),
                format!("{:?} is not an e-mail address", m.from),
            );
        }
        let timeout = self.duration(
            span,
            &format!("{key}.timeout"),
            m.timeout.as_deref(),
            Duration::from_secs(10),
        );
        let idle_timeout = self.duration(
            span,
            &format!("{key}.idle_timeout"),
            m.idle_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let (credentials, password_from) = match credentials {
            Some((u, p, from)) => (Some((u, p)), Some(from)),
            None => (None, None),
        };
        MailProfile {
            name: m.name.clone(),
            host: m.host.clone(),
            port: m.port.unwrap_or(match tls {
                Tls::None => 25,
                Tls::StartTls => 587,
                Tls::Implicit => 465,
            }),
            tls,
            ca_file: ca_pem
                .as_ref()
                .and(m.ca_file.as_deref())
                .map(|p| self.path(p)),
            ca_pem,
            credentials,
            password_from,
            from: m.from.clone(),
            timeout,
            max_idle_connections: m.max_idle_connections.unwrap_or(4),
            idle_timeout,
        }
    }

    pub(super) fn sms_profiles(
        &mut self,
        sections: &[(SmsProfileSection, Span)],
    ) -> Vec<SmsProfile> {
        sections
            .iter()
            .enumerate()
            .map(|(i, (p, span))| self.sms_profile(p, span, &format!("sms_profile[{i}]")))
            .collect()
    }

    fn sms_profile(&mut self, p: &SmsProfileSection, span: &Span, key: &str) -> SmsProfile {
        if !(p.url.starts_with("http://") || p.url.starts_with("https://")) {
            self.error(
                Some(span.clone()),
                format!("{key}.url"),
                format!("{:?} is not an http(s) URL", p.url),
            );
        }
        let method = p
            .method
            .clone()
            .unwrap_or_else(|| "POST".into())
            .to_uppercase();
        if !["POST", "PUT", "GET"].contains(&method.as_str()) {
            self.error(
                Some(span.clone()),
                format!("{key}.method"),
                format!("{method:?}: expected POST, PUT or GET"),
            );
        }
        let encoding = match p.encoding.as_deref().unwrap_or("json") {
            "json" => SmsEncoding::Json,
            "form" => SmsEncoding::Form,
            other => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.encoding"),
                    format!("{other:?}: expected json or form"),
                );
                SmsEncoding::Json
            }
        };
        if !p.body.values().any(|v| v.contains("{message}")) {
            self.error(
                Some(span.clone()),
                format!("{key}.body"),
                "no field holds {message}: the OTP would never be sent",
            );
        }
        if !p.body.values().any(|v| v.contains("{to}")) && !p.url.contains("{to}") {
            self.error(
                Some(span.clone()),
                format!("{key}.body"),
                "no field holds {to}: the gateway would not know the number",
            );
        }
        let (headers, secret_headers) = self.sms_headers(p, span, key);
        SmsProfile {
            name: p.name.clone(),
            url: p.url.clone(),
            method,
            headers,
            secret_headers,
            body: p.body.clone(),
            encoding,
            timeout: self.duration(
                span,
                &format!("{key}.timeout"),
                p.timeout.as_deref(),
                Duration::from_secs(10),
            ),
            success_status: p.success_status.clone().unwrap_or_default(),
        }
    }

    /// Plain headers, then those read from files, then those from the environment.
    fn sms_headers(
        &mut self,
        p: &SmsProfileSection,
        span: &Span,
        key: &str,
    ) -> (Vec<(String, Secret)>, BTreeMap<String, SecretSource>) {
        let mut headers: Vec<(String, Secret)> = p
            .headers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect();
        let mut sources = BTreeMap::new();
        for (h, f) in p.header_files.clone().unwrap_or_default() {
            if let Some(v) = self.secret_file(span, &format!("{key}.header_files.{h}"), &f) {
                sources.insert(h.clone(), SecretSource::File(self.path(&f)));
                headers.push((h, v));
            }
        }
        for (h, var) in p.header_env.clone().unwrap_or_default() {
            if let Some(v) = self.secret_env(span, &format!("{key}.header_env.{h}"), &var) {
                sources.insert(h.clone(), SecretSource::Env(var));
                headers.push((h, v));
            }
        }
        (headers, sources)
    }

    /// Every `[[delivery_mechanism]]` whose transport is usable, with its references checked.
    pub(super) fn mechanisms(
        &mut self,
        sections: &[(MechanismSection, Span)],
        mail_profiles: &[MailProfile],
        sms_profiles: &[SmsProfile],
    ) -> Vec<MechanismConfig> {
        let profiles = Profiles {
            mail: mail_profiles.iter().map(|p| p.name.clone()).collect(),
            sms: sms_profiles.iter().map(|p| p.name.clone()).collect(),
        };
        let mut mechanisms: Vec<MechanismConfig> = Vec::new();
        for (i, (m, span)) in sections.iter().enumerate() {
            let key = format!("delivery_mechanism[{i}]");
            if mechanisms
                .iter()
                .any(|x| x.name.eq_ignore_ascii_case(&m.name))
            {
                self.error(
                    Some(span.clone()),
                    format!("{key}.name"),
                    format!("delivery mechanism {:?} is defined twice", m.name),
                );
            }
            let Some((channel, transport)) = self.transport(m, span, &key, &profiles) else {
                continue;
            };
            if let Some(transport) = transport {
                mechanisms.push(MechanismConfig {
                    name: m.name.clone(),
                    channel,
                    enabled: m.enabled.unwrap_or(true),
                    transport,
                    subject: m.subject.clone(),
                    text_before_otp: m.text_before_otp.clone(),
                    text_after_otp: m.text_after_otp.clone(),
                });
            }
        }
        mechanisms
    }

    /// The channel and transport of one mechanism; `None` when its type is unknown, a `None`
    /// transport when its settings are wrong (both reported).
    fn transport(
        &mut self,
        m: &MechanismSection,
        span: &Span,
        key: &str,
        profiles: &Profiles,
    ) -> Option<(Channel, Option<Transport>)> {
        Some(match m.kind.as_str() {
            "email" => (
                Channel::Email,
                self.profile_reference(
                    m,
                    span,
                    key,
                    "mail_profile",
                    &m.mail_profile,
                    &profiles.mail,
                )
                .map(|p| Transport::Email { mail_profile: p }),
            ),
            "sms" => (
                Channel::Sms,
                self.profile_reference(m, span, key, "sms_profile", &m.sms_profile, &profiles.sms)
                    .map(|p| Transport::Sms { sms_profile: p }),
            ),
            "file" => {
                let channel = match m.channel.as_deref().unwrap_or("email") {
                    "email" => Channel::Email,
                    "sms" => Channel::Sms,
                    other => {
                        self.error(
                            Some(span.clone()),
                            format!("{key}.channel"),
                            format!("{other:?}: expected email or sms"),
                        );
                        Channel::Email
                    }
                };
                let transport = match &m.directory {
                    Some(d) => Some(Transport::File {
                        directory: self.path(d),
                        print: m.print.unwrap_or(true),
                    }),
                    None => {
                        self.error(
                            Some(span.clone()),
                            format!("{key}.directory"),
                            "missing: a file mechanism needs directory",
                        );
                        None
                    }
                };
                (channel, transport)
            }
            other => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.type"),
                    format!("{other:?}: expected email, sms or file"),
                );
                return None;
            }
        })
    }

    /// A mechanism's `mail_profile` or `sms_profile`: present, and naming a profile.
    fn profile_reference(
        &mut self,
        m: &MechanismSection,
        span: &Span,
        key: &str,
        field: &str,
        reference: &Option<String>,
        names: &BTreeSet<String>,
    ) -> Option<String> {
        match reference {
            None => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.{field}"),
                    format!("missing: a {} mechanism needs {field}", m.kind),
                );
                None
            }
            Some(r) if !names.contains(r) => {
                self.key_error(
                    span,
                    field,
                    format!("{key}.{field}"),
                    format!("{r:?} names no [[{field}]]"),
                );
                None
            }
            Some(r) => Some(r.clone()),
        }
    }
}

/// Names of the configured profiles, which mechanisms refer to.
struct Profiles {
    mail: BTreeSet<String>,
    sms: BTreeSet<String>,
}
