//! A directory server (OpenLDAP, Active Directory, ...) as a `[[directory]]` of type `ldap`.
//!
//! Lookups go over one long-lived service connection (bound as `bind_dn`, or anonymous), which is
//! dropped on any transport failure and re-established on demand, no sooner than a backoff that
//! doubles from 1 s to 30 s while the server stays down: until then lookups fail fast with
//! "unavailable". Password checks bind as the user on a fresh connection, so a user's bind never
//! changes the service connection's identity. Every value put into a filter is escaped
//! (RFC 4515); DNs are compared in their RFC 4514 normalized form. Nothing is ever written.
//!
//! Account state read from entries: OpenLDAP ppolicy's `pwdAccountLockedTime` (present ⇒
//! locked). A server that enforces its own policy refuses the bind as well.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use countersign_core::Secret;
use countersign_core::identity::Identity;
use countersign_core::model::{AccountState, Dn, Manager, Timestamp, User};
use countersign_core::ports::{Directory, DirectoryError, Lookup};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};

use crate::config::LdapDirectoryConfig;

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Result code noSuchObject.
const NO_SUCH_OBJECT: u32 = 32;
/// Result code invalidCredentials.
const INVALID_CREDENTIALS: u32 = 49;

/// When the server is considered down, and for how long to wait before the next attempt.
#[derive(Debug, Default)]
struct Health {
    retry_at: Option<Instant>,
    backoff: Duration,
}

pub struct LdapDirectory {
    config: LdapDirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    service: tokio::sync::Mutex<Option<Ldap>>,
    health: Mutex<Health>,
}

