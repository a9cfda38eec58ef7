//! Wiring: a validated [`Config`] becomes a store, directories, couriers and the core's
//! `OtpService`. Fronts and the CLI get what they need from [`App`].

use std::path::Path;
use std::sync::Arc;

use countersign_core::attempt::AuditTrail;
use countersign_core::crypto::{MIN_KEY_LEN, OtpHasher, from_hex, to_hex};
use countersign_core::identity_mapper::IdentityMapper;
use countersign_core::mechanism::{Channel, DeliveryMechanism};
use countersign_core::otp::{OtpService, OtpSettings};
use countersign_core::password::PasswordAuthentication;
use countersign_core::ports::{Clock, Courier, Directory, Store};
use countersign_core::ratelimit::{RateLimiter, RateLimits};

use crate::config::{Config, StoreConfig, Transport};
use crate::delivery::{FileCourier, SmsCourier, SmtpCourier};
use crate::directory::{LdapDirectory, LocalDirectory};
use crate::ldap::listener::tls_acceptor;
use crate::ldap::{LdapHandler, LdapServer, LdapSettings, Limits};
use crate::store::SqliteStore;
use crate::system::{OsRandom, SystemClock, random_bytes};

pub struct App {
    pub config: Config,
    pub store: Arc<SqliteStore>,
    pub local_directories: Vec<Arc<LocalDirectory>>,
    pub ldap_directories: Vec<Arc<LdapDirectory>>,
    pub otp: Arc<OtpService>,
    pub clock: Arc<dyn Clock>,
}

