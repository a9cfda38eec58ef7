//! Rate limits: keyed token buckets (`burst` attempts at once, refilled evenly over `period`),
//! the keys they count, and the checks the use cases make, so an attacker can neither bomb a
//! user's phone with codes, nor guess passwords or OTPs quickly, nor learn from a limit whether
//! a user exists, nor lock the real user out. The model is described in docs/rate-limits.md:
//!
//! - every request counts per client address, before any work;
//! - *failed* attempts count per identity (as sent, normalised from the text alone) **and**
//!   client, so an attacker's failures spend the attacker's budget, not the user's;
//! - failed attempts also count per identity from all clients together, under a much higher
//!   ceiling against distributed guessing; clients that have recently authenticated as that
//!   user are exempt from it (they proved who they are);
//! - *successful* deliveries count per resolved user against SMS/e-mail bombing: only someone
//!   who passed the password check can spend that budget, so it reveals nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::attempt::Caller;
use crate::audit::AuditAction;
use crate::error::AuthError;
use crate::identity::Identity;
use crate::model::{Timestamp, UserKey};

/// `burst` attempts per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub period: Duration,
}

impl Rate {
    /// Parses `N/DURATION` as written in the config, e.g. `5/1m`; the duration is parsed by the
    /// caller-supplied function so the core needs no duration syntax of its own.
    pub fn parse(text: &str, parse_duration: impl Fn(&str) -> Option<Duration>) -> Option<Rate> {
        let (n, period) = text.split_once('/')?;
        let burst: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let period = parse_duration(period.trim()).filter(|d| !d.is_zero())?;
        Some(Rate { burst, period })
    }
}

/// Full buckets are forgotten when the map outgrows its threshold; the threshold then doubles
/// over what is left, so sweeping costs O(1) per key amortised.
const FIRST_SWEEP_AT: usize = 10_000;
/// Beyond this many keys that are all still counting, new keys are refused outright: a flood
/// of distinct identities must not grow memory without bound.
const MAX_KEYS: usize = 1_000_000;

#[derive(Debug)]
struct Buckets {
    map: HashMap<String, (f64, Timestamp)>,
    sweep_at: usize,
}

#[derive(Debug)]
pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
            }),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<(), Duration> {
        let per_ms = f64::from(self.rate.burst) / self.rate.period.as_millis().max(1) as f64;
        let burst = f64::from(self.rate.burst);
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than lock everyone out.
            return Ok(());
        };
        let b = &mut *buckets;
        if !b.map.contains_key(key) {
            if b.map.len() >= b.sweep_at {
                b.map.retain(|_, (tokens, at)| {
                    *tokens + (now.0 - at.0).max(0) as f64 * per_ms < burst
                });
                b.sweep_at = (b.map.len() * 2).max(FIRST_SWEEP_AT);
            }
            if b.map.len() >= MAX_KEYS {
                return Err(self.rate.period);
            }
        }
        let (tokens, at) = b.map.entry(key.to_owned()).or_insert((burst, now));
        let elapsed = (now.0 - at.0).max(0) as f64;
        *tokens = (*tokens + elapsed * per_ms).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - *tokens) / per_ms).ceil();
            Err(Duration::from_millis(wait_ms as u64))
        }
    }

    /// Gives back a token taken by [`RateLimiter::check`] for an attempt that turned out not to
    /// count. Taking first and giving back later (rather than looking first and taking later)
    /// keeps a burst of concurrent attempts from all passing the look.
    pub fn refund(&self, key: &str) {
        let burst = f64::from(self.rate.burst);
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some((tokens, _)) = buckets.map.get_mut(key)
        {
            *tokens = (*tokens + 1.0).min(burst);
        }
    }
}

/// Clients that authenticated as a user recently are trusted for that user for this long.
const TRUST_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// At most this many (identity, client) pairs are remembered as trusted; beyond it, new ones
/// are not (which only means they are treated like any other client).
const MAX_TRUSTED: usize = 100_000;

