//! `countersign.toml`: parsed into raw sections (serde, unknown keys refused), then validated into
//! an immutable [`Config`]. Every problem is collected, not just the first, and each names the
//! key (and the line, where the file shows it). Secrets are only read from `*_file` paths or
//! environment variables, never inline.
//!
//! Relative paths are resolved against the directory of the config file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countersign_core::Secret;
use countersign_core::generator::PasswordGenerator;
use countersign_core::mechanism::Channel;
use countersign_core::ratelimit::Rate;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `delivery_mechanism[2].mail_profile`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------------------------
// Raw sections, as written in the file.

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    /// Base URL of this server as users' browsers reach it (approval links).
    public_url: Option<String>,
    /// File holding the key (hex, at least 32 hex digits) under which OTPs are hashed. Created
    /// with fresh random bytes when missing. Default: the SQLite file's path plus `.key`.
    secret_key_file: Option<PathBuf>,
}

/// `[store]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    /// `sqlite://PATH` (PostgreSQL comes later).
    url: String,
}

/// `[listen]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenSection {
    /// Address of the HTTP API, e.g. `127.0.0.1:8080`.
    http: Option<String>,
    /// Address of the LDAP front (plain, StartTLS available when [ldap] has a certificate).
    ldap: Option<String>,
    /// Address of the LDAPS front (TLS from the first byte; needs [ldap] certificate and key).
    ldaps: Option<String>,
}

/// `[ldap]`: the LDAP front.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LdapSection {
    /// PEM certificate chain for StartTLS and LDAPS.
    tls_certificate_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    tls_key_file: Option<PathBuf>,
    /// Serve Deliver OTP (which carries the static password) on connections that are neither
    /// LDAPS nor StartTLS. Default false: confidentialityRequired (13).
    allow_deliver_otp_without_tls: Option<bool>,
    /// Forms a simple bind name may take: "dn" (always), "u" (`u:name`), "name" (a plain
    /// username). Default ["dn"].
    bind_name_forms: Option<Vec<String>>,
    /// Show full addresses in Get Supported OTP Delivery Mechanisms to callers not bound as
    /// that user (default false: masked).
    reveal_recipients: Option<bool>,
    /// Largest LDAP message accepted, in bytes (default 65536); larger ones close the connection.
    max_message_bytes: Option<usize>,
    /// A connection with nothing outstanding is closed after this long (default 5m).
    idle_timeout: Option<String>,
    /// Connections served at once (default 1024); more are closed on arrival.
    max_connections: Option<usize>,
    /// Connections one client address may hold at once (default 64).
    max_connections_per_client: Option<usize>,
    /// Operations outstanding on one connection (default 16); further requests wait unread.
    max_operations_per_connection: Option<usize>,
}

/// `[http]`: options of the HTTP front.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    /// Show users' full addresses in `GET /api/v1/otp/mechanisms` (default false: masked, e.g.
    /// `a***@example.com`). Anyone who can reach the API can call it, so only turn this on
    /// when the API is reachable by trusted applications alone.
    reveal_recipients: Option<bool>,
    /// Time a client has to send a request's headers (default 10s); slower ones are cut off.
    header_read_timeout: Option<String>,
}

/// `[[directory]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectorySection {
    name: String,
    /// `local` (users in countersign's store) or `ldap` (a directory server).
    #[serde(rename = "type")]
    kind: String,
    /// local: base of the DNs of local users, `uid=<username>,<base_dn>`.
    base_dn: Option<String>,
    /// Attributes an `u:` identity is matched against (any of them); exactly one user must match.
    match_attributes: Option<Vec<String>>,
    /// ldap: `ldap://host:port` or `ldaps://host:port`.
    url: Option<String>,
    /// ldap: upgrade `ldap://` with StartTLS (required, not opportunistic).
    starttls: Option<bool>,
    /// ldap: PEM CA certificates to trust (default: the system's).
    ca_file: Option<PathBuf>,
    /// ldap: service account for lookups (anonymous when absent).
    bind_dn: Option<String>,
    bind_password_file: Option<PathBuf>,
    bind_password_env: Option<String>,
    /// ldap: where users are searched (subtree); DNs outside them are nobody.
    user_base_dns: Option<Vec<String>>,
    /// ldap: extra filter every user must match, e.g. `(objectClass=inetOrgPerson)`.
    match_filter: Option<String>,
    mail_attribute: Option<String>,
    mobile_attribute: Option<String>,
    display_name_attribute: Option<String>,
    manager_attribute: Option<String>,
    preferred_mechanism_attribute: Option<String>,
    /// ldap: more attributes to read for policies, e.g. `["memberOf"]`.
    attributes: Option<Vec<String>>,
    /// ldap: per-operation timeout (default 10s).
    timeout: Option<String>,
    /// ldap: when the server cannot be reached, `stop` the fallback chain (default) or try the
    /// `next` directory.
    on_unavailable: Option<String>,
}