/// The sockets of the configured fronts, bound before serving (so a demo or a test can bind
/// port 0 and learn the port).
#[derive(Default)]
pub struct Listeners {
    pub http: Option<tokio::net::TcpListener>,
    pub ldap: Option<tokio::net::TcpListener>,
    pub ldaps: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds every address in `[listen]`.
    pub async fn bind(config: &Config) -> Result<Listeners, String> {
        async fn bind(
            addr: Option<std::net::SocketAddr>,
            what: &str,
        ) -> Result<Option<tokio::net::TcpListener>, String> {
            match addr {
                None => Ok(None),
                Some(a) => tokio::net::TcpListener::bind(a)
                    .await
                    .map(Some)
                    .map_err(|e| format!("cannot listen on {a} (listen.{what}): {e}")),
            }
        }
        Ok(Listeners {
            http: bind(config.listen_http, "http").await?,
            ldap: bind(config.listen_ldap, "ldap").await?,
            ldaps: bind(config.listen_ldaps, "ldaps").await?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.ldap.is_none() && self.ldaps.is_none()
    }
}

/// rustls with the ring provider everywhere (reqwest is built without a provider of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl App {
    pub fn build(config: Config) -> Result<App, String> {
        Self::build_with_clock(config, Arc::new(SystemClock))
    }

    /// As [`App::build`], with the clock injected (tests move time forward).
    pub fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<App, String> {
        install_crypto_provider();
        let clock_for_app = clock.clone();
        let store = match &config.store {
            StoreConfig::Sqlite(path) => {
                Arc::new(SqliteStore::open(path).map_err(|e| e.to_string())?)
            }
        };
        let key = load_or_create_key(&config.secret_key_file)?;
        let hasher = OtpHasher::new(&key).ok_or("secret key too short")?;

        let dyn_store: Arc<dyn Store> = store.clone();
        let local_directories: Vec<Arc<LocalDirectory>> = config
            .directories
            .iter()
            .map(|d| Arc::new(LocalDirectory::new(d.clone(), dyn_store.clone())))
            .collect();
        let ldap_directories: Vec<Arc<LdapDirectory>> = config
            .ldap_directories
            .iter()
            .map(|d| LdapDirectory::new(d.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
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

        let mut mechanisms = Vec::new();
        for m in &config.mechanisms {
            let courier: Arc<dyn Courier> = match &m.transport {
                Transport::Email { mail_profile } => {
                    let p = config
                        .mail_profiles
                        .iter()
                        .find(|p| &p.name == mail_profile)
                        .ok_or_else(|| format!("mail profile {mail_profile} missing"))?;
                    Arc::new(SmtpCourier::new(p)?)
                }
                Transport::Sms { sms_profile } => {
                    let p = config
                        .sms_profiles
                        .iter()
                        .find(|p| &p.name == sms_profile)
                        .ok_or_else(|| format!("SMS profile {sms_profile} missing"))?;
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
        let passwords = Arc::new(PasswordAuthentication {
            mapper: IdentityMapper::new(directories),
            limits: Arc::new(limits),
            audit: AuditTrail {
                store: dyn_store.clone(),
                clock: clock.clone(),
            },
            clock: clock.clone(),
        });
        let otp = OtpService {
            passwords,
            mechanisms,
            default_mechanisms: config.deliver_otp.default_mechanisms.clone(),
            generator: config.generator.clone(),
            settings: OtpSettings {
                validity: config.deliver_otp.otp_validity,
                max_failed_attempts: config.deliver_otp.max_failed_attempts,
            },
            hasher,
            store: dyn_store,
            clock,
            random: Arc::new(OsRandom),
        };
        Ok(App {
            config,
            store,
            local_directories,
            ldap_directories,
            otp: Arc::new(otp),
            clock: clock_for_app,
        })
    }

    /// The LDAP front's server, from `[ldap]`.
    pub fn ldap_server(&self) -> Result<Arc<LdapServer>, String> {
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
            naming_contexts: self
                .config
                .directories
                .iter()
                .map(|d| d.base_dn.clone())
                .chain(
                    self.config
                        .ldap_directories
                        .iter()
                        .flat_map(|d| d.user_base_dns.clone()),
                )
                .collect(),
        };
        let limits = Limits {
            max_message_bytes: l.max_message_bytes,
            idle_timeout: l.idle_timeout,
            max_connections: l.max_connections,
            max_connections_per_client: l.max_connections_per_client,
            max_operations_per_connection: l.max_operations_per_connection,
        };
        let handler = Arc::new(LdapHandler::new(self.otp.clone(), settings));
        Ok(Arc::new(LdapServer::new(handler, tls, limits)))
    }

    /// Serves every bound front until `shutdown` completes.
    pub async fn serve(
        &self,
        listeners: Listeners,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(l) = listeners.http {
            let state = crate::http::ApiState::new(self);
            let mut rx = stopped.clone();
            tasks.spawn(async move {
                let until = async move {
                    let _ = rx.changed().await;
                };
                if let Err(e) = crate::http::serve(l, state, until).await {
                    tracing::error!(error = %e, "HTTP front stopped");
                }
            });
        }
        if listeners.ldap.is_some() || listeners.ldaps.is_some() {
            let server = self.ldap_server()?;
            if let Some(l) = listeners.ldap {
                tasks.spawn(server.clone().serve(l, false, stopped.clone()));
            }
            if let Some(l) = listeners.ldaps {
                tasks.spawn(server.serve(l, true, stopped.clone()));
            }
        }
        if let Some(retention) = self.config.audit_retention {
            let (store, clock) = (self.store.clone(), self.clock.clone());
            let mut rx = stopped.clone();
            tasks.spawn(async move {
                loop {
                    prune_audit(store.as_ref(), clock.as_ref(), retention).await;
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                        _ = rx.changed() => return,
                    }
                }
            });
        }
        shutdown.await;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// The local directory named `name`, or the first one.
    pub fn local_directory(&self, name: Option<&str>) -> Result<Arc<LocalDirectory>, String> {
        match name {
            Some(n) => self
                .local_directories
                .iter()
                .find(|d| d.name() == n)
                .cloned()
                .ok_or_else(|| format!("no local [[directory]] named {n:?} in the configuration")),
            None => {
                self.local_directories.first().cloned().ok_or_else(|| {
                    "the configuration has no [[directory]] of type local".to_owned()
                })
            }
        }
    }
}

/// Deletes audit records older than `retention`.
pub async fn prune_audit(store: &dyn Store, clock: &dyn Clock, retention: std::time::Duration) {
    match store.prune_audit(clock.now().minus(retention)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "old audit records removed"),
        Err(e) => tracing::warn!(error = %e, "audit records could not be pruned"),
    }
}

/// Reads the OTP hashing key (hex), or creates one readable only by its owner.
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key =
                from_hex(&text).ok_or_else(|| format!("{}: not a hex key", path.display()))?;
            if key.len() < MIN_KEY_LEN {
                return Err(format!(
                    "{}: key shorter than {MIN_KEY_LEN} bytes",
                    path.display()
                ));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = random_bytes(32);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            f.write_all(to_hex(&key).as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new OTP hashing key");
            Ok(key)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}