/// (user, client) pairs that succeeded recently.
#[derive(Debug, Default)]
struct TrustedClients {
    until: Mutex<HashMap<String, Timestamp>>,
}

impl TrustedClients {
    fn trust(&self, key: String, now: Timestamp) {
        let Ok(mut map) = self.until.lock() else {
            return;
        };
        if map.len() >= MAX_TRUSTED && !map.contains_key(&key) {
            map.retain(|_, until| *until > now);
            if map.len() >= MAX_TRUSTED {
                return;
            }
        }
        map.insert(key, now.plus(TRUST_PERIOD));
    }

    fn trusts(&self, key: &str, now: Timestamp) -> bool {
        self.until
            .lock()
            .is_ok_and(|map| map.get(key).is_some_and(|until| *until > now))
    }
}

/// What [`RateLimits::admit`] reserved for one attempt.
#[derive(Debug, Clone)]
pub struct Admission {
    action: AuditAction,
    identity_sent: String,
    /// Key reserved in the failures-per-user-and-client bucket.
    pair: Option<String>,
    /// Key reserved in the failures-per-user bucket (none for a trusted client).
    identity: Option<String>,
}

/// The limits of the authentication use cases; `None` means unlimited. See the module
/// documentation and docs/rate-limits.md for the model.
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Every Deliver OTP and Get Supported Mechanisms request from one client.
    pub deliver_per_client: Option<RateLimiter>,
    /// Every OTP verification and password bind from one client.
    pub verify_per_client: Option<RateLimiter>,
    /// Failed Deliver OTP requests per identity and client.
    pub deliver_failures_per_user_and_client: Option<RateLimiter>,
    /// Failed verifications and password binds per identity and client.
    pub verify_failures_per_user_and_client: Option<RateLimiter>,
    /// Failed attempts of any kind per identity from all clients together; clients trusted for
    /// the identity are exempt.
    pub failures_per_user: Option<RateLimiter>,
    /// OTPs actually delivered per user, whatever spelling of the identity asked for them.
    pub deliveries_per_user: Option<RateLimiter>,
    trusted: TrustedClients,
    strangers: StrangerGuesses,
}

/// Wrong codes from clients not trusted for the user, per issued code. They do not void the
/// code at `max_failed_attempts` (anyone who knows a username could then spoil the user's
/// codes), and the failure budgets bound them; this count is the backstop that bounds them
/// even when a budget is off or outwitted: at [`STRANGER_GUESSES_PER_MAX_FAILED`] times
/// `max_failed_attempts` the code is voided.
#[derive(Debug, Default)]
struct StrangerGuesses(Mutex<HashMap<String, u32>>);

/// How many times `max_failed_attempts` strangers may guess at one code before it is voided.
pub const STRANGER_GUESSES_PER_MAX_FAILED: u32 = 10;
/// Codes whose stranger guesses are counted at most (the map is cleared when full: filling it
/// takes that many codes outstanding at once, each delivered after a right password).
const MAX_COUNTED_CODES: usize = 100_000;

pub use crate::attempt::client_key;

impl RateLimits {
    /// Counts a wrong code from a client not trusted for the user against the issued code
    /// `otp_id`; true when the code must now be voided.
    pub fn stranger_guessed(&self, otp_id: &str, max_failed_attempts: u32) -> bool {
        let Ok(mut map) = self.strangers.0.lock() else {
            return true;
        };
        if map.len() >= MAX_COUNTED_CODES && !map.contains_key(otp_id) {
            map.clear();
        }
        let n = map.entry(otp_id.to_owned()).or_insert(0);
        *n += 1;
        let voided = *n >= max_failed_attempts.saturating_mul(STRANGER_GUESSES_PER_MAX_FAILED);
        if voided {
            map.remove(otp_id);
        }
        voided
    }

    /// Forgets the stranger guesses at a code that is gone (used, voided, expired).
    pub fn forget_code(&self, otp_id: &str) {
        if let Ok(mut map) = self.strangers.0.lock() {
            map.remove(otp_id);
        }
    }
}

