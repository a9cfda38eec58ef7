//! A directory server (OpenLDAP, Active Directory, ...) as a `[[directory]]` of type `ldap`.
//!
//! Lookups go over one long-lived service connection (bound as `bind_dn`, or anonymous), which is
//! dropped on a transport failure and re-established on demand, no sooner than a backoff that
//! doubles from 1 s to 30 s while the server stays down: until then lookups fail fast with
//! "unavailable". Connections carry a generation, so a late failure on an old connection neither
//! tears down a newer one nor doubles the backoff again. Password checks bind as the user on a
//! fresh connection, so a user's bind never changes the service connection's identity. Every
//! value put into a filter is escaped (RFC 4515); DNs are compared in their RFC 4514
//! normalized form. Nothing is ever written.
//!
//! Account state (`account_policy`): the entry's attributes as [`super::account`] reads them,
//! with the OpenLDAP ppolicy entry that governs the user (its `pwdPolicySubentry`, else
//! `password_policy_dn`) read over the service connection and kept for [`POLICY_TTL`]; user
//! binds ask for the password policy response control, and a refused bind's reason (that
//! control, AD's diagnostic) is what the audit shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use countersign_core::Secret;
use countersign_core::error::Refusal;
use countersign_core::identity::Identity;
use countersign_core::model::{AccountState, Dn, Manager, User};
use countersign_core::password::account_refusal;
use countersign_core::ports::{Clock, Directory, DirectoryError, Lookup};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions, ldap_escape,
};

use crate::setup::SetupError;

mod binds;

use super::account::{self, Attributes, PasswordPolicy};
use crate::config::LdapDirectoryConfig;
use crate::system::SystemClock;

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a ppolicy entry read is trusted; policies change rarely, users log in often.
pub const POLICY_TTL: Duration = Duration::from_secs(60);
/// Distinct policy entries kept at most (they are named by the directory, not by clients).
const MAX_POLICIES: usize = 256;

// LDAP result codes (RFC 4511 appendix A).
const SIZE_LIMIT_EXCEEDED: u32 = 4;
const CONSTRAINT_VIOLATION: u32 = 19;
const NO_SUCH_OBJECT: u32 = 32;
const INVALID_DN_SYNTAX: u32 = 34;
const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const INVALID_CREDENTIALS: u32 = 49;
const UNWILLING_TO_PERFORM: u32 = 53;

/// When the server is considered down, and for how long to wait before the next attempt.
#[derive(Debug, Default)]
struct Health {
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// What a search may treat as "nothing there" rather than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Reading one entry by DN: noSuchObject and invalidDNSyntax mean nobody.
    IsEmpty,
    /// Searching a configured base: its absence is a configuration problem, not "no user".
    IsError,
}

pub struct LdapDirectory {
    config: LdapDirectoryConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The service connection and its generation.
    service: tokio::sync::Mutex<(u64, Option<Ldap>)>,
    health: Mutex<Health>,
    /// ppolicy entries by DN as read (None: no such entry), with when they were read.
    policies: Mutex<HashMap<String, (Instant, Option<PasswordPolicy>)>>,
    /// Connections for user binds only, idle since the instant kept. Nothing but binds is ever
    /// sent on them and a bind resets a connection's identity (RFC 4511 §4.2.1), so reusing
    /// one spares each login a TCP (and TLS) handshake without mixing identities.
    binds: Mutex<Vec<(Instant, Ldap)>>,
    /// Connections opened for user binds (tests and diagnostics).
    bind_connections_opened: AtomicU64,
}

/// What the server answered to a user's bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BindOutcome {
    accepted: bool,
    /// Why the account may not log in, when the server said so (even on an accepted bind:
    /// ppolicy's changeAfterReset, an expired password on grace logins).
    said: Option<Refusal>,
}

