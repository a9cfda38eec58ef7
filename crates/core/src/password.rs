//! Password authentication as a use case of its own: find the user through the identity
//! mapper, check the static password in the user's directory (or spend the same effort for
//! nobody), and check that the account is usable. The LDAP simple bind uses it directly;
//! Deliver OTP (Ping spec §7.1 steps 2 to 4) and the coming login/approval flow build on
//! [`PasswordAuthentication::first_factor`]. Callers only ever see the uniform
//! [`AuthError::InvalidCredentials`] for credential problems; the audit trail gets the real one.

use std::sync::Arc;

use crate::attempt::{Attempt, AuditTrail, Caller};
use crate::audit::AuditAction;
use crate::error::{AuthError, Refusal};
use crate::identity::Identity;
use crate::identity_mapper::IdentityMapper;
use crate::model::{Timestamp, User};
use crate::ports::Clock;
use crate::ratelimit::{Admission, RateLimits};
use crate::secret::Secret;

/// What password authentication needs, wired once at start.
pub struct PasswordAuthentication {
    pub mapper: IdentityMapper,
    pub limits: Arc<RateLimits>,
    pub audit: AuditTrail,
    pub clock: Arc<dyn Clock>,
}

impl PasswordAuthentication {
    /// A static-password check on its own (LDAP simple bind), audited as a bind, under the
    /// verify rate limits.
    pub async fn authenticate(
        &self,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
    ) -> Result<User, AuthError> {
        let mut attempt = Attempt::new(AuditAction::Bind, caller, authentication_id);
        let admission = self.admit(&attempt, caller, authentication_id);
        let result = match &admission {
            Ok(_) => match Identity::parse(authentication_id) {
                Ok(identity) => self.first_factor(&identity, password, &mut attempt).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e.clone()),
        };
        self.finish(attempt, admission, caller, &result).await;
        result
    }

    /// Steps 2 to 4 of Deliver OTP, with the password: the user, their password, a usable
    /// account. Unknown and ambiguous identities cost a password check too, so every refusal
    /// takes about as long. Neither audits nor counts limits: the calling use case does.
    pub async fn first_factor(
        &self,
        identity: &Identity,
        password: &Secret,
        attempt: &mut Attempt,
    ) -> Result<User, AuthError> {
        let user = match self.mapper.find_user(identity).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                self.mapper.check_password_of_nobody(Some(password)).await;
                return Err(AuthError::InvalidCredentials(Refusal::UnknownUser));
            }
            Err(e @ AuthError::InvalidCredentials(_)) => {
                self.mapper.check_password_of_nobody(Some(password)).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        attempt.resolved(&user);
        if let Some(refusal) = self.mapper.password_refusal(&user, password).await? {
            return Err(AuthError::InvalidCredentials(refusal));
        }
        usable(&user, self.clock.now())?;
        Ok(user)
    }

    /// The rate limits' admission of an attempt, before any work (one place for every use
    /// case, with [`PasswordAuthentication::finish`]).
    pub(crate) fn admit(
        &self,
        attempt: &Attempt,
        caller: &Caller,
        authentication_id: &str,
    ) -> Result<Admission, AuthError> {
        self.limits.admit(
            attempt.action(),
            caller,
            authentication_id,
            self.clock.now(),
        )
    }

    /// Settles the attempt's rate limits and records it in the audit trail.
    pub(crate) async fn finish<T>(
        &self,
        attempt: Attempt,
        admission: Result<Admission, AuthError>,
        caller: &Caller,
        result: &Result<T, AuthError>,
    ) {
        if let Ok(admission) = admission {
            self.limits
                .settle(admission, caller, attempt.user(), result, self.clock.now());
        }
        self.audit.record(attempt, result).await;
    }
}

/// Whether the account may authenticate now; `None` when it may.
pub fn account_refusal(user: &User, now: Timestamp) -> Option<Refusal> {
    let a = &user.account;
    if a.disabled {
        Some(Refusal::AccountDisabled)
    } else if a.locked_until.is_some_and(|until| until > now) {
        Some(Refusal::AccountLocked)
    } else if a.password_expires_at.is_some_and(|at| at <= now) {
        Some(Refusal::PasswordExpired)
    } else if a.must_change_password {
        Some(Refusal::MustChangePassword)
    } else {
        None
    }
}

/// [`account_refusal`] as the uniform refusal.
pub(crate) fn usable(user: &User, now: Timestamp) -> Result<(), AuthError> {
    match account_refusal(user, now) {
        Some(refusal) => Err(AuthError::InvalidCredentials(refusal)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::audit::{AuditAction, AuditOutcome};
    use crate::error::{AuthError, Refusal};
    use crate::model::Timestamp;
    use crate::testkit::*;

    #[tokio::test]
    async fn password_authentication_is_uniform_and_audited_as_bind() {
        let mut locked = alice();
        locked.account.locked_until = Some(Timestamp(T0 + 1));
        let w = world_with(vec![locked], false, false);
        for (id, pw, refusal) in [
            ("u:alice", "secret", Refusal::AccountLocked),
            ("u:alice", "nope", Refusal::WrongPassword),
            ("u:nobody", "secret", Refusal::UnknownUser),
        ] {
            let err = w
                .svc
                .passwords
                .authenticate(id, &pw.into(), &caller())
                .await
                .unwrap_err();
            assert_eq!(err, AuthError::InvalidCredentials(refusal));
        }
        w.clock.advance(Duration::from_millis(2));
        let user = w
            .svc
            .passwords
            .authenticate("u:alice", &"secret".into(), &caller())
            .await
            .unwrap();
        assert_eq!(user.username, "alice");
        let audit = w.store.audit.lock().unwrap();
        assert!(audit.iter().all(|r| r.action == AuditAction::Bind));
        assert_eq!(audit[3].outcome, AuditOutcome::Success);
    }

    #[tokio::test]
    async fn control_characters_and_overlong_identities_are_malformed_binds() {
        let w = world();
        let long = format!("u:{}", "a".repeat(2000));
        for id in ["u:alice\nforged", "dn:uid=alice\r,dc=x", long.as_str()] {
            let err = w
                .svc
                .passwords
                .authenticate(id, &"secret".into(), &caller())
                .await
                .unwrap_err();
            assert!(
                matches!(err, AuthError::MalformedIdentity(_)),
                "{id:?}: {err:?}"
            );
        }
    }
}