fn caller_key(caller: &Caller) -> String {
    caller.client.as_deref().map(client_key).unwrap_or_default()
}

fn user_key(user: &UserKey) -> String {
    format!("user:{}:{}", user.directory, user.dn)
}

fn limited(retry_after: Duration) -> AuthError {
    AuthError::RateLimited { retry_after }
}

impl RateLimits {
    fn per_client(&self, action: AuditAction) -> Option<&RateLimiter> {
        match action {
            AuditAction::Deliver => self.deliver_per_client.as_ref(),
            _ => self.verify_per_client.as_ref(),
        }
    }

    fn failures_per_user_and_client(&self, action: AuditAction) -> Option<&RateLimiter> {
        match action {
            AuditAction::Deliver => self.deliver_failures_per_user_and_client.as_ref(),
            _ => self.verify_failures_per_user_and_client.as_ref(),
        }
    }

    /// Before any work: counts the request against its client, and reserves a failure of
    /// the identity (as sent) from this client, and from everywhere unless the client is
    /// trusted for it; refused when a budget is used up. Depends on the identity's text alone,
    /// never on whether it names a user. [`RateLimits::settle`] gives back what the attempt
    /// did not spend.
    pub fn admit(
        &self,
        action: AuditAction,
        caller: &Caller,
        identity: &str,
        now: Timestamp,
    ) -> Result<Admission, AuthError> {
        let client = caller_key(caller);
        if let (Some(limiter), Some(_)) = (self.per_client(action), &caller.client) {
            limiter.check(&client, now).map_err(limited)?;
        }
        let id = Identity::limit_key(identity);
        let pair = format!("{id}|{client}");
        let mut admission = Admission {
            action,
            identity_sent: identity.to_owned(),
            pair: None,
            identity: None,
        };
        if let Some(limiter) = self.failures_per_user_and_client(action) {
            limiter.check(&pair, now).map_err(limited)?;
            admission.pair = Some(pair.clone());
        }
        let trusted = format!("{}|{client}", Identity::trust_key(identity));
        if let Some(limiter) = &self.failures_per_user
            && !self.trusted.trusts(&trusted, now)
        {
            if let Err(wait) = limiter.check(&id, now) {
                self.give_back(admission);
                return Err(limited(wait));
            }
            admission.identity = Some(id);
        }
        Ok(admission)
    }

    fn give_back(&self, admission: Admission) {
        if let (Some(limiter), Some(key)) = (
            self.failures_per_user_and_client(admission.action),
            &admission.pair,
        ) {
            limiter.refund(key);
        }
        if let (Some(limiter), Some(key)) = (&self.failures_per_user, &admission.identity) {
            limiter.refund(key);
        }
    }

    /// Only the per-client count (Get Supported Mechanisms shares the deliveries' budget: both
    /// reveal addresses).
    pub fn admit_lookup(&self, caller: &Caller, now: Timestamp) -> Result<(), AuthError> {
        match (&self.deliver_per_client, &caller.client) {
            (Some(limiter), Some(client)) => {
                limiter.check(&client_key(client), now).map_err(limited)
            }
            _ => Ok(()),
        }
    }

    /// After the attempt: a credential failure spends what [`RateLimits::admit`] reserved;
    /// anything else gives it back, and a success makes the client trusted for the identity
    /// and for the user it resolved to.
    /// Settles an attempt that proved the first factor but did not sign in (a login waiting
    /// for its approval): the reserved failures go back, and nothing is trusted.
    pub fn settle_without_trust(&self, admission: Admission) {
        self.give_back(admission);
    }

    pub fn settle<T>(
        &self,
        admission: Admission,
        caller: &Caller,
        user: Option<&UserKey>,
        result: &Result<T, AuthError>,
        now: Timestamp,
    ) {
        if matches!(result, Err(AuthError::InvalidCredentials(_))) {
            // A trusted client's failure still counts towards the identity's ceiling.
            if admission.identity.is_none()
                && let Some(limiter) = &self.failures_per_user
            {
                let _ = limiter.check(&Identity::limit_key(&admission.identity_sent), now);
            }
            return;
        }
        if result.is_ok() {
            let client = caller_key(caller);
            let id = Identity::trust_key(&admission.identity_sent);
            self.trusted.trust(format!("{id}|{client}"), now);
            if let Some(user) = user {
                self.trusted
                    .trust(format!("{}|{client}", user_key(user)), now);
            }
        }
        self.give_back(admission);
    }

