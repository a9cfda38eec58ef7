//! One authentication attempt as the audit trail records it: who asked, through which front,
//! what the identity resolved to, where a code went, and the *real* reason for the outcome.
//! Use cases fill an [`Attempt`] while they run and hand it, with their typed result, to
//! [`AuditTrail::record`]; the reason is derived there, in one place, from the error and the
//! facts gathered, so no use case carries a second "reason" string beside its error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::{AuditAction, AuditOutcome, AuditRecord, LoginFacts};
use crate::error::AuthError;
use crate::model::{Timestamp, User, UserKey};
use crate::ports::{Clock, Store};

/// The protocol front an attempt came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Front {
    #[default]
    Http,
    Ldap,
    Radius,
    /// The server's own work, not a client's request (the outbox worker's sends).
    Server,
}

impl Front {
    /// As written in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Http => "http",
            Front::Ldap => "ldap",
            Front::Radius => "radius",
            Front::Server => "server",
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
    login: LoginFacts,
    /// What the approval steps did (policy, manager, message, join, grace), in order.
    notes: Vec<String>,
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
            login: LoginFacts::default(),
            notes: Vec::new(),
        }
    }

    /// The login's application, policy, profile and login id, as far as known.
    pub fn login_facts(&mut self) -> &mut LoginFacts {
        &mut self.login
    }

    /// A step of the approval flow worth reading in the audit ("joined pending request", ...).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Where a message went (the manager's address for logins).
    pub fn recipient(&mut self, recipient: &str) {
        self.recipient = Some(recipient.to_owned());
    }

    /// The identity resolved to `user`.
    pub fn resolved(&mut self, user: &User) {
        self.user = Some(user.key());
        self.user_dn = Some(user.dn.to_string());
    }

    /// The identity is known to be the user filed under `key` with DN `dn` (events on an
    /// approval request, which keeps both).
    pub fn resolved_dn(&mut self, key: &UserKey, dn: &str) {
        self.user = Some(key.clone());
        self.user_dn = Some(dn.to_owned());
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
        let (outcome, reason) = self.plain_outcome(result);
        if self.notes.is_empty() {
            return (outcome, reason);
        }
        (outcome, format!("{reason}; {}", self.notes.join("; ")))
    }

    fn plain_outcome<T>(&self, result: &Result<T, AuthError>) -> (AuditOutcome, String) {
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
            login: self.login,
        }
    }
}

/// The rate-limit key of a client address: IPv6 clients by their /64, since one host usually
/// owns a whole /64 and could otherwise rotate through it.
pub fn client_key(client: &str) -> String {
    match client.parse::<std::net::IpAddr>().map(client_host) {
        Ok(ip @ std::net::IpAddr::V6(_)) => format!("{ip}/64"),
        Ok(ip) => ip.to_string(),
        Err(_) => client.to_owned(),
    }
}