/// `[password_generator]`: PingDirectory's Random Password Generator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeneratorSection {
    /// Named character sets, e.g. `{ numeric = "0123456789" }`.
    character_sets: BTreeMap<String, String>,
    /// `set:count[,set:count...]`, e.g. `numeric:6`.
    format: String,
}

/// `[[mail_profile]]`: an SMTP server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailProfileSection {
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
struct SmsProfileSection {
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
struct MechanismSection {
    name: String,
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

/// `[deliver_otp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverOtpSection {
    /// Directory (or ordered list of fallback directories) whose identity mapper resolves users.
    identity_mapper: OneOrMany,
    /// Mechanisms tried when neither the request nor the user names any.
    default_mechanisms: Vec<String>,
    /// Default `5m`.
    otp_validity: Option<String>,
    /// Wrong tries after which an OTP is voided; default 5.
    max_failed_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[audit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    /// Audit records older than this are deleted (checked at start and every hour), e.g.
    /// `400d`; `off` (the default) keeps them forever.
    retention: Option<String>,
}

/// `[rate_limits]`: `N/DURATION` (e.g. `5/15m`) or `off`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitSection {
    deliver_per_user: Option<String>,
    deliver_per_client: Option<String>,
    verify_per_user: Option<String>,
    verify_per_client: Option<String>,
}

/// Top level, each section kept as a spanned value so errors can name their line. (serde's
/// `flatten` would lose the spans, so the known sections are listed and unknown ones are found
/// from a plain table.)
#[derive(Debug, Deserialize)]
struct Skeleton {
    server: Option<Spanned<toml::Value>>,
    store: Option<Spanned<toml::Value>>,
    listen: Option<Spanned<toml::Value>>,
    http: Option<Spanned<toml::Value>>,
    ldap: Option<Spanned<toml::Value>>,
    directory: Option<Spanned<toml::Value>>,
    password_generator: Option<Spanned<toml::Value>>,
    mail_profile: Option<Spanned<toml::Value>>,
    sms_profile: Option<Spanned<toml::Value>>,
    delivery_mechanism: Option<Spanned<toml::Value>>,
    deliver_otp: Option<Spanned<toml::Value>>,
    rate_limits: Option<Spanned<toml::Value>>,
    audit: Option<Spanned<toml::Value>>,
}

impl Skeleton {
    fn get(&self, key: &str) -> Option<&Spanned<toml::Value>> {
        match key {
            "server" => self.server.as_ref(),
            "store" => self.store.as_ref(),
            "listen" => self.listen.as_ref(),
            "http" => self.http.as_ref(),
            "ldap" => self.ldap.as_ref(),
            "directory" => self.directory.as_ref(),
            "password_generator" => self.password_generator.as_ref(),
            "mail_profile" => self.mail_profile.as_ref(),
            "sms_profile" => self.sms_profile.as_ref(),
            "delivery_mechanism" => self.delivery_mechanism.as_ref(),
            "deliver_otp" => self.deliver_otp.as_ref(),
            "rate_limits" => self.rate_limits.as_ref(),
            "audit" => self.audit.as_ref(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration.

#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: Option<String>,
    pub secret_key_file: PathBuf,
    pub store: StoreConfig,
    pub listen_http: Option<SocketAddr>,
    pub http_reveal_recipients: bool,
    pub http_header_read_timeout: Duration,
    pub listen_ldap: Option<SocketAddr>,
    pub listen_ldaps: Option<SocketAddr>,
    pub ldap: LdapConfig,
    pub directories: Vec<DirectoryConfig>,
    pub ldap_directories: Vec<LdapDirectoryConfig>,
    pub generator: PasswordGenerator,
    pub mail_profiles: Vec<MailProfile>,
    pub sms_profiles: Vec<SmsProfile>,
    pub mechanisms: Vec<MechanismConfig>,
    pub deliver_otp: DeliverOtpConfig,
    pub rate_limits: RateLimitConfig,
    /// `[audit] retention`; `None` keeps records forever.
    pub audit_retention: Option<Duration>,
}

/// A `[[directory]]` of type `ldap`.
#[derive(Debug, Clone)]
pub struct LdapDirectoryConfig {
    pub name: String,
    pub url: String,
    pub starttls: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub user_base_dns: Vec<String>,
    pub match_attributes: Vec<String>,
    pub match_filter: Option<String>,
    pub mail_attribute: String,
    pub mobile_attribute: String,
    pub display_name_attribute: String,
    pub manager_attribute: String,
    pub preferred_mechanism_attribute: String,
    pub attributes: Vec<String>,
    pub timeout: Duration,
    pub stop_when_unavailable: bool,
}

/// Which simple bind names are accepted besides DNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindNameForms {
    /// `u:name`
    pub u_prefixed: bool,
    /// `name`
    pub plain: bool,
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// PEM chain and key, read at start.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub allow_deliver_otp_without_tls: bool,
    pub bind_name_forms: BindNameForms,
    pub reveal_recipients: bool,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_operations_per_connection: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Sqlite(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    pub name: String,
    pub base_dn: String,
    pub match_attributes: Vec<String>,
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
    pub credentials: Option<(String, Secret)>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOtpConfig {
    pub directories: Vec<String>,
    pub default_mechanisms: Vec<String>,
    pub otp_validity: Duration,
    pub max_failed_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub deliver_per_user: Option<Rate>,
    pub deliver_per_client: Option<Rate>,
    pub verify_per_user: Option<Rate>,
    pub verify_per_client: Option<Rate>,
}

/// Largest `[ldap] max_message_bytes` accepted: 16 MiB.
pub const MAX_LDAP_MESSAGE: usize = 16 * 1024 * 1024;

pub const DEFAULT_BASE_DN: &str = "ou=people,dc=countersign,dc=local";

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                line: None,
                key: path.display().to_string(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base)
    }

    /// Validates config text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let mut v = Validator {
            text,
            base,
            errors: Vec::new(),
        };
        let config = v.run();
        match config {
            Some(c) if v.errors.is_empty() => Ok(c),
            _ => Err(ConfigErrors(v.errors)),
        }
    }
}

struct Validator<'a> {
    text: &'a str,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// An error on `field` inside the section at `span`, on that field's line when found.
    fn key_error(
        &mut self,
        span: &std::ops::Range<usize>,
        field: &str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = self
            .find_key_line(span.clone(), field)
            .unwrap_or_else(|| self.line_of(span.start));
        self.errors.push(ConfigError {
            line: Some(line),
            key: key.into(),
            message: message.into(),
        });
    }