    /// Whether `caller` authenticated as `user` recently (within a day).
    /// The client whose login the approver approved signed in as the user, as far as the
    /// limits are concerned: trusted for the user's key and for `identities` (the spellings
    /// its next attempts may use), as a successful attempt would have made it.
    pub fn trust_approved(
        &self,
        user: &UserKey,
        identities: &[String],
        client: &str,
        now: Timestamp,
    ) {
        let client = client_key(client);
        for id in identities {
            self.trusted
                .trust(format!("{}|{client}", Identity::trust_key(id)), now);
        }
        self.trusted
            .trust(format!("{}|{client}", user_key(user)), now);
    }

    pub fn trusts(&self, user: &UserKey, caller: &Caller, now: Timestamp) -> bool {
        self.trusted
            .trusts(&format!("{}|{}", user_key(user), caller_key(caller)), now)
    }

    /// Before sending a code to an authenticated user: takes one of the user's deliveries,
    /// refused while they are used up.
    pub fn reserve_delivery(&self, user: &UserKey, now: Timestamp) -> Result<(), AuthError> {
        match &self.deliveries_per_user {
            Some(limiter) => limiter.check(&user_key(user), now).map_err(limited),
            None => Ok(()),
        }
    }

    /// Nothing was delivered after all.
    pub fn refund_delivery(&self, user: &UserKey) {
        if let Some(limiter) = &self.deliveries_per_user {
            limiter.refund(&user_key(user));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let l = RateLimiter::new(Rate {
            burst: 3,
            period: Duration::from_secs(60),
        });
        let t = Timestamp(1_000_000);
        for _ in 0..3 {
            assert!(l.check("alice", t).is_ok());
        }
        let wait = l.check("alice", t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        assert!(l.check("bob", t).is_ok(), "keys are independent");
        assert!(l.check("alice", t.plus(Duration::from_secs(19))).is_err());
        assert!(l.check("alice", t.plus(Duration::from_secs(21))).is_ok());
    }

    #[test]
    fn forgotten_keys_are_swept_and_memory_stays_bounded() {
        let l = RateLimiter::new(Rate {
            burst: 1,
            period: Duration::from_secs(1),
        });
        let t = Timestamp(0);
        for i in 0..FIRST_SWEEP_AT {
            l.check(&format!("k{i}"), t).unwrap();
        }
        // Two seconds later every bucket is full again, so the next new key sweeps them all.
        l.check("late", t.plus(Duration::from_secs(2))).unwrap();
        assert_eq!(l.buckets.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn a_refund_gives_back_one_token_and_never_more_than_the_burst() {
        let l = RateLimiter::new(Rate {
            burst: 2,
            period: Duration::from_secs(60),
        });
        let t = Timestamp(0);
        l.check("k", t).unwrap();
        l.check("k", t).unwrap();
        assert!(l.check("k", t).is_err());
        l.refund("k");
        assert!(l.check("k", t).is_ok());
        for _ in 0..5 {
            l.refund("k");
        }
        assert!(l.check("k", t).is_ok() && l.check("k", t).is_ok());
        assert!(l.check("k", t).is_err(), "capped at the burst");
    }

    #[test]
    fn only_credential_failures_spend_the_failure_budgets() {
        let per = |burst| {
            Some(RateLimiter::new(Rate {
                burst,
                period: Duration::from_secs(60),
            }))
        };
        let limits = RateLimits {
            verify_failures_per_user_and_client: per(2),
            failures_per_user: per(3),
            ..RateLimits::default()
        };
        let caller = |ip: &str| Caller {
            client: Some(ip.into()),
            ..Caller::default()
        };
        let t = Timestamp(0);
        let (a, b) = (caller("192.0.2.1"), caller("192.0.2.2"));
        let refused: Result<(), AuthError> = Err(AuthError::InvalidCredentials(
            crate::error::Refusal::WrongOtp,
        ));
        let unavailable: Result<(), AuthError> = Err(AuthError::Unavailable("x".into()));
        // Outages and malformed requests give the reservation back.
        for _ in 0..5 {
            let adm = limits.admit(AuditAction::Verify, &a, "u:alice", t).unwrap();
            limits.settle(adm, &a, None, &unavailable, t);
        }
        // Two failures from a: a is done; b still has the identity's third.
        for _ in 0..2 {
            let adm = limits.admit(AuditAction::Verify, &a, "u:alice", t).unwrap();
            limits.settle(adm, &a, None, &refused, t);
        }
        assert!(limits.admit(AuditAction::Verify, &a, "U:ALICE", t).is_err());
        let adm = limits.admit(AuditAction::Verify, &b, "u:alice", t).unwrap();
        limits.settle(adm, &b, None, &refused, t);
        // The identity's ceiling is reached: refused for b, and b's pair token comes back.
        assert!(limits.admit(AuditAction::Verify, &b, "u:alice", t).is_err());
        // b's pair bucket (burst 2): one spent by its failure, one left.
        let pair = format!("{}|192.0.2.2", Identity::limit_key("u:alice"));
        let buckets = limits.verify_failures_per_user_and_client.as_ref().unwrap();
        assert!(
            buckets.check(&pair, t).is_ok(),
            "the refused admission gave its token back"
        );
        assert!(
            buckets.check(&pair, t).is_err(),
            "the failure kept its token"
        );
    }

    #[test]
    fn signing_in_as_a_look_alike_name_earns_no_trust_for_the_user() {
        let limits = RateLimits {
            failures_per_user: Some(RateLimiter::new(Rate {
                burst: 1,
                period: Duration::from_secs(60),
            })),
            ..RateLimits::default()
        };
        let at = |ip: &str| Caller {
            client: Some(ip.into()),
            ..Caller::default()
        };
        let t = Timestamp(0);
        let refused: Result<(), AuthError> = Err(AuthError::InvalidCredentials(
            crate::error::Refusal::WrongPassword,
        ));
        let ok: Result<(), AuthError> = Ok(());
        let (home, mallory) = (at("203.0.113.5"), at("198.51.100.7"));
        // alice signs in from home; Mallory signs in as her own a.lice (same skeleton, so the
        // same budget) from her address.
        let adm = limits
            .admit(AuditAction::Bind, &home, "u:Alice", t)
            .unwrap();
        limits.settle(adm, &home, None, &ok, t);
        let adm = limits
            .admit(AuditAction::Bind, &mallory, "u:a.lice", t)
            .unwrap();
        limits.settle(adm, &mallory, None, &ok, t);
        // alice's ceiling is then spent by a failure from elsewhere.
        let adm = limits
            .admit(AuditAction::Bind, &at("192.0.2.1"), "u:alice", t)
            .unwrap();
        limits.settle(adm, &at("192.0.2.1"), None, &refused, t);
        // Mallory's address is trusted for u:a.lice only: refused for u:alice.
        assert!(
            limits
                .admit(AuditAction::Bind, &mallory, "u:alice", t)
                .is_err()
        );
        // The real user's is trusted for u:alice: exempt from the ceiling.
        assert!(limits.admit(AuditAction::Bind, &home, "u:alice", t).is_ok());
    }

    #[test]
    fn parse_rate() {
        let d = |s: &str| (s == "1m").then_some(Duration::from_secs(60));
        assert_eq!(
            Rate::parse("5/1m", d),
            Some(Rate {
                burst: 5,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(Rate::parse("0/1m", d), None);
        assert_eq!(Rate::parse("5", d), None);
        assert_eq!(Rate::parse("5/xx", d), None);
    }
}
