//! User binds: the password check of an LDAP directory. Binds go over connections used for
//! nothing else, kept between logins: a bind resets a connection's identity (RFC 4511 §4.2.1),
//! so reuse never mixes users, and a login does not pay a TCP (and TLS) handshake.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use countersign_core::Secret;
use countersign_core::ports::DirectoryError;
use ldap3::Ldap;
use ldap3::controls::RawControl;

use super::{
    BindOutcome, CONSTRAINT_VIOLATION, INAPPROPRIATE_AUTHENTICATION, INVALID_CREDENTIALS,
    LdapDirectory, UNWILLING_TO_PERFORM,
};
use crate::directory::account::{self, PpolicyResponse};

/// Idle connections kept for user binds, and how long one may idle before it is not trusted to
/// be alive (well under the idle limits servers use: OpenLDAP `idletimeout` is off by default,
/// Active Directory's MaxConnIdleTime is 900 s).
pub(super) const BIND_POOL_SIZE: usize = 16;
pub(super) const BIND_POOL_IDLE: Duration = Duration::from_secs(60);

impl LdapDirectory {
    /// A kept bind connection that is still open and not idle too long, if any.
    fn kept_bind_connection(&self) -> Option<Ldap> {
        let mut kept = self.binds.lock().ok()?;
        while let Some((since, mut ldap)) = kept.pop() {
            if since.elapsed() < BIND_POOL_IDLE && !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    fn keep_bind_connection(&self, ldap: Ldap) {
        if let Ok(mut kept) = self.binds.lock()
            && kept.len() < BIND_POOL_SIZE
        {
            kept.push((Instant::now(), ldap));
        }
    }

    /// One simple bind with the ppolicy request control on `ldap`, within the timeout.
    async fn simple_bind_on(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        password: &Secret,
    ) -> Result<ldap3::LdapResult, DirectoryError> {
        let ppolicy = RawControl {
            ctype: account::PPOLICY_CONTROL.to_owned(),
            crit: false,
            val: None,
        };
        let call = ldap
            .with_timeout(self.config.timeout)
            .with_controls(vec![ppolicy])
            .simple_bind(dn, password.expose());
        match tokio::time::timeout(self.config.timeout.saturating_mul(2), call).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.unavailable(format!("bind failed: {e}"))),
            Err(_) => Err(self.unavailable("bind timed out")),
        }
    }

    /// Binds as `dn` with `password` on a new connection, asking for the password policy
    /// response control (non-critical: servers without it ignore it, RFC 4511 §4.1.11).
    pub(super) async fn bind_as(
        &self,
        dn: &str,
        password: &Secret,
    ) -> Result<BindOutcome, DirectoryError> {
        // An empty password would be an unauthenticated bind, which servers accept (RFC 4513
        // §5.1.2): never a valid password.
        if password.is_empty() {
            return Ok(BindOutcome {
                accepted: false,
                said: None,
            });
        }
        // A kept connection first; if it turns out dead (the server closed it), once more on a
        // new one, so a stale pool never fails a login.
        // Only a connection found closed is retried: a bind that timed out may have reached the
        // server, and must not be counted twice by its lockout policy.
        let (r, mut ldap) = match self.kept_bind_connection() {
            Some(mut ldap) => match self.simple_bind_on(&mut ldap, dn, password).await {
                Ok(r) => (r, ldap),
                Err(_) if ldap.is_closed() => self.bind_on_new_connection(dn, password).await?,
                Err(e) => return Err(e),
            },
            None => self.bind_on_new_connection(dn, password).await?,
        };
        if matches!(
            r.rc,
            0 | INVALID_CREDENTIALS | INAPPROPRIATE_AUTHENTICATION | CONSTRAINT_VIOLATION
        ) {
            self.keep_bind_connection(ldap);
        } else {
            let _ = tokio::time::timeout(self.config.timeout, ldap.unbind()).await;
        }
        let accepted = match r.rc {
            0 => true,
            // Refusals of the credentials or the account (locked or disabled on some servers,
            // ppolicy's constraint violations).
            INVALID_CREDENTIALS
            | INAPPROPRIATE_AUTHENTICATION
            | UNWILLING_TO_PERFORM
            | CONSTRAINT_VIOLATION => false,
            // Anything else (strongerAuthRequired, busy, protocol errors) is the directory's
            // problem, never a wrong password.
            rc => return Err(self.unavailable(format!("bind answered result code {rc}"))),
        };
        let control = r
            .ctrls
            .iter()
            .find(|c| c.1.ctype == account::PPOLICY_CONTROL)
            .and_then(|c| c.1.val.as_deref())
            .and_then(|v| match PpolicyResponse::decode(v) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(directory = %self.config.name, error = %e, "unreadable password policy control");
                    None
                }
            });
        if let Some(grace) = control.and_then(|c| c.grace_remaining) {
            tracing::info!(directory = %self.config.name, user = dn, grace, "password expired; grace logins remain");
        }
        let said = control.and_then(|c| c.refusal()).or_else(|| {
            (!accepted)
                .then(|| account::ad_bind_refusal(&r.text))
                .flatten()
        });
        Ok(BindOutcome { accepted, said })
    }

    /// A user bind on a connection of its own.
    async fn bind_on_new_connection(
        &self,
        dn: &str,
        password: &Secret,
    ) -> Result<(ldap3::LdapResult, Ldap), DirectoryError> {
        let mut ldap = self.connect().await?;
        self.bind_connections_opened.fetch_add(1, Ordering::Relaxed);
        match self.simple_bind_on(&mut ldap, dn, password).await {
            Ok(r) => Ok((r, ldap)),
            Err(e) => {
                let _ = tokio::time::timeout(self.config.timeout, ldap.unbind()).await;
                Err(e)
            }
        }
    }
}