impl LdapDirectory {
    pub fn new(config: LdapDirectoryConfig) -> Result<Self, SetupError> {
        let refuse = |detail: String| SetupError::new(format!("directory {}", config.name), detail);
        let tls = match &config.ca_pem {
            None => None,
            Some(pem) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| refuse(format!("ca_file: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| refuse(format!("ca_file: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(refuse("ca_file holds no certificate".into()));
                }
                let client = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| refuse(format!("TLS: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(Arc::new(client))
            }
        };
        Ok(Self {
            config,
            tls,
            service: tokio::sync::Mutex::new((0, None)),
            health: Mutex::new(Health::default()),
            policies: Mutex::new(HashMap::new()),
            binds: Mutex::new(Vec::new()),
            bind_connections_opened: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &LdapDirectoryConfig {
        &self.config
    }

    /// How many connections user binds have opened so far (the rest reused kept ones).
    pub fn bind_connections_opened(&self) -> u64 {
        self.bind_connections_opened.load(Ordering::Relaxed)
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

    fn in_backoff(&self) -> bool {
        self.health
            .lock()
            .map(|h| h.retry_at.is_some_and(|at| Instant::now() < at))
            .unwrap_or(false)
    }

    /// The service connection and its generation, (re)established when needed, unless the
    /// server is in backoff.
    async fn service(&self) -> Result<(u64, Ldap), DirectoryError> {
        let mut slot = self.service.lock().await;
        let generation = slot.0;
        if let Some(ldap) = slot.1.as_mut()
            && !ldap.is_closed()
        {
            return Ok((generation, ldap.clone()));
        }
        slot.1 = None;
        if self.in_backoff() {
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
            let problem = match bound.map(|r| r.success()) {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("service account bind refused: {e}")),
                Err(e) => Some(format!("service account bind failed: {e}")),
            };
            if let Some(problem) = problem {
                // Back off here too: retrying a refused bind on every request could lock the
                // service account out under a password policy.
                self.mark_down();
                return Err(self.unavailable(problem));
            }
        }
        if let Ok(mut h) = self.health.lock() {
            *h = Health::default();
        }
        slot.0 += 1;
        slot.1 = Some(ldap.clone());
        Ok((slot.0, ldap))
    }

    fn mark_down(&self) {
        if let Ok(mut h) = self.health.lock() {
            h.backoff = (h.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            h.retry_at = Some(Instant::now() + h.backoff);
            tracing::warn!(directory = %self.config.name, retry_in = ?h.backoff, "directory server unreachable");
        }
    }

    /// Drops the service connection of `generation` after a transport failure, once.
    async fn drop_service(&self, generation: u64) {
        let mut slot = self.service.lock().await;
        if slot.0 == generation && slot.1.is_some() {
            slot.1 = None;
            self.mark_down();
        }
    }

    fn wanted_attributes(&self) -> Vec<String> {
        let c = &self.config;
        let mut attrs = vec![
            c.mail_attribute.clone(),
            c.mobile_attribute.clone(),
            c.display_name_attribute.clone(),
            c.manager_attribute.clone(),
            c.preferred_mechanism_attribute.clone(),
        ];
        attrs.extend(
            account::attributes(c.account_policy)
                .into_iter()
                .map(str::to_owned),
        );
        attrs.extend(c.match_attributes.iter().cloned());
        attrs.extend(c.attributes.iter().cloned());
        // Operational attributes come only when asked for by name.
        attrs.extend(self.id_attributes().into_iter().map(str::to_owned));
        attrs
    }

    /// Where the entry's immutable id is read, in order.
    fn id_attributes(&self) -> Vec<&str> {
        match &self.config.id_attribute {
            Some(a) => vec![a.as_str()],
            None => vec!["entryUUID", "objectGUID"],
        }
    }

    /// The entry's immutable id: a text value as it is (lower-cased: UUIDs are compared so), a
    /// binary one (`objectGUID`) as hex.
    fn entry_id(&self, e: &SearchEntry) -> Option<String> {
        self.id_attributes().into_iter().find_map(|name| {
            let text = e
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first())
                .map(|v| v.trim().to_ascii_lowercase());
            let binary = || {
                e.bin_attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.first())
                    .map(|v| countersign_core::crypto::to_hex(v))
            };
            text.filter(|t| !t.is_empty()).or_else(binary)
        })
    }

    /// Searches with the service connection, returning at most `limit` entries (0: no limit;
    /// a search that hits the limit returns what it has, which is enough to tell "more than
    /// one").
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        missing: Missing,
        limit: i32,
        attrs: Vec<String>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (generation, mut ldap) = self.service().await?;
        let call = ldap
            .with_timeout(self.config.timeout)
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .search(base, scope, filter, attrs);
        // ldap3's timeout covers each message; bound the whole search too.
        let outcome = match tokio::time::timeout(self.config.timeout.saturating_mul(2), call).await
        {
            Ok(o) => o,
            Err(_) => {
                self.drop_service(generation).await;
                return Err(self.unavailable("search timed out"));
            }
        };
        let (entries, rc) = match outcome {
            Ok(ldap3::SearchResult(entries, result)) => (entries, result.rc),
            Err(e) => {
                self.drop_service(generation).await;
                return Err(self.unavailable(format!("search failed: {e}")));
            }
        };
        match rc {
            0 => {}
            SIZE_LIMIT_EXCEEDED if limit > 0 => {}
            NO_SUCH_OBJECT | INVALID_DN_SYNTAX if missing == Missing::IsEmpty => {
                return Ok(Vec::new());
            }
            NO_SUCH_OBJECT => {
                return Err(self.unavailable(format!("search base {base:?} does not exist")));
            }
            other => return Err(self.unavailable(format!("search answered result code {other}"))),
        }
        entries
            .into_iter()
            .map(|e| {
                // ldap3 panics on entries it cannot parse; a bad server must not take the
                // request (or an LDAP session) down with it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e)))
                    .map_err(|_| {
                        self.unavailable("the directory sent an entry that cannot be parsed")
                    })
            })
            .collect()
    }

    /// Strictly below one of the user bases (a base itself is not a user).
    fn within_bases(&self, dn: &Dn) -> bool {
        self.config.user_base_dns.iter().any(|b| {
            let base = Dn::new(b.clone());
            dn.is_within(&base) && dn.normalized() != base.normalized()
        })
    }

    fn with_match_filter(&self, filter: String) -> String {
        match &self.config.match_filter {
            Some(extra) => format!("(&{filter}{extra})"),
            None => filter,
        }
    }

    fn user_from(
        &self,
        dn: Dn,
        id: Option<String>,
        attrs: Attributes,
        account: AccountState,
    ) -> User {
        let c = &self.config;
        let get = |name: &str| attrs.get(&name.to_lowercase()).cloned().unwrap_or_default();
        let username = c
            .match_attributes
            .iter()
            .find_map(|a| get(a).into_iter().next())
            .unwrap_or_else(|| dn.as_str().to_owned());
        User {
            directory: c.name.clone(),
            dn,
            id,
            username,
            display_name: get(&c.display_name_attribute).into_iter().next(),
            mail: get(&c.mail_attribute),
            mobile: get(&c.mobile_attribute),
            preferred_mechanisms: get(&c.preferred_mechanism_attribute),
            sponsor: None,
            account,
            attributes: attrs,
        }
    }

    /// The entry's account state under `account_policy`, with what it needs fetched first.
    async fn account_of(
        &self,
        dn: &Dn,
        attrs: &mut Attributes,
    ) -> Result<AccountState, DirectoryError> {
        let policy = self.config.account_policy;
        if account::needs_ad_computed(policy, attrs) {
            let computed = account::AD_COMPUTED.to_owned();
            let filter = "(objectClass=*)";
            let read = self
                .search(
                    dn.as_str(),
                    Scope::Base,
                    filter,
                    Missing::IsEmpty,
                    0,
                    vec![computed],
                )
                .await?;
            if let Some(e) = read.into_iter().next() {
                attrs.extend(lower_cased(e.attrs));
            }
        }
        let ppolicy = if account::needs_password_policy(policy, attrs) {
            let governing = attrs
                .get(&account::POLICY_SUBENTRY.to_lowercase())
                .and_then(|v| v.first())
                .or(self.config.password_policy_dn.as_ref())
                .cloned();
            match governing {
                Some(policy_dn) => self.password_policy(&policy_dn).await?,
                None => None,
            }
        } else {
            None
        };
        Ok(account::account_state(policy, attrs, ppolicy.as_ref()))
    }

    /// The ppolicy entry at `dn`, from the cache when read less than [`POLICY_TTL`] ago.
    /// `None` when there is no such entry (slapd then enforces no policy either).
    async fn password_policy(&self, dn: &str) -> Result<Option<PasswordPolicy>, DirectoryError> {
        let key = Dn::new(dn).normalized();
        if let Ok(cache) = self.policies.lock()
            && let Some((at, policy)) = cache.get(&key)
            && at.elapsed() < POLICY_TTL
        {
            return Ok(*policy);
        }
        let attrs = PasswordPolicy::ATTRIBUTES.map(str::to_owned).to_vec();
        let read = self
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                Missing::IsEmpty,
                0,
                attrs,
            )
            .await?;
        let policy = read
            .into_iter()
            .next()
            .map(|e| PasswordPolicy::from_attributes(&lower_cased(e.attrs)));
        if policy.is_none() {
            tracing::warn!(directory = %self.config.name, policy = dn, "password policy entry not found");
        }
        if let Ok(mut cache) = self.policies.lock() {
            if cache.len() >= MAX_POLICIES {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), policy));
        }
        Ok(policy)
    }

