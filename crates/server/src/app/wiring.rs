//! Wiring: a validated [`Config`] becomes a store, directories, couriers and the core's
//! `OtpService`, and each front's state is built here and handed to it ([`App::ldap_server`],
//! [`App::http_server`]): fronts never read the configuration themselves. The store and the
//! directories are trait objects, so another implementation (PostgreSQL) drops in here alone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use countersign_core::application::Applications;
use countersign_core::login::LoginService;
use tokio::sync::Notify;

use countersign_core::attempt::AuditTrail;
use countersign_core::crypto::{MIN_KEY_LEN, OtpHasher, from_hex, to_hex};
use countersign_core::identity_mapper::IdentityMapper;
use countersign_core::mechanism::{Channel, DeliveryMechanism};
use countersign_core::otp::{OtpService, OtpSettings};
use countersign_core::password::PasswordAuthentication;
use countersign_core::ports::{Clock, Courier, Directory, Store};
use countersign_core::ratelimit::{RateLimiter, RateLimits};

use super::AppError;
use super::approvals;
use crate::config::{Config, StoreConfig, Transport};
use crate::delivery::{FileCourier, SmsCourier, SmtpCourier};
use crate::directory::{LdapDirectory, LocalDirectory};
use crate::http::{ApiState, ApprovalApi, CsrfKey, HttpLimits, HttpServer};
use crate::ldap::listener::tls_acceptor;
use crate::ldap::{LdapHandler, LdapLogin, LdapServer, LdapSettings, Limits};
use crate::signal::WaitingRoom;
use crate::store::{SqliteStore, StoreBackend};
use crate::system::{OsRandom, SystemClock, random_bytes};

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The same store, for closing it at shutdown.
    pub(super) backend: Arc<dyn StoreBackend>,
    pub local_directories: Vec<Arc<LocalDirectory>>,
    pub ldap_directories: Vec<Arc<LdapDirectory>>,
    pub otp: Arc<OtpService>,
    /// Logins under Approved OTP (every front's binds and logins go through it).
    pub login: Arc<LoginService>,
    pub applications: Applications,
    /// Who waits on which login, woken by decisions.
    pub waiting: Arc<WaitingRoom>,
    /// Rung when a login queued a message for the outbox worker.
    pub(super) outbox_wake: Arc<Notify>,
    pub(super) approval_couriers: HashMap<String, Arc<dyn Courier>>,
    /// The manager's page's CSRF key, derived from the server key (every node agrees).
    csrf: CsrfKey,
    /// The OpenID Connect provider, when some application is a client.
    pub oidc: Option<super::oidc::OidcParts>,
    /// `countersign demo`'s relying party, served beside the provider when set.
    pub demo_rp: Option<Arc<crate::http::demo_rp::DemoRp>>,
    pub clock: Arc<dyn Clock>,
}

