//! `countersign.toml`: parsed into raw sections (serde, unknown keys refused), then validated into
//! an immutable [`Config`]. Every problem is collected, not just the first, and each names the
//! key (and the line, where the file shows it). Secrets are only read from `*_file` paths or
//! environment variables, never inline.
//!
//! Relative paths are resolved against the directory of the config file.
//!
//! This module holds the loader and the list of sections; [`validator`] the helpers every area
//! shares (errors, lines, durations, PEM files, secrets); each area its own file: the fronts
//! (`[server]`, `[listen]`, `[http]`, `[ldap]`), `[[directory]]`, delivery (mail and SMS
//! profiles, mechanisms), `[deliver_otp]` with `[password_generator]`, Approved OTP
//! (`[[approval_profile]]`, `[[policy]]`, `[approval]`, `[outbox]`), `[[application]]`,
//! `[store]`, `[audit]` and `[rate_limits]`. [`show`] prints the effective configuration
//! (`countersign config show`).

mod applications;
mod approval;
mod audit;
mod deliver_otp;
mod delivery;
mod directories;
mod fronts;
mod oidc;
mod policy;
mod rate_limits;
mod show;
mod store;
mod validator;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

pub use applications::{ApplicationConfig, MIN_API_KEY_CHARS};
pub use approval::{
    ApprovalConfig, ApprovalProfileConfig, DEFAULT_APPROVAL_SUBJECT, DEFAULT_INFORMATION_SUBJECT,
};
pub use deliver_otp::{DeliverOtpConfig, GeneratorConfig};
pub use delivery::{MailProfile, MechanismConfig, SmsEncoding, SmsProfile, Tls, Transport};
pub use directories::{
    AccountPolicy, DEFAULT_BASE_DN, DirectoryConfig, LdapDirectoryConfig, LocalDirectoryConfig,
};
pub use fronts::{BindNameForms, LdapConfig, MAX_LDAP_MESSAGE};
pub use oidc::{OidcClientConfig, OidcConfig};
pub use rate_limits::RateLimitConfig;
pub use show::UnknownSection;
pub use store::StoreConfig;
pub use validator::{ConfigError, ConfigErrors, SecretSource};

use validator::Validator;

/// The top-level sections and arrays of tables a file may hold, in the order unknown keys are
/// told about and `config show` prints them.
pub const SECTIONS: [&str; 19] = [
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
    "approval_profile",
    "policy",
    "approval",
    "outbox",
    "application",
    "oidc",
    "rate_limits",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: Option<String>,
    pub secret_key_file: PathBuf,
    pub store: StoreConfig,
    pub listen_http: Option<SocketAddr>,
    pub http_reveal_recipients: bool,
    pub http_header_read_timeout: Duration,
    pub http_body_read_timeout: Duration,
    pub http_max_connections: usize,
    pub http_max_connections_per_client: usize,
    /// `[http] trusted_proxies`.
    pub http_trusted_proxies: Vec<crate::admission::Network>,
    pub listen_ldap: Option<SocketAddr>,
    pub listen_ldaps: Option<SocketAddr>,
    pub ldap: LdapConfig,
    /// Every `[[directory]]`, in the order of the file.
    pub directories: Vec<DirectoryConfig>,
    pub password_generator: GeneratorConfig,
    pub mail_profiles: Vec<MailProfile>,
    pub sms_profiles: Vec<SmsProfile>,
    pub mechanisms: Vec<MechanismConfig>,
    pub deliver_otp: DeliverOtpConfig,
    /// Approved OTP: `[[approval_profile]]`, `[[policy]]`, `[approval]` and `[outbox]`.
    pub approval: ApprovalConfig,
    /// Every `[[application]]`, in the order of the file.
    pub applications: Vec<ApplicationConfig>,
    /// `[oidc]`: lifetimes of what the OpenID Connect provider issues.
    pub oidc: OidcConfig,
    pub rate_limits: RateLimitConfig,
    /// `[audit] retention`; `None` keeps records forever.
    pub audit_retention: Option<Duration>,
}

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
        let mut v = Validator::new(text, base);
        let config = v.run();
        match config {
            Some(c) if v.errors.is_empty() => Ok(c),
            _ => Err(ConfigErrors(v.errors)),
        }
    }

    /// The `[[directory]]`s of type local, in order.
    pub fn local_directories(&self) -> impl Iterator<Item = &LocalDirectoryConfig> {
        self.directories.iter().filter_map(|d| match d {
            DirectoryConfig::Local(l) => Some(l),
            DirectoryConfig::Ldap(_) => None,
        })
    }

    /// The `[[directory]]`s of type ldap, in order.
    pub fn ldap_directories(&self) -> impl Iterator<Item = &LdapDirectoryConfig> {
        self.directories.iter().filter_map(|d| match d {
            DirectoryConfig::Ldap(l) => Some(l.as_ref()),
            DirectoryConfig::Local(_) => None,
        })
    }
}