    /// A user from a found entry, account state included.
    async fn user_from_entry(&self, e: SearchEntry) -> Result<User, DirectoryError> {
        let id = self.entry_id(&e);
        let dn = Dn::new(e.dn);
        let mut attrs = lower_cased(e.attrs);
        let account = self.account_of(&dn, &mut attrs).await?;
        Ok(self.user_from(dn, id, attrs, account))
    }
}

/// An entry's attributes with their names lower-cased.
fn lower_cased(attrs: HashMap<String, Vec<String>>) -> Attributes {
    attrs
        .into_iter()
        .map(|(k, v)| (k.to_lowercase(), v))
        .collect()
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
                let filter = self.with_match_filter("(objectClass=*)".into());
                self.search(
                    dn.as_str(),
                    Scope::Base,
                    &filter,
                    Missing::IsEmpty,
                    0,
                    self.wanted_attributes(),
                )
                .await?
                .into_iter()
                // The server may spell the DN differently; what it found must be in a base.
                .filter(|e| self.within_bases(&Dn::new(e.dn.clone())))
                .collect()
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
                let mut found: Vec<(String, SearchEntry)> = Vec::new();
                for base in &self.config.user_base_dns {
                    // Two are enough to know the name is ambiguous.
                    for e in self
                        .search(
                            base,
                            Scope::Subtree,
                            &filter,
                            Missing::IsError,
                            2,
                            self.wanted_attributes(),
                        )
                        .await?
                    {
                        let norm = Dn::new(e.dn.clone()).normalized();
                        if !found.iter().any(|(n, _)| *n == norm) {
                            found.push((norm, e));
                        }
                    }
                }
                found.into_iter().map(|(_, e)| e).collect()
            }
        };
        let mut entries: Vec<SearchEntry> = entries;
        Ok(match entries.len() {
            0 => Lookup::NotFound,
            1 => Lookup::Found(Box::new(self.user_from_entry(entries.remove(0)).await?)),
            _ => Lookup::Ambiguous,
        })
    }

    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError> {
        Ok(self.bind_as(user.dn.as_str(), password).await?.accepted)
    }

    async fn password_refusal(
        &self,
        user: &User,
        password: &Secret,
    ) -> Result<Option<Refusal>, DirectoryError> {
        let bind = self.bind_as(user.dn.as_str(), password).await?;
        Ok(match bind {
            BindOutcome {
                said: Some(why), ..
            } => Some(why),
            BindOutcome { accepted: true, .. } => None,
            // Refused without a reason while the entry shows the account locked or disabled:
            // servers check those before the password (ppolicy's lock, 389-DS's
            // inactivation), so that is why. Expiry and resets are judged only after a right
            // password, so here the password was wrong.
            BindOutcome {
                accepted: false, ..
            } => match account_refusal(user, SystemClock.now()) {
                Some(why @ (Refusal::AccountLocked | Refusal::AccountDisabled)) => Some(why),
                _ => Some(Refusal::WrongPassword),
            },
        })
    }

    async fn check_password_of_nobody(&self, password: &Secret) {
        // A bind the server refuses costs about what a real one does; not while it is down.
        if self.in_backoff() {
            return;
        }
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
        let filter = self.with_match_filter("(objectClass=*)".into());
        let mut entries = self
            .search(
                manager_dn.as_str(),
                Scope::Base,
                &filter,
                Missing::IsEmpty,
                0,
                self.wanted_attributes(),
            )
            .await?;
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        // A manager's own account state is not theirs to pass: not read.
        let m = self.user_from(
            Dn::new(entry.dn),
            None,
            lower_cased(entry.attrs),
            AccountState::default(),
        );
        // Compare the entry found, not the attribute's spelling of it.
        if m.dn.normalized() == user.dn.normalized() || !self.within_bases(&m.dn) {
            return Ok(None);
        }
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