/// rustls with the ring provider everywhere (reqwest is built without a provider of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl App {
    pub fn build(config: Config) -> Result<App, AppError> {
        Self::build_with_clock(config, Arc::new(SystemClock))
    }

    /// As [`App::build`], with the clock injected (tests move time forward).
    pub fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        install_crypto_provider();
        let clock_for_app = clock.clone();
        let backend: Arc<dyn StoreBackend> = match &config.store {
            StoreConfig::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        };
        let store: Arc<dyn Store> = backend.clone();
        let key = load_or_create_key(&config.secret_key_file)?;
        let hasher = OtpHasher::new(&key).ok_or(AppError::KeyTooShort)?;

        let dyn_store: Arc<dyn Store> = store.clone();
        let local_directories: Vec<Arc<LocalDirectory>> = config
            .local_directories()
            .map(|d| Arc::new(LocalDirectory::new(d.clone(), dyn_store.clone())))
            .collect();
        let ldap_directories: Vec<Arc<LdapDirectory>> = config
            .ldap_directories()
            .map(|d| {
                // The attributes the policies look at, fetched with the user.
                let mut d = d.clone();
                for name in policy_attributes(&config, &d.name) {
                    if !d.attributes.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                        d.attributes.push(name);
                    }
                }
                LdapDirectory::new(d).map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        let all_directories: Vec<Arc<dyn Directory>> = config
            .directories
            .iter()
            .filter_map(|d| {
                let local = local_directories
                    .iter()
                    .find(|l| l.name() == d.name())
                    .map(|l| l.clone() as Arc<dyn Directory>);
                local.or_else(|| {
                    ldap_directories
                        .iter()
                        .find(|l| l.name() == d.name())
                        .map(|l| l.clone() as Arc<dyn Directory>)
                })
            })
            .collect();
        let directories: Vec<Arc<dyn Directory>> = config
            .deliver_otp
            .directories
            .iter()
            .filter_map(|name| {
                let local = local_directories
                    .iter()
                    .find(|d| d.name() == name)
                    .map(|d| d.clone() as Arc<dyn Directory>);
                local.or_else(|| {
                    ldap_directories
                        .iter()
                        .find(|d| d.name() == name)
                        .map(|d| d.clone() as Arc<dyn Directory>)
                })
            })
            .collect();

        let mechanisms = delivery_mechanisms(&config)?;

        let passwords = Arc::new(PasswordAuthentication {
            mapper: IdentityMapper::new(directories),
            limits: Arc::new(rate_limits(&config)),
            audit: AuditTrail::new(dyn_store.clone(), clock.clone()),
            clock: clock.clone(),
        });
        let otp = OtpService {
            passwords,
            mechanisms,
            default_mechanisms: config.deliver_otp.default_mechanisms.clone(),
            generator: config.password_generator.generator.clone(),
            settings: OtpSettings {
                validity: config.deliver_otp.otp_validity,
                max_failed_attempts: config.deliver_otp.max_failed_attempts,
            },
            hasher,
            store: dyn_store,
            clock,
            random: Arc::new(OsRandom),
        };
        let otp = Arc::new(otp);
        let parts = approvals::build(&config, &otp, &store, &all_directories, &clock_for_app)?;
        let oidc = App::build_oidc(&config, &parts.applications, &store, &clock_for_app, &key);
        Ok(App {
            config,
            store,
            backend,
            local_directories,
            ldap_directories,
            otp,
            login: parts.login,
            applications: parts.applications,
            waiting: parts.waiting,
            outbox_wake: parts.outbox_wake,
            approval_couriers: parts.couriers,
            csrf: CsrfKey::derive(&key),
            oidc,
            demo_rp: None,
            clock: clock_for_app,
        })
    }

    /// The LDAP front's server, from `[ldap]`.
    pub fn ldap_server(&self) -> Result<Arc<LdapServer>, AppError> {
        let l = &self.config.ldap;
        let tls = match &l.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let settings = LdapSettings {
            allow_deliver_otp_without_tls: l.allow_deliver_otp_without_tls,
            bind_name_forms: l.bind_name_forms,
            reveal_recipients: l.reveal_recipients,
            tls_available: tls.is_some(),
            deliver_otp_enabled: self.config.deliver_otp.enabled,
            naming_contexts: self
                .config
                .directories
                .iter()
                .flat_map(|d| d.naming_contexts())
                .collect(),
        };
        let limits = Limits {
            max_message_bytes: l.max_message_bytes,
            idle_timeout: l.idle_timeout,
            max_connections: l.max_connections,
            max_connections_per_client: l.max_connections_per_client,
            max_operations_per_connection: l.max_operations_per_connection,
        };
        let login = LdapLogin {
            service: self.login.clone(),
            application: approvals::ldap_application(&self.config, &self.applications),
            approval_wait: l.approval_wait,
        };
        let handler = Arc::new(LdapHandler::new(self.otp.clone(), settings).with_login(login));
        Ok(Arc::new(LdapServer::new(handler, tls, limits)))
    }

    /// The HTTP API's state, from `[http]`.
    pub fn http_state(&self) -> ApiState {
        let own_origins = self
            .config
            .public_url
            .iter()
            .chain(self.config.approval.profiles.iter().map(|p| &p.server))
            .filter(|url| !url.is_empty())
            .cloned()
            .collect();
        let state = ApiState::new(
            self.otp.clone(),
            self.store.clone(),
            self.config.http_reveal_recipients,
            self.config.http_body_read_timeout,
            self.config.deliver_otp.enabled,
        )
        .with_approvals(ApprovalApi {
            login: self.login.clone(),
            applications: self.applications.clone(),
            keyless: approvals::implicit(approvals::IMPLICIT_HTTP_APPLICATION),
            csrf: self.csrf.clone(),
            own_origins,
        });
        let state = match self.oidc_api() {
            Some(oidc) => state.with_oidc(oidc),
            None => state,
        };
        match &self.demo_rp {
            Some(rp) => state.with_demo_rp(rp.clone()),
            None => state,
        }
    }

    /// The HTTP front's server (the API and the listener's limits), from `[http]`.
    pub fn http_server(&self) -> HttpServer {
        let c = &self.config;
        let limits = HttpLimits {
            header_read_timeout: c.http_header_read_timeout,
            max_connections: c.http_max_connections,
            max_connections_per_client: c.http_max_connections_per_client,
            trusted_proxies: c.http_trusted_proxies.clone(),
        };
        HttpServer::new(self.http_state(), limits)
    }

    /// The local directory named `name`, or the first one.
    pub fn local_directory(&self, name: Option<&str>) -> Result<Arc<LocalDirectory>, AppError> {
        match name {
            Some(n) => self
                .local_directories
                .iter()
                .find(|d| d.name() == n)
                .cloned()
                .ok_or_else(|| AppError::NoLocalDirectory(Some(n.to_owned()))),
            None => self
                .local_directories
                .first()
                .cloned()
                .ok_or(AppError::NoLocalDirectory(None)),
        }
    }
}

