//! One authentication attempt as the audit trail records it: who asked, through which front,
//! what the identity resolved to, where a code went, and the *real* reason for the outcome.
//! Use cases fill an [`Attempt`] while they run and hand it, with their typed result, to
//! [`AuditTrail::record`]; the reason is derived there, in one place, from the error and the
//! facts gathered, so no use case carries a second "reason" string beside its error.

use std::sync::Arc;

use crate::audit::{AuditAction, AuditOutcome, AuditRecord};
use crate::error::AuthError;
use crate::model::{User, UserKey};
use crate::ports::{Clock, Store};

/// The protocol front an attempt came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Front {
    #[default]
    Http,
    Ldap,
    Radius,
}

impl Front {
    /// As written in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Http => "http",
            Front::Ldap => "ldap",
            Front::Radius => "radius",
        }
    }
}

/// Who is asking, as the front saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub front: Front,
    /// Client address, for the audit log and per-client rate limits.
    pub client: Option<String>,
    /// The user this connection is already authenticated as (LDAP bind), which allows the
    /// step-up form of Deliver OTP without a static password (spec §7.1 step 3).
    pub bound_as: Option<UserKey>,
}

/// Longest identity written to the audit trail (the edge refuses longer ones anyway).
const MAX_AUDITED_IDENTITY: usize = 256;

/// The audit fields of one attempt, gathered while its use case runs.
#[derive(Debug, Clone)]
pub struct Attempt {
    action: AuditAction,
    front: Front,
    client: Option<String>,
    identity: String,
    user: Option<UserKey>,
    user_dn: Option<String>,
    mechanism: Option<String>,
    recipient: Option<String>,
    /// Why each mechanism tried before the one that delivered (or all, if none did) failed;
    /// these name addresses, so they go to the audit trail and never to the client.
    mechanism_failures: Vec<String>,
}

impl Attempt {
    pub fn new(action: AuditAction, caller: &Caller, identity: &str) -> Self {
        Self {
            action,
            front: caller.front,
            client: caller.client.clone(),
            identity: identity.chars().take(MAX_AUDITED_IDENTITY).collect(),
            user: None,
            user_dn: None,
            mechanism: None,
            recipient: None,
            mechanism_failures: Vec::new(),
        }
    }

    /// The identity resolved to `user`.
    pub fn resolved(&mut self, user: &User) {
        self.user = Some(user.key());
        self.user_dn = Some(user.dn.to_string());
    }

    /// The user the identity resolved to, if it did.
    pub fn user(&self) -> Option<&UserKey> {
        self.user.as_ref()
    }

    pub fn action(&self) -> AuditAction {
        self.action
    }

    /// One mechanism could not deliver; `detail` may name the address.
    pub fn mechanism_failed(&mut self, mechanism: &str, detail: &str) {
        self.mechanism_failures
            .push(format!("{mechanism}: {detail}"));
    }

    pub fn delivered(&mut self, mechanism: &str, recipient: &str) {
        self.mechanism = Some(mechanism.to_owned());
        self.recipient = Some(recipient.to_owned());
    }

    /// The outcome and its real reason.
    fn outcome<T>(&self, result: &Result<T, AuthError>) -> (AuditOutcome, String) {
        let failures = self.mechanism_failures.join("; ");
        match result {
            Ok(_) if failures.is_empty() => (AuditOutcome::Success, "ok".to_owned()),
            Ok(_) => (
                AuditOutcome::Success,
                format!("ok after failures: {failures}"),
            ),
            Err(e) => (AuditOutcome::Failure, self.reason(e, &failures)),
        }
    }

    fn reason(&self, e: &AuthError, failures: &str) -> String {
        match e {
            AuthError::InvalidCredentials(refusal) => refusal.as_str().to_owned(),
            AuthError::RateLimited { .. } => "rate limited".to_owned(),
            AuthError::NotDelivered { .. } if failures.is_empty() => {
                "no delivery mechanism to try".to_owned()
            }
            AuthError::NotDelivered { .. } => format!("not delivered: {failures}"),
            AuthError::AuthorizationDenied(authz) => {
                format!("authorization identity {authz:?} refused")
            }
            other => other.to_string(),
        }
    }

    fn into_record<T>(
        self,
        at: crate::model::Timestamp,
        result: &Result<T, AuthError>,
    ) -> AuditRecord {
        let (outcome, reason) = self.outcome(result);
        AuditRecord {
            at,
            action: self.action,
            front: self.front.as_str().to_owned(),
            identity: self.identity,
            user_dn: self.user_dn,
            client: self.client,
            outcome,
            reason,
            mechanism: self.mechanism,
            recipient: self.recipient,
        }
    }
}

/// Where attempts are recorded: one append-only record each.
#[derive(Clone)]
pub struct AuditTrail {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

impl AuditTrail {
    /// Records `attempt` with the outcome of its use case. A record that cannot be written is
    /// logged as lost; the answer to the client does not change.
    pub async fn record<T>(&self, attempt: Attempt, result: &Result<T, AuthError>) {
        let action = attempt.action;
        let record = attempt.into_record(self.clock.now(), result);
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, action = action.as_str(), "audit record lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Refusal, Undelivered};
    use crate::model::Timestamp;

    fn caller() -> Caller {
        Caller {
            front: Front::Ldap,
            client: Some("192.0.2.7".into()),
            bound_as: None,
        }
    }

    #[test]
    fn the_reason_is_the_real_one_and_addresses_stay_in_the_audit() {
        let mut a = Attempt::new(AuditAction::Deliver, &caller(), "u:alice");
        a.mechanism_failed("Email", "delivery to alice@example.com failed: refused");
        let not_delivered = AuthError::NotDelivered {
            tried: vec![("Email".into(), Undelivered::TransportFailed)],
        };
        assert!(!not_delivered.to_string().contains("alice@example.com"));
        let r = a
            .clone()
            .into_record(Timestamp(1), &Err::<(), _>(not_delivered));
        assert_eq!(
            r.reason,
            "not delivered: Email: delivery to alice@example.com failed: refused"
        );
        assert_eq!(
            (r.front.as_str(), r.outcome),
            ("ldap", AuditOutcome::Failure)
        );

        a.delivered("SMS", "+15550100001");
        let r = a.into_record(Timestamp(1), &Ok::<_, AuthError>(()));
        assert_eq!(
            r.reason,
            "ok after failures: Email: delivery to alice@example.com failed: refused"
        );
        assert_eq!(r.recipient.as_deref(), Some("+15550100001"));

        let a = Attempt::new(AuditAction::Verify, &caller(), "u:alice");
        let refused: Result<(), _> = Err(AuthError::InvalidCredentials(Refusal::OtpExpired));
        assert_eq!(a.into_record(Timestamp(1), &refused).reason, "OTP expired");
    }

    #[test]
    fn fronts_are_named_as_the_audit_trail_always_named_them() {
        let names: Vec<&str> = [Front::Http, Front::Ldap, Front::Radius]
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(names, ["http", "ldap", "radius"]);
    }
}