/// The host an address counts as: an IPv6 address by its /64 (the rest zeroed), an
/// IPv4-mapped one as IPv4. Rate limits, connection caps and the audit all count clients so.
pub fn client_host(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Where attempts are recorded: one append-only record each, except refusals by the rate
/// limits. Those are what a flood consists of, and a record each would let one client write
/// megabytes a second to the store: per client address, the first in a minute is recorded and
/// the rest are counted into the next one recorded.
#[derive(Clone)]
pub struct AuditTrail {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    limited: Arc<Mutex<HashMap<String, LimitedSince>>>,
}

/// Rate-limit refusals of one client since its last recorded one.
#[derive(Debug, Clone, Copy)]
struct LimitedSince {
    recorded_at: Timestamp,
    not_recorded: u64,
}

/// How long after a recorded rate-limit refusal the client's next ones are only counted.
pub const LIMITED_RECORD_INTERVAL_MS: i64 = 60_000;
/// Clients whose refusals are being counted, at most (older ones are forgotten first).
const MAX_LIMITED_CLIENTS: usize = 10_000;

impl AuditTrail {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            limited: Arc::default(),
        }
    }

    /// Records `attempt` with the outcome of its use case. A record that cannot be written is
    /// logged as lost; the answer to the client does not change.
    pub async fn record<T>(&self, attempt: Attempt, result: &Result<T, AuthError>) {
        let action = attempt.action;
        let now = self.clock.now();
        let limited = matches!(result, Err(AuthError::RateLimited { .. }));
        // Keyed as the rate limits key clients (IPv6 by /64), so rotating addresses within
        // one host's prefix does not restore the flood.
        let client = attempt
            .client
            .as_deref()
            .map(client_key)
            .unwrap_or_default();
        let mut record = attempt.into_record(now, result);
        if limited {
            match self.count_limited(&client, now) {
                None => return,
                Some(0) => {}
                Some(n) => {
                    record.reason = format!(
                        "{} ({n} more from this client since the last one recorded)",
                        record.reason
                    );
                }
            }
        }
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, action = action.as_str(), "audit record lost");
        }
    }

    /// `None` when this refusal is only counted; otherwise how many went unrecorded before it.
    /// Past [`MAX_LIMITED_CLIENTS`] clients in a minute, the rest share one entry, so filling
    /// the table with fresh addresses does not reopen the flood.
    fn count_limited(&self, client: &str, now: Timestamp) -> Option<u64> {
        let Ok(mut map) = self.limited.lock() else {
            return Some(0);
        };
        let fresh = |seen: &LimitedSince| now.0 - seen.recorded_at.0 < LIMITED_RECORD_INTERVAL_MS;
        if map.len() >= MAX_LIMITED_CLIENTS && !map.contains_key(client) {
            map.retain(|_, seen| fresh(seen));
        }
        let key = if map.len() >= MAX_LIMITED_CLIENTS && !map.contains_key(client) {
            OTHER_CLIENTS
        } else {
            client
        };
        match map.get_mut(key) {
            Some(seen) if fresh(seen) => {
                seen.not_recorded += 1;
                None
            }
            Some(seen) => {
                let before = seen.not_recorded;
                *seen = LimitedSince {
                    recorded_at: now,
                    not_recorded: 0,
                };
                Some(before)
            }
            None => {
                map.insert(
                    key.to_owned(),
                    LimitedSince {
                        recorded_at: now,
                        not_recorded: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// The entry all clients beyond [`MAX_LIMITED_CLIENTS`] share.
const OTHER_CLIENTS: &str = "(other clients)";

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

    #[tokio::test]
    async fn a_flood_of_rate_limited_attempts_is_recorded_once_a_minute_per_client() {
        use crate::testkit::{MemStore, TestClock};
        let store = Arc::new(MemStore::default());
        let clock = Arc::new(TestClock::at(1_000_000));
        let trail = AuditTrail::new(store.clone(), clock.clone());
        let limited: Result<(), AuthError> = Err(AuthError::RateLimited {
            retry_after: std::time::Duration::from_secs(30),
        });
        let at = |client: &str| Caller {
            front: Front::Http,
            client: Some(client.into()),
            bound_as: None,
        };
        for _ in 0..1000 {
            let a = Attempt::new(AuditAction::Verify, &at("192.0.2.1"), "u:x");
            trail.record(a, &limited).await;
        }
        // Another client's refusal and any other outcome are recorded as usual.
        trail
            .record(
                Attempt::new(AuditAction::Verify, &at("192.0.2.2"), "u:x"),
                &limited,
            )
            .await;
        let wrong: Result<(), AuthError> = Err(AuthError::InvalidCredentials(
            crate::error::Refusal::WrongOtp,
        ));
        trail
            .record(
                Attempt::new(AuditAction::Verify, &at("192.0.2.1"), "u:x"),
                &wrong,
            )
            .await;
        assert_eq!(store.audit.lock().unwrap().len(), 3);
        // A minute on, the next refusal is recorded with the count of those in between.
        clock.advance(std::time::Duration::from_secs(60));
        trail
            .record(
                Attempt::new(AuditAction::Verify, &at("192.0.2.1"), "u:x"),
                &limited,
            )
            .await;
        let records = store.audit.lock().unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(
            records[3].reason,
            "rate limited (999 more from this client since the last one recorded)"
        );
    }

    #[tokio::test]
    async fn filling_the_table_with_fresh_addresses_does_not_reopen_the_flood() {
        use crate::testkit::{MemStore, TestClock};
        let store = Arc::new(MemStore::default());
        let trail = AuditTrail::new(store.clone(), Arc::new(TestClock::at(1_000_000)));
        let limited: Result<(), AuthError> = Err(AuthError::RateLimited {
            retry_after: std::time::Duration::from_secs(30),
        });
        let at = |n: usize| Caller {
            front: Front::Http,
            client: Some(format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)),
            bound_as: None,
        };
        for n in 0..MAX_LIMITED_CLIENTS + 5_000 {
            trail
                .record(Attempt::new(AuditAction::Verify, &at(n), "u:x"), &limited)
                .await;
        }
        // One record per client that found a place, one for all the others together.
        assert_eq!(store.audit.lock().unwrap().len(), MAX_LIMITED_CLIENTS + 1);
        for _ in 0..1000 {
            trail
                .record(Attempt::new(AuditAction::Verify, &at(0), "u:x"), &limited)
                .await;
        }
        assert_eq!(store.audit.lock().unwrap().len(), MAX_LIMITED_CLIENTS + 1);
    }
}