/// Reads the OTP hashing key (hex), or creates one readable only by its owner.
/// Takes group and other permissions away from an existing key file (one copied in, or made
/// by hand with a loose umask), saying so in the log: the key is what makes stolen OTP hashes
/// useless.
fn tighten_key_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        tracing::warn!(path = %path.display(), was = format!("{mode:o}"), "made the key file readable by its owner only");
    }
    Ok(())
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, AppError> {
    let io = |doing: &'static str, at: &Path| {
        let path = at.to_path_buf();
        move |source| AppError::KeyFile {
            path,
            doing,
            source,
        }
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            tighten_key_file(path).map_err(io("restrict the permissions of", path))?;
            let key = from_hex(&text).ok_or_else(|| AppError::KeyNotHex(path.to_path_buf()))?;
            if key.len() < MIN_KEY_LEN {
                return Err(AppError::KeyShorterThan {
                    path: path.to_path_buf(),
                    min: MIN_KEY_LEN,
                });
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = random_bytes(32);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io("create the folder of", path))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("create", path))?;
            f.write_all(to_hex(&key).as_bytes())
                .map_err(io("write", path))?;
            tracing::info!(path = %path.display(), "created a new OTP hashing key");
            Ok(key)
        }
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Every `[[delivery_mechanism]]` with the courier of its transport.
fn delivery_mechanisms(config: &Config) -> Result<Vec<DeliveryMechanism>, AppError> {
    let mut mechanisms = Vec::new();
    for m in &config.mechanisms {
        let courier: Arc<dyn Courier> = match &m.transport {
            Transport::Email { mail_profile } => {
                let p = config
                    .mail_profiles
                    .iter()
                    .find(|p| &p.name == mail_profile)
                    .ok_or_else(|| AppError::MissingProfile(mail_profile.clone()))?;
                Arc::new(SmtpCourier::new(p)?)
            }
            Transport::Sms { sms_profile } => {
                let p = config
                    .sms_profiles
                    .iter()
                    .find(|p| &p.name == sms_profile)
                    .ok_or_else(|| AppError::MissingProfile(sms_profile.clone()))?;
                Arc::new(SmsCourier::new(p)?)
            }
            Transport::File { directory, print } => Arc::new(FileCourier::new(
                &m.name,
                directory.clone(),
                *print,
                m.channel == Channel::Email,
            )),
        };
        mechanisms.push(DeliveryMechanism {
            name: m.name.clone(),
            channel: m.channel,
            enabled: m.enabled,
            subject: m.subject.clone(),
            text_before_otp: m.text_before_otp.clone(),
            text_after_otp: m.text_after_otp.clone(),
            courier,
        });
    }
    Ok(mechanisms)
}

/// The attributes the policies on directory `name` look at.
fn policy_attributes(config: &Config, name: &str) -> Vec<String> {
    countersign_core::approval::Policies::new(config.approval.policies.clone()).attributes_for(name)
}

/// `[rate_limits]` as the core's limiters.
fn rate_limits(config: &Config) -> RateLimits {
    let r = &config.rate_limits;
    // docs/rate-limits.md: `deliver_per_user` bounds both the deliveries a user receives
    // and the failed delivers per user and client; `verify_per_user` the failed
    // verifications and binds per user and client.
    let mut limits = RateLimits::default();
    limits.deliver_per_client = r.deliver_per_client.map(RateLimiter::new);
    limits.verify_per_client = r.verify_per_client.map(RateLimiter::new);
    limits.deliveries_per_user = r.deliver_per_user.map(RateLimiter::new);
    limits.deliver_failures_per_user_and_client = r.deliver_per_user.map(RateLimiter::new);
    limits.verify_failures_per_user_and_client = r.verify_per_user.map(RateLimiter::new);
    limits.failures_per_user = r.failures_per_user.map(RateLimiter::new);
    limits
}