impl LdapDirectory {
    pub fn new(config: LdapDirectoryConfig) -> Result<Self, String> {
        let tls = match &config.ca_pem {
            None => None,
            Some(pem) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|e| format!("directory {}: ca_file: {e}", config.name))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("directory {}: ca_file: {e}", config.name))?;
                }
                let client = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("directory {}: TLS: {e}", config.name))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(Arc::new(client))
            }
        };
        Ok(Self {
            config,
            tls,
            service: tokio::sync::Mutex::new(None),
            health: Mutex::new(Health::default()),
        })
    }

    pub fn config(&self) -> &LdapDirectoryConfig {
        &self.config
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Unavailable {
            directory: self.config.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// A new connection, TLS as configured.
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.config.timeout)
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.unavailable(format!("cannot connect to {}: {e}", self.config.url)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }

    /// The service connection, (re)established when needed, unless the server is in backoff.
    async fn service(&self) -> Result<Ldap, DirectoryError> {
        let mut slot = self.service.lock().await;
        if let Some(ldap) = slot.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        *slot = None;
        if let Ok(h) = self.health.lock()
            && let Some(at) = h.retry_at
            && Instant::now() < at
        {
            return Err(self.unavailable("the directory server is down; retrying shortly"));
        }
        let mut ldap = match self.connect().await {
            Ok(l) => l,
            Err(e) => {
                self.mark_down();
                return Err(e);
            }
        };
        if let (Some(dn), Some(pw)) = (&self.config.bind_dn, &self.config.bind_password) {
            let bound = ldap
                .with_timeout(self.config.timeout)
                .simple_bind(dn, pw.expose())
                .await;
            match bound.map(|r| r.success()) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(self.unavailable(format!("service account bind refused: {e}")));
                }
                Err(e) => {
                    self.mark_down();
                    return Err(self.unavailable(format!("service account bind failed: {e}")));
                }
            }
        }
        if let Ok(mut h) = self.health.lock() {
            *h = Health::default();
        }
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    fn mark_down(&self) {
        if let Ok(mut h) = self.health.lock() {
            h.backoff = (h.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            h.retry_at = Some(Instant::now() + h.backoff);
            tracing::warn!(directory = %self.config.name, retry_in = ?h.backoff, "directory server unreachable");
        }
    }

    async fn drop_service(&self) {
        *self.service.lock().await = None;
        self.mark_down();
    }

    fn wanted_attributes(&self) -> Vec<String> {
        let c = &self.config;
        let mut attrs = vec![
            c.mail_attribute.clone(),
            c.mobile_attribute.clone(),
            c.display_name_attribute.clone(),
            c.manager_attribute.clone(),
            c.preferred_mechanism_attribute.clone(),
            "pwdAccountLockedTime".to_owned(),
        ];
        attrs.extend(c.match_attributes.iter().cloned());
        attrs.extend(c.attributes.iter().cloned());
        attrs
    }

    /// Searches with the service connection; noSuchObject is an empty answer.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let mut ldap = self.service().await?;
        let attrs = self.wanted_attributes();
        match ldap
            .with_timeout(self.config.timeout)
            .search(base, scope, filter, attrs)
            .await
        {
            Ok(result) => match result.success() {
                Ok((entries, _)) => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
                Err(LdapError::LdapResult { result }) if result.rc == NO_SUCH_OBJECT => {
                    Ok(Vec::new())
                }
                Err(e) => Err(self.unavailable(format!("search failed: {e}"))),
            },
            Err(e) => {
                self.drop_service().await;
                Err(self.unavailable(format!("search failed: {e}")))
            }
        }
    }

    fn within_bases(&self, dn: &Dn) -> bool {
        self.config
            .user_base_dns
            .iter()
            .any(|b| dn.is_within(&Dn::new(b.clone())))
    }

    fn with_match_filter(&self, filter: String) -> String {
        match &self.config.match_filter {
            Some(extra) => format!("(&{filter}{extra})"),
            None => filter,
        }
    }

    fn user_from(&self, e: SearchEntry) -> User {
        let c = &self.config;
        let attrs: BTreeMap<String, Vec<String>> = e
            .attrs
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        let get = |name: &str| attrs.get(&name.to_lowercase()).cloned().unwrap_or_default();
        let dn = Dn::new(e.dn);
        let username = c
            .match_attributes
            .iter()
            .find_map(|a| get(a).into_iter().next())
            .unwrap_or_else(|| dn.as_str().to_owned());
        let locked = attrs.contains_key("pwdaccountlockedtime");
        User {
            directory: c.name.clone(),
            dn,
            username,
            display_name: get(&c.display_name_attribute).into_iter().next(),
            mail: get(&c.mail_attribute),
            mobile: get(&c.mobile_attribute),
            preferred_mechanisms: get(&c.preferred_mechanism_attribute),
            sponsor: None,
            account: AccountState {
                disabled: false,
                // ppolicy removes the attribute when a timed lockout ends.
                locked_until: locked.then_some(Timestamp(i64::MAX)),
                password_expires_at: None,
            },
            attributes: attrs,
        }
    }

    /// Binds as `dn` with `password` on a new connection: Ok(true) accepted, Ok(false) refused.
    async fn bind_as(&self, dn: &str, password: &Secret) -> Result<bool, DirectoryError> {
        // An empty password would be an unauthenticated bind, which servers accept (RFC 4513
        // §5.1.2): never a valid password.
        if password.is_empty() {
            return Ok(false);
        }
        let mut ldap = self.connect().await?;
        let outcome = ldap
            .with_timeout(self.config.timeout)
            .simple_bind(dn, password.expose())
            .await;
        let _ = ldap.unbind().await;
        match outcome {
            Ok(r) if r.rc == 0 => Ok(true),
            Ok(r) if r.rc == INVALID_CREDENTIALS => Ok(false),
            // Locked out by the server's policy, constraint violations and the like: refused.
            Ok(r) if r.rc < 51 || r.rc == 53 => Ok(false),
            Ok(r) => Err(self.unavailable(format!("bind answered {}", r.rc))),
            Err(e) => Err(self.unavailable(format!("bind failed: {e}"))),
        }
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError> {
        let entries = match identity {
            Identity::Dn(dn) => {
                if !self.within_bases(dn) {
                    return Ok(Lookup::NotFound);
                }
                self.search(
                    dn.as_str(),
                    Scope::Base,
                    &self.with_match_filter("(objectClass=*)".into()),
                )
                .await?
            }
            Identity::Username(name) => {
                let value = ldap_escape(name.as_str());
                let any: String = self
                    .config
                    .match_attributes
                    .iter()
                    .map(|a| format!("({a}={value})"))
                    .collect();
                let filter = self.with_match_filter(format!("(|{any})"));
                let mut found: Vec<SearchEntry> = Vec::new();
                for base in &self.config.user_base_dns {
                    for e in self.search(base, Scope::Subtree, &filter).await? {
                        let norm = Dn::new(e.dn.clone()).normalized();
                        if !found
                            .iter()
                            .any(|f| Dn::new(f.dn.clone()).normalized() == norm)
                        {
                            found.push(e);
                        }
                    }
                }
                found
            }
        };
        let mut entries = entries;
        Ok(match entries.len() {
            0 => Lookup::NotFound,
            1 => Lookup::Found(Box::new(self.user_from(entries.remove(0)))),
            _ => Lookup::Ambiguous,
        })
    }

    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError> {
        self.bind_as(user.dn.as_str(), password).await
    }

    async fn check_password_of_nobody(&self, password: &Secret) {
        // A bind the server refuses costs about what a real one does.
        if let Some(base) = self.config.user_base_dns.first() {
            let _ = self
                .bind_as(&format!("cn=countersign-nobody,{base}"), password)
                .await;
        }
    }

    async fn find_manager(&self, user: &User) -> Result<Option<Manager>, DirectoryError> {
        let key = self.config.manager_attribute.to_lowercase();
        let Some(manager_dn) = user.attributes.get(&key).and_then(|v| v.first()) else {
            return Ok(None);
        };
        let manager_dn = Dn::new(manager_dn.clone());
        // Pointing back at the user, or outside the directory's bases: no manager.
        if manager_dn.normalized() == user.dn.normalized() || !self.within_bases(&manager_dn) {
            return Ok(None);
        }
        let mut entries = self
            .search(manager_dn.as_str(), Scope::Base, "(objectClass=*)")
            .await?;
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        let m = self.user_from(entry);
        Ok(Some(Manager {
            dn: Some(m.dn),
            name: m.display_name,
            mail: m.mail.into_iter().next(),
            mobile: m.mobile.into_iter().next(),
        }))
    }

    fn stops_chain_when_unavailable(&self) -> bool {
        self.config.stop_when_unavailable
    }
}