    /// Deserializes one section or array item; on failure records the error, with the line of
    /// the offending key when the message names one.
    fn section<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: &Spanned<toml::Value>,
    ) -> Option<T> {
        match value.get_ref().clone().try_into::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                let message = e.message().trim().to_owned();
                let span = value.span();
                let line = field_named_in(&message)
                    .and_then(|field| self.find_key_line(span.clone(), &field))
                    .unwrap_or_else(|| self.line_of(span.start));
                self.errors.push(ConfigError {
                    line: Some(line),
                    key: key.to_owned(),
                    message,
                });
                None
            }
        }
    }

    /// Line of `field = ...` in the section starting at `span` (a table's span covers only its
    /// header, so the search runs on to the next header).
    fn find_key_line(&self, span: std::ops::Range<usize>, field: &str) -> Option<usize> {
        let start = span.start.min(self.text.len());
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            if i > 0 && t.starts_with('[') {
                break;
            }
            if let Some(rest) = t.strip_prefix(field)
                && rest.trim_start().starts_with('=')
            {
                return Some(self.line_of(offset));
            }
            offset += line.len();
        }
        None
    }

    fn items<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: Option<&Spanned<toml::Value>>,
    ) -> Vec<(T, std::ops::Range<usize>)> {
        let Some(value) = value else {
            return Vec::new();
        };
        let toml::Value::Array(items) = value.get_ref() else {
            self.error(
                Some(value.span()),
                key,
                format!("must be an array of tables: write [[{key}]]"),
            );
            return Vec::new();
        };
        // Array items carry no spans of their own; find each `[[key]]` header in order.
        let headers = self.headers_of(key);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let span = headers.get(i).cloned().unwrap_or_else(|| value.span());
            let spanned = Spanned::new(span.clone(), item.clone());
            if let Some(t) = self.section::<T>(&format!("{key}[{i}]"), &spanned) {
                out.push((t, span));
            }
        }
        out
    }

    /// Byte ranges from each `[[key]]` header to the next header.
    fn headers_of(&self, key: &str) -> Vec<std::ops::Range<usize>> {
        let mut starts = Vec::new();
        let mut all_headers = Vec::new();
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with('[') {
                all_headers.push(offset);
                let inner = t.trim_start_matches('[').trim_end_matches(']').trim();
                if t.starts_with("[[") && inner == key {
                    starts.push(offset);
                }
            }
            offset += line.len();
        }
        starts
            .into_iter()
            .map(|s| {
                let end = all_headers
                    .iter()
                    .copied()
                    .find(|h| *h > s)
                    .unwrap_or(self.text.len());
                s..end
            })
            .collect()
    }

    /// Line of a top-level `key = ...`, `[key]` or `[[key]]`.
    fn top_level_line(&self, key: &str) -> Option<usize> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            let header = t.trim_start_matches('[').trim_end_matches(']').trim();
            let assignment = t
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='));
            if (t.starts_with('[') && header == key) || assignment {
                return Some(self.line_of(offset));
            }
            offset += line.len();
        }
        None
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn duration(
        &mut self,
        span: &std::ops::Range<usize>,
        key: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
        match text {
            None => default,
            Some(t) => match parse_duration(t) {
                Some(d) => d,
                None => {
                    self.error(
                        Some(span.clone()),
                        key,
                        format!("{t:?} is not a duration such as 30s, 5m or 1h"),
                    );
                    default
                }
            },
        }
    }

    fn secret_file(
        &mut self,
        span: &std::ops::Range<usize>,
        key: &str,
        path: &Path,
    ) -> Option<Secret> {
        let path = self.path(path);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(Secret::new(s.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) => {
                self.error(
                    Some(span.clone()),
                    key,
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    fn secret_env(
        &mut self,
        span: &std::ops::Range<usize>,
        key: &str,
        var: &str,
    ) -> Option<Secret> {
        match std::env::var(var) {
            Ok(v) => Some(Secret::new(v)),
            Err(_) => {
                self.error(
                    Some(span.clone()),
                    key,
                    format!("environment variable {var} is not set"),
                );
                None
            }
        }
    }

    fn ldap_directory(
        &mut self,
        d: &DirectorySection,
        span: &std::ops::Range<usize>,
        key: &str,
    ) -> Option<LdapDirectoryConfig> {
        let Some(url) = d.url.clone() else {
            self.error(
                Some(span.clone()),
                format!("{key}.url"),
                "missing: an ldap directory needs url",
            );
            return None;
        };
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            self.key_error(
                span,
                "url",
                format!("{key}.url"),
                format!("{url:?}: expected ldap://HOST:PORT or ldaps://HOST:PORT"),
            );
        }
        let starttls = d.starttls.unwrap_or(false);
        if starttls && url.starts_with("ldaps://") {
            self.key_error(
                span,
                "starttls",
                format!("{key}.starttls"),
                "StartTLS on an ldaps:// URL: TLS is already there",
            );
        }
        let ca_pem = d.ca_file.as_ref().and_then(|p| {
            let path = self.path(p);
            match std::fs::read(&path) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.key_error(
                        span,
                        "ca_file",
                        format!("{key}.ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        });
        let bind_password = match (&d.bind_password_file, &d.bind_password_env) {
            (Some(p), None) => self.secret_file(span, &format!("{key}.bind_password_file"), p),
            (None, Some(v)) => self.secret_env(span, &format!("{key}.bind_password_env"), v),
            (None, None) => None,
            (Some(_), Some(_)) => {
                self.key_error(
                    span,
                    "bind_password_file",
                    format!("{key}.bind_password_file"),
                    "set bind_password_file or bind_password_env, not both",
                );
                None
            }
        };
        if d.bind_dn.is_some() != (d.bind_password_file.is_some() || d.bind_password_env.is_some())
        {
            self.key_error(
                span,
                "bind_dn",
                format!("{key}.bind_dn"),
                "bind_dn and bind_password_file (or _env) go together",
            );
        }
        let user_base_dns = d.user_base_dns.clone().unwrap_or_default();
        if user_base_dns.is_empty() {
            self.error(
                Some(span.clone()),
                format!("{key}.user_base_dns"),
                "missing: an ldap directory needs user_base_dns",
            );
        }
        if let Some(f) = &d.match_filter {
            if !(f.starts_with('(') && f.ends_with(')')) {
                self.key_error(
                    span,
                    "match_filter",
                    format!("{key}.match_filter"),
                    format!("{f:?}: a filter is written in parentheses"),
                );
            } else if ldap3::parse_filter(f).is_err() {
                self.key_error(
                    span,
                    "match_filter",
                    format!("{key}.match_filter"),
                    format!("{f:?} is not an LDAP filter (RFC 4515)"),
                );
            }
        }
        if d.match_attributes
            .as_ref()
            .is_some_and(|m| m.is_empty() || m.iter().any(|a| a.trim().is_empty()))
        {
            self.key_error(
                span,
                "match_attributes",
                format!("{key}.match_attributes"),
                "must name at least one attribute, none empty",
            );
        }
        if bind_password.as_ref().is_some_and(|p| p.is_empty()) {
            // An empty password makes the service bind anonymous on servers that allow it.
            self.key_error(
                span,
                "bind_dn",
                format!("{key}.bind_password_file"),
                "the service account's password is empty",
            );
        }
        let on_unavailable = d.on_unavailable.as_deref().unwrap_or("stop");
        if !["stop", "next"].contains(&on_unavailable) {
            self.key_error(
                span,
                "on_unavailable",
                format!("{key}.on_unavailable"),
                format!("{on_unavailable:?}: expected stop or next"),
            );
        }
        let attr =
            |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
        Some(LdapDirectoryConfig {
            name: d.name.clone(),
            url,
            starttls,
            ca_pem,
            bind_dn: d.bind_dn.clone(),
            bind_password,
            user_base_dns,
            match_attributes: d
                .match_attributes
                .clone()
                .unwrap_or_else(|| vec!["uid".to_owned()]),
            match_filter: d.match_filter.clone(),
            mail_attribute: attr(&d.mail_attribute, "mail"),
            mobile_attribute: attr(&d.mobile_attribute, "mobile"),
            display_name_attribute: attr(&d.display_name_attribute, "cn"),
            manager_attribute: attr(&d.manager_attribute, "manager"),
            preferred_mechanism_attribute: attr(
                &d.preferred_mechanism_attribute,
                "ds-auth-preferred-otp-delivery-mechanism",
            ),
            attributes: d.attributes.clone().unwrap_or_default(),
            timeout: self.duration(
                span,
                &format!("{key}.timeout"),
                d.timeout.as_deref(),
                Duration::from_secs(10),
            ),
            stop_when_unavailable: on_unavailable != "next",
        })
    }

    fn ldap_config(
        &mut self,
        l: &LdapSection,
        span: &std::ops::Range<usize>,
        ldaps: bool,
    ) -> LdapConfig {
        let read = |v: &mut Self, field: &str, p: &Path| -> Option<Vec<u8>> {
            let path = v.path(p);
            match std::fs::read(&path) {
                Ok(b) => Some(b),
                Err(e) => {
                    v.key_error(
                        span,
                        field,
                        format!("ldap.{field}"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            }
        };
        let tls = match (&l.tls_certificate_file, &l.tls_key_file) {
            (Some(c), Some(k)) => match (
                read(self, "tls_certificate_file", c),
                read(self, "tls_key_file", k),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            },
            (None, None) => None,
            (Some(_), None) => {
                self.key_error(
                    span,
                    "tls_certificate_file",
                    "ldap.tls_key_file",
                    "missing: a certificate needs its key",
                );
                None
            }
            (None, Some(_)) => {
                self.key_error(
                    span,
                    "tls_key_file",
                    "ldap.tls_certificate_file",
                    "missing: a key needs its certificate",
                );
                None
            }
        };
        if ldaps && l.tls_certificate_file.is_none() {
            self.error(
                Some(span.clone()),
                "ldap.tls_certificate_file",
                "missing: listen.ldaps needs a certificate and key",
            );
        }
        let mut forms = BindNameForms::default();
        for f in l
            .bind_name_forms
            .clone()
            .unwrap_or_else(|| vec!["dn".into()])
        {
            match f.as_str() {
                "dn" => {}
                "u" => forms.u_prefixed = true,
                "name" => forms.plain = true,
                other => self.key_error(
                    span,
                    "bind_name_forms",
                    "ldap.bind_name_forms",
                    format!("{other:?}: expected dn, u or name"),
                ),
            }
        }
        let positive = |v: &mut Self, field: &str, value: Option<usize>, default: usize| match value
        {
            Some(0) => {
                v.key_error(span, field, format!("ldap.{field}"), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        };
        LdapConfig {
            tls,
            allow_deliver_otp_without_tls: l.allow_deliver_otp_without_tls.unwrap_or(false),
            bind_name_forms: forms,
            reveal_recipients: l.reveal_recipients.unwrap_or(false),
            max_message_bytes: match positive(
                self,
                "max_message_bytes",
                l.max_message_bytes,
                64 * 1024,
            ) {
                n if n > MAX_LDAP_MESSAGE => {
                    self.key_error(
                        span,
                        "max_message_bytes",
                        "ldap.max_message_bytes",
                        format!("at most {MAX_LDAP_MESSAGE}"),
                    );
                    64 * 1024
                }
                n => n,
            },
            idle_timeout: self.duration(
                span,
                "ldap.idle_timeout",
                l.idle_timeout.as_deref(),
                Duration::from_secs(300),
            ),
            max_connections: positive(self, "max_connections", l.max_connections, 1024),
            max_connections_per_client: positive(
                self,
                "max_connections_per_client",
                l.max_connections_per_client,
                64,
            ),
            max_operations_per_connection: positive(
                self,
                "max_operations_per_connection",
                l.max_operations_per_connection,
                16,
            ),
        }
    }

    fn run(&mut self) -> Option<Config> {
        let skeleton: Skeleton = match toml::from_str(self.text) {
            Ok(s) => s,
            Err(e) => {
                let span = e.span();
                self.error(span, "(syntax)", e.message().trim().to_owned());
                return None;
            }
        };
        let s = &skeleton;
        const KNOWN: [&str; 13] = [
            "audit",
            "server",
            "store",
            "listen",
            "http",
            "ldap",
            "directory",
            "password_generator",
            "mail_profile",
            "sms_profile",
            "delivery_mechanism",
            "deliver_otp",
            "rate_limits",
        ];
        if let Ok(table) = self.text.parse::<toml::Table>() {
            for key in table.keys() {
                if !KNOWN.contains(&key.as_str()) {
                    let line = self.top_level_line(key);
                    self.errors.push(ConfigError {
                        line,
                        key: key.clone(),
                        message: format!("unknown key; expected one of {}", KNOWN.join(", ")),
                    });
                }
            }
        }

        let server: ServerSection = s
            .get("server")
            .and_then(|v| self.section("server", v))
            .unwrap_or_default();
        let store: Option<StoreSection> = match s.get("store") {
            Some(v) => self.section("store", v),
            None => {
                self.error(
                    None,
                    "store",
                    "missing: add [store] with url = \"sqlite://countersign.db\"",
                );
                None
            }
        };
        let listen: ListenSection = s
            .get("listen")
            .and_then(|v| self.section("listen", v))
            .unwrap_or_default();
        let http: HttpSection = s
            .get("http")
            .and_then(|v| self.section("http", v))
            .unwrap_or_default();
        let http_span = s.get("http").map(|v| v.span()).unwrap_or(0..0);
        let http_header_read_timeout = self.duration(
            &http_span,
            "http.header_read_timeout",
            http.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let ldap_span = s.get("ldap").map(|v| v.span()).unwrap_or(0..0);
        let ldap: LdapSection = s
            .get("ldap")
            .and_then(|v| self.section("ldap", v))
            .unwrap_or_default();
        let directories: Vec<(DirectorySection, _)> = self.items("directory", s.get("directory"));
        let generator: Option<(GeneratorSection, _)> = s
            .get("password_generator")
            .and_then(|v| self.section("password_generator", v).map(|g| (g, v.span())));
        let mail: Vec<(MailProfileSection, _)> = self.items("mail_profile", s.get("mail_profile"));
        let sms: Vec<(SmsProfileSection, _)> = self.items("sms_profile", s.get("sms_profile"));
        let mechs: Vec<(MechanismSection, _)> =
            self.items("delivery_mechanism", s.get("delivery_mechanism"));
        let deliver: Option<(DeliverOtpSection, _)> = match s.get("deliver_otp") {
            Some(v) => self.section("deliver_otp", v).map(|d| (d, v.span())),
            None => {
                self.error(
                    None,
                    "deliver_otp",
                    "missing: add [deliver_otp] with identity_mapper and default_mechanisms",
                );
                None
            }
        };
        let limits_span = s.get("rate_limits").map(|v| v.span()).unwrap_or(0..0);
        let limits: RateLimitSection = s
            .get("rate_limits")
            .and_then(|v| self.section("rate_limits", v))
            .unwrap_or_default();
        let audit_span = s.get("audit").map(|v| v.span()).unwrap_or(0..0);
        let audit: AuditSection = s
            .get("audit")
            .and_then(|v| self.section("audit", v))
            .unwrap_or_default();
        let audit_retention = match audit.retention.as_deref() {
            None | Some("off") => None,
            Some(t) => match parse_duration(t).filter(|d| !d.is_zero()) {
                Some(d) => Some(d),
                None => {
                    self.key_error(
                        &audit_span,
                        "retention",
                        "audit.retention",
                        format!("{t:?}: expected a duration such as 400d, or off"),
                    );
                    None
                }
            },
        };

        // Store and key.
        let store_span = s.get("store").map(|v| v.span()).unwrap_or(0..0);
        let store = store.and_then(|st| {
            match st
                .url
                .strip_prefix("sqlite://")
                .or_else(|| st.url.strip_prefix("sqlite:"))
            {
                Some(p) if !p.is_empty() => Some(StoreConfig::Sqlite(self.path(Path::new(p)))),
                _ => {
                    self.error(
                        Some(store_span.clone()),
                        "store.url",
                        format!("{:?}: expected sqlite://PATH", st.url),
                    );
                    None
                }
            }
        });
        let secret_key_file = match (&server.secret_key_file, &store) {
            (Some(p), _) => self.path(p),
            (None, Some(StoreConfig::Sqlite(db))) => {
                let mut p = db.clone().into_os_string();
                p.push(".key");
                PathBuf::from(p)
            }
            (None, None) => PathBuf::new(),
        };
        if let Some(url) = &server.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.error(
                s.get("server").map(|v| v.span()),
                "server.public_url",
                format!("{url:?} is not an http(s) URL"),
            );
        }

        let listen_span = s.get("listen").map(|v| v.span());
        let address = |v: &mut Self, key: &str, text: &Option<String>| {
            text.as_deref().and_then(|a| match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    v.error(
                        listen_span.clone(),
                        format!("listen.{key}"),
                        format!("{a:?} is not an address such as 127.0.0.1:8080"),
                    );
                    None
                }
            })
        };
        let listen_http = address(self, "http", &listen.http);
        let listen_ldap = address(self, "ldap", &listen.ldap);
        let listen_ldaps = address(self, "ldaps", &listen.ldaps);
        let ldap = self.ldap_config(&ldap, &ldap_span, listen_ldaps.is_some());

        // Directories.
        let mut dirs = Vec::new();
        let mut ldap_dirs: Vec<LdapDirectoryConfig> = Vec::new();
        for (i, (d, span)) in directories.iter().enumerate() {
            let key = format!("directory[{i}]");
            if dirs.iter().any(|x: &DirectoryConfig| x.name == d.name)
                || ldap_dirs.iter().any(|x| x.name == d.name)
            {
                self.error(
                    Some(span.clone()),
                    format!("{key}.name"),
                    format!("directory {:?} is defined twice", d.name),
                );
            }
            if d.kind == "ldap" {
                if let Some(l) = self.ldap_directory(d, span, &key) {
                    ldap_dirs.push(l);
                }
                continue;
            }
            if d.kind != "local" {
                self.error(
                    Some(span.clone()),
                    format!("{key}.type"),
                    format!("{:?}: expected \"local\" or \"ldap\"", d.kind),
                );
                continue;
            }
            for (field, set) in [
                ("url", d.url.is_some()),
                ("starttls", d.starttls.is_some()),
                ("bind_dn", d.bind_dn.is_some()),
                ("user_base_dns", d.user_base_dns.is_some()),
                ("manager_attribute", d.manager_attribute.is_some()),
            ] {
                if set {
                    self.key_error(
                        span,
                        field,
                        format!("{key}.{field}"),
                        "only for directories of type ldap",
                    );
                }
            }

            let match_attributes: Vec<String> = d
                .match_attributes
                .clone()
                .unwrap_or_else(|| vec!["uid".to_owned()])
                .into_iter()
                .map(|a| a.to_lowercase())
                .collect();
            if match_attributes.is_empty() {
                self.error(
                    Some(span.clone()),
                    format!("{key}.match_attributes"),
                    "must name at least one attribute",
                );
            }
            dirs.push(DirectoryConfig {
                name: d.name.clone(),
                base_dn: d
                    .base_dn
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BASE_DN.to_owned()),
                match_attributes,
            });
        }

        let generator = match generator {
            None => Some(PasswordGenerator::numeric(6)),
            Some((g, span)) => match PasswordGenerator::new(&g.character_sets, &g.format) {
                Ok(g) => Some(g),
                Err(e) => {
                    let line = self
                        .find_key_line(span.clone(), "format")
                        .unwrap_or_else(|| self.line_of(span.start));
                    self.errors.push(ConfigError {
                        line: Some(line),
                        key: "password_generator.format".into(),
                        message: e.to_string(),
                    });
                    None
                }
            },
        };

        // Mail profiles.
        let mut mail_profiles = Vec::new();
        for (i, (m, span)) in mail.iter().enumerate() {
            let key = format!("mail_profile[{i}]");
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
            let password = match (&m.password_file, &m.password_env) {
                (Some(p), None) => self.secret_file(span, &format!("{key}.password_file"), p),
                (None, Some(v)) => self.secret_env(span, &format!("{key}.password_env"), v),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    self.error(
                        Some(span.clone()),
                        format!("{key}.password_file"),
                        "set password_file or password_env, not both",
                    );
                    None
                }
            };
            let credentials = match (&m.username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
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
            let ca_pem = m.ca_file.as_ref().and_then(|p| {
                let path = self.path(p);
                match std::fs::read(&path) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        self.error(
                            Some(span.clone()),
                            format!("{key}.ca_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            });
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
            mail_profiles.push(MailProfile {
                name: m.name.clone(),
                host: m.host.clone(),
                port: m.port.unwrap_or(match tls {
                    Tls::None => 25,
                    Tls::StartTls => 587,
                    Tls::Implicit => 465,
                }),
                tls,
                ca_pem,
                credentials,
                from: m.from.clone(),
                timeout,
                max_idle_connections: m.max_idle_connections.unwrap_or(4),
                idle_timeout,
            });
        }

        // SMS profiles.
        let mut sms_profiles = Vec::new();
        for (i, p) in sms.iter().enumerate() {
            let (p, span) = p;
            let key = format!("sms_profile[{i}]");
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
            let mut headers: Vec<(String, Secret)> = p
                .headers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect();
            for (h, f) in p.header_files.clone().unwrap_or_default() {
                if let Some(v) = self.secret_file(span, &format!("{key}.header_files.{h}"), &f) {
                    headers.push((h, v));
                }
            }
            for (h, var) in p.header_env.clone().unwrap_or_default() {
                if let Some(v) = self.secret_env(span, &format!("{key}.header_env.{h}"), &var) {
                    headers.push((h, v));
                }
            }
            let timeout = self.duration(
                span,
                &format!("{key}.timeout"),
                p.timeout.as_deref(),
                Duration::from_secs(10),
            );
            sms_profiles.push(SmsProfile {
                name: p.name.clone(),
                url: p.url.clone(),
                method,
                headers,
                body: p.body.clone(),
                encoding,
                timeout,
                success_status: p.success_status.clone().unwrap_or_default(),
            });
        }

        // Delivery mechanisms, with their references.
        let mut mechanisms: Vec<MechanismConfig> = Vec::new();
        for (i, (m, span)) in mechs.iter().enumerate() {
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
            let reference = |v: &mut Self,
                             field: &str,
                             r: &Option<String>,
                             names: &[String]|
             -> Option<String> {
                match r {
                    None => {
                        v.error(
                            Some(span.clone()),
                            format!("{key}.{field}"),
                            format!("missing: a {} mechanism needs {field}", m.kind),
                        );
                        None
                    }
                    Some(r) if !names.iter().any(|n| n == r) => {
                        v.key_error(
                            span,
                            field,
                            format!("{key}.{field}"),
                            format!("{r:?} names no [[{field}]]"),
                        );
                        None
                    }
                    Some(r) => Some(r.clone()),
                }
            };
            let mail_names: Vec<String> = mail_profiles.iter().map(|p| p.name.clone()).collect();
            let sms_names: Vec<String> = sms_profiles.iter().map(|p| p.name.clone()).collect();
            let (channel, transport) = match m.kind.as_str() {
                "email" => (
                    Channel::Email,
                    reference(self, "mail_profile", &m.mail_profile, &mail_names)
                        .map(|p| Transport::Email { mail_profile: p }),
                ),
                "sms" => (
                    Channel::Sms,
                    reference(self, "sms_profile", &m.sms_profile, &sms_names)
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
                    continue;
                }
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

        // Deliver OTP.
        let deliver = deliver.map(|(d, span)| {
            let mappers = match &d.identity_mapper {
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            };
            if mappers.is_empty() {
                self.error(
                    Some(span.clone()),
                    "deliver_otp.identity_mapper",
                    "must name at least one [[directory]]",
                );
            }
            for m in &mappers {
                if !dirs.iter().any(|d| d.name == *m) && !ldap_dirs.iter().any(|d| d.name == *m) {
                    self.key_error(
                        &span,
                        "identity_mapper",
                        "deliver_otp.identity_mapper",
                        format!("{m:?} names no [[directory]]"),
                    );
                }
            }
            if d.default_mechanisms.is_empty() {
                self.error(
                    Some(span.clone()),
                    "deliver_otp.default_mechanisms",
                    "must name at least one [[delivery_mechanism]]",
                );
            }
            for m in &d.default_mechanisms {
                let key = "deliver_otp.default_mechanisms";
                match mechanisms.iter().find(|x| x.name.eq_ignore_ascii_case(m)) {
                    None if !mechs.iter().any(|(x, _)| x.name.eq_ignore_ascii_case(m)) => {
                        self.key_error(
                            &span,
                            "default_mechanisms",
                            key,
                            format!("{m:?} names no [[delivery_mechanism]]"),
                        );
                    }
                    Some(x) if !x.enabled => {
                        self.key_error(
                            &span,
                            "default_mechanisms",
                            key,
                            format!("{m:?} is not enabled"),
                        );
                    }
                    _ => {}
                }
            }
            let otp_validity = self.duration(
                &span,
                "deliver_otp.otp_validity",
                d.otp_validity.as_deref(),
                Duration::from_secs(300),
            );
            if otp_validity.is_zero() {
                self.error(
                    Some(span.clone()),
                    "deliver_otp.otp_validity",
                    "must be longer than zero",
                );
            }
            let max_failed_attempts = d.max_failed_attempts.unwrap_or(5);
            if max_failed_attempts == 0 {
                self.error(
                    Some(span.clone()),
                    "deliver_otp.max_failed_attempts",
                    "must be at least 1",
                );
            }
            DeliverOtpConfig {
                directories: mappers.clone(),
                default_mechanisms: d.default_mechanisms.clone(),
                otp_validity,
                max_failed_attempts,
            }
        });

        let mut rate = |key: &str, text: &Option<String>, default: &str| -> Option<Rate> {
            let t = text.as_deref().unwrap_or(default);
            if t == "off" {
                return None;
            }
            let r = Rate::parse(t, parse_duration);
            if r.is_none() {
                self.error(
                    Some(limits_span.clone()),
                    format!("rate_limits.{key}"),
                    format!("{t:?}: expected N/DURATION such as 5/15m, or off"),
                );
            }
            r
        };
        let rate_limits = RateLimitConfig {
            deliver_per_user: rate("deliver_per_user", &limits.deliver_per_user, "5/15m"),
            deliver_per_client: rate("deliver_per_client", &limits.deliver_per_client, "60/1m"),
            verify_per_user: rate("verify_per_user", &limits.verify_per_user, "10/5m"),
            verify_per_client: rate("verify_per_client", &limits.verify_per_client, "120/1m"),
        };

        Some(Config {
            public_url: server.public_url,
            secret_key_file,
            store: store?,
            listen_http,
            http_reveal_recipients: http.reveal_recipients.unwrap_or(false),
            http_header_read_timeout,
            listen_ldap,
            listen_ldaps,
            ldap,
            directories: dirs,
            ldap_directories: ldap_dirs,
            generator: generator?,
            mail_profiles,
            sms_profiles,
            mechanisms,
            deliver_otp: deliver?,
            rate_limits,
            audit_retention,
        })
    }
}

/// `30s`, `5m`, `1h`, `1h 30m`, ...
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// The field a serde message complains about: "unknown field `x`" / "missing field `x`".
fn field_named_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}