/// `30s`, `5m`, `1h`, `1h 30m`, ...
pub fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

/// The file's top level: each section kept as a spanned value so errors can name their line.
/// (serde's `flatten` would lose the spans.)
type Sections = BTreeMap<String, Spanned<toml::Value>>;

impl Validator<'_> {
    /// Reads every section (in the order of [`SECTIONS`]' areas, so problems are listed in a
    /// stable order), then validates each area and the references between them.
    fn run(&mut self) -> Option<Config> {
        let s: Sections = match toml::from_str(self.text) {
            Ok(s) => s,
            Err(e) => {
                let span = e.span();
                self.error(span, "(syntax)", e.message().trim().to_owned());
                return None;
            }
        };
        for key in s.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                let line = self.top_level_line(key);
                self.errors.push(ConfigError {
                    line,
                    key: key.clone(),
                    message: format!("unknown key; expected one of {}", SECTIONS.join(", ")),
                });
            }
        }

        let (server, _) = self.optional::<fronts::ServerSection>("server", s.get("server"));
        let store = self.required::<store::StoreSection>(
            "store",
            s.get("store"),
            "missing: add [store] with url = \"sqlite://countersign.db\"",
        );
        let (listen, _) = self.optional::<fronts::ListenSection>("listen", s.get("listen"));
        let (http, http_span) = self.optional::<fronts::HttpSection>("http", s.get("http"));
        let http_limits = self.http_limits(&http, &http_span);
        let (ldap, ldap_span) = self.optional::<fronts::LdapSection>("ldap", s.get("ldap"));
        let directories = self.items("directory", s.get("directory"));
        let generator = s
            .get("password_generator")
            .and_then(|v| self.section("password_generator", v).map(|g| (g, v.span())));
        let mail = self.items("mail_profile", s.get("mail_profile"));
        let sms = self.items("sms_profile", s.get("sms_profile"));
        let mechs = self.items("delivery_mechanism", s.get("delivery_mechanism"));
        let deliver = self.required::<deliver_otp::DeliverOtpSection>(
            "deliver_otp",
            s.get("deliver_otp"),
            "missing: add [deliver_otp] with identity_mapper and default_mechanisms",
        );
        let (limits, limits_span) =
            self.optional::<rate_limits::RateLimitSection>("rate_limits", s.get("rate_limits"));
        let (audit, audit_span) = self.optional::<audit::AuditSection>("audit", s.get("audit"));
        let audit_retention = self.audit_retention(&audit, &audit_span);

        let store = store.and_then(|(st, span)| self.store(st, &span));
        let (public_url, secret_key_file) =
            self.server(&server, s.get("server").map(|v| v.span()), store.as_ref());
        let listen = self.listen(&listen, s.get("listen").map(|v| v.span()));
        let ldap = self.ldap_config(&ldap, &ldap_span, listen.ldaps.is_some());
        let directories = self.directories(&directories);
        let password_generator = self.generator(generator);
        let mail_profiles = self.mail_profiles(&mail);
        let sms_profiles = self.sms_profiles(&sms);
        let mechanisms = self.mechanisms(&mechs, &mail_profiles, &sms_profiles);
        let deliver_otp = deliver.map(|d| self.deliver_otp(d, &directories, &mechs, &mechanisms));
        let refs = approval::Referents {
            public_url: public_url.as_deref(),
            directories: &directories,
            mail_profiles: &mail_profiles,
            sms_profiles: &sms_profiles,
            file_mechanisms: mechanisms
                .iter()
                .filter(|m| matches!(m.transport, Transport::File { .. }))
                .map(|m| m.name.as_str())
                .collect(),
        };
        let approval = self.approved_otp(&s, &refs);
        let applications = self.application_list(&s, &ldap, &ldap_span);
        let (oidc_section, oidc_span) = self.optional::<oidc::OidcSection>("oidc", s.get("oidc"));
        let oidc = self.oidc(&oidc_section, &oidc_span);
        if applications.iter().any(|a| a.oidc.is_some()) {
            match &public_url {
                None => self.error(
                    s.get("application").map(|v| v.span()),
                    "server.public_url",
                    "missing: OpenID Connect clients need [server] public_url (the issuer \
                     their users' browsers and servers reach)",
                ),
                Some(url) => self.issuer(url, s.get("server").map(|v| v.span())),
            }
        }
        let rate_limits = self.rate_limits(&limits, &limits_span);

        Some(Config {
            public_url,
            secret_key_file,
            store: store?,
            listen_http: listen.http,
            http_reveal_recipients: http.reveal_recipients.unwrap_or(false),
            http_header_read_timeout: http_limits.header_read_timeout,
            http_body_read_timeout: http_limits.body_read_timeout,
            http_max_connections: http_limits.max_connections,
            http_max_connections_per_client: http_limits.max_connections_per_client,
            http_trusted_proxies: http_limits.trusted_proxies,
            listen_ldap: listen.ldap,
            listen_ldaps: listen.ldaps,
            ldap,
            directories,
            password_generator: password_generator?,
            mail_profiles,
            sms_profiles,
            mechanisms,
            deliver_otp: deliver_otp?,
            approval,
            applications,
            oidc,
            rate_limits,
            audit_retention,
        })
    }

    /// `[[approval_profile]]`, `[[policy]]`, `[approval]` and `[outbox]`, read and checked
    /// against what they refer to.
    fn approved_otp(&mut self, s: &Sections, refs: &approval::Referents<'_>) -> ApprovalConfig {
        let sections = self.items("approval_profile", s.get("approval_profile"));
        let policies = self.items("policy", s.get("policy"));
        let (settings, settings_span) =
            self.optional::<policy::ApprovalSection>("approval", s.get("approval"));
        let (outbox, outbox_span) =
            self.optional::<policy::OutboxSection>("outbox", s.get("outbox"));
        let profiles = self.approval_profiles(&sections, refs);
        let policies = self.policies(&policies, &sections, refs.directories);
        let (default_profile, grace_period) =
            self.approval_settings(&settings, &settings_span, &sections, !policies.is_empty());
        ApprovalConfig {
            profiles,
            policies,
            default_profile,
            grace_period,
            rejection_cooldown: self.rejection_cooldown(&settings, &settings_span),
            retry: self.retry_schedule(&outbox, &outbox_span),
        }
    }

    /// `[[application]]`, and `[ldap] application` checked against them.
    fn application_list(
        &mut self,
        s: &Sections,
        ldap: &LdapConfig,
        ldap_span: &validator::Span,
    ) -> Vec<ApplicationConfig> {
        let sections = self.items("application", s.get("application"));
        let applications = self.applications(&sections);
        self.ldap_application(ldap, ldap_span, &applications);
        applications
    }
}
