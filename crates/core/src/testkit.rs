//! In-memory fakes of the ports and a ready-wired world of the use cases, for the core's unit
//! tests; [`TestClock`] is also the one test clock of the integration tests (feature
//! `testkit`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::attempt::{AuditTrail, Caller, Front};
use crate::audit::{AuditQuery, AuditRecord};
use crate::crypto::OtpHasher;
use crate::identity::Identity;
use crate::identity_mapper::IdentityMapper;
use crate::model::{AccountState, Dn, Timestamp, User, UserKey};
use crate::otp::generator::PasswordGenerator;
use crate::otp::mechanism::{Channel, DeliveryMechanism, MechanismChoice, MessageTexts};
use crate::otp::{DeliverRequest, OtpService, OtpSettings, VerifyRequest};
use crate::password::PasswordAuthentication;
use crate::ports::*;
use crate::ratelimit::RateLimits;
use crate::secret::Secret;

/// Bytes 0, 1, 2, ... 255, 0, ...: deterministic, and every value equally often.
#[derive(Default)]
pub struct SeqRandom(AtomicU8);

impl SeqRandom {
    pub fn new() -> Self {
        Self(AtomicU8::new(0))
    }
}

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            *b = self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A clock that only moves when told to.
pub struct TestClock(pub AtomicI64);

impl TestClock {
    /// Stopped at `ms` milliseconds since the epoch.
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn advance(&self, d: std::time::Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[derive(Default)]
pub struct MemStore {
    pub otps: Mutex<HashMap<UserKey, IssuedOtp>>,
    pub audit: Mutex<Vec<AuditRecord>>,
}

#[async_trait]
impl OtpStore for MemStore {
    async fn put_otp(&self, otp: &IssuedOtp) -> Result<(), StoreError> {
        self.otps
            .lock()
            .unwrap()
            .insert(otp.user.clone(), otp.clone());
        Ok(())
    }
    async fn get_otp(&self, user: &UserKey) -> Result<Option<IssuedOtp>, StoreError> {
        Ok(self.otps.lock().unwrap().get(user).cloned())
    }
    async fn consume_otp(&self, user: &UserKey, id: &str, max: u32) -> Result<bool, StoreError> {
        let mut otps = self.otps.lock().unwrap();
        let ok = otps
            .get(user)
            .is_some_and(|o| o.id == id && o.failed_attempts < max);
        if ok {
            otps.remove(user);
        }
        Ok(ok)
    }
    async fn fail_otp(&self, user: &UserKey, id: &str, max: u32) -> Result<u32, StoreError> {
        let mut otps = self.otps.lock().unwrap();
        let Some(o) = otps.get_mut(user).filter(|o| o.id == id) else {
            return Ok(max);
        };
        o.failed_attempts += 1;
        let n = o.failed_attempts;
        if n >= max {
            otps.remove(user);
        }
        Ok(n)
    }
    async fn delete_otp(&self, user: &UserKey, id: &str) -> Result<(), StoreError> {
        let mut otps = self.otps.lock().unwrap();
        if otps.get(user).is_some_and(|o| o.id == id) {
            otps.remove(user);
        }
        Ok(())
    }
}

#[async_trait]
impl AuditStore for MemStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.audit.lock().unwrap().push(record.clone());
        Ok(())
    }
    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut a = self.audit.lock().unwrap();
        let n = a.len();
        a.retain(|r| r.at >= before);
        Ok((n - a.len()) as u64)
    }
    async fn list_audit(&self, _q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.audit.lock().unwrap().iter().rev().cloned().collect())
    }
}

#[async_trait]
impl LocalUserStore for MemStore {
    async fn insert_local_user(&self, _u: &LocalUser) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    async fn update_local_user(&self, _u: &LocalUser) -> Result<(), StoreError> {
        Err(StoreError::NotFound)
    }
    async fn delete_local_user(&self, _d: &str, _u: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn local_user(&self, _d: &str, _u: &str) -> Result<Option<LocalUser>, StoreError> {
        Ok(None)
    }
    async fn local_user_by_dn(&self, _d: &str, _dn: &str) -> Result<Option<LocalUser>, StoreError> {
        Ok(None)
    }
    async fn local_users_matching(
        &self,
        _d: &str,
        _a: &str,
        _v: &str,
    ) -> Result<Vec<LocalUser>, StoreError> {
        Ok(vec![])
    }
    async fn list_local_users(&self, _d: &str) -> Result<Vec<LocalUser>, StoreError> {
        Ok(vec![])
    }
}

/// Users with plain-text passwords, for the core's tests only.
pub struct MemDirectory {
    pub name: String,
    pub users: Vec<(User, String)>,
    pub nobody_checks: AtomicU8,
}

impl MemDirectory {
    /// `users`, each with the password `secret`.
    pub fn new(name: &str, users: Vec<User>) -> Self {
        Self {
            name: name.into(),
            users: users
                .into_iter()
                .map(|u| (u, "secret".to_owned()))
                .collect(),
            nobody_checks: AtomicU8::new(0),
        }
    }
}

#[async_trait]
impl Directory for MemDirectory {
    fn name(&self) -> &str {
        &self.name
    }
    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError> {
        let found: Vec<&User> = self
            .users
            .iter()
            .map(|(u, _)| u)
            .filter(|u| match identity {
                Identity::Dn(dn) => dn.normalized() == u.dn.normalized(),
                Identity::Username(name) => u.username == *name,
            })
            .collect();
        Ok(match found.as_slice() {
            [] => Lookup::NotFound,
            [one] => Lookup::Found(Box::new((*one).clone())),
            _ => Lookup::Ambiguous,
        })
    }
    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError> {
        Ok(self
            .users
            .iter()
            .any(|(u, p)| u.dn == user.dn && p == password.expose()))
    }
    async fn check_password_of_nobody(&self, _password: &Secret) {
        self.nobody_checks.fetch_add(1, Ordering::SeqCst);
    }
    async fn find_manager(&self, _user: &User) -> Result<Option<crate::Manager>, DirectoryError> {
        Ok(None)
    }
}

/// Records what it was asked to send; fails when `fail` is set.
#[derive(Default)]
pub struct RecordingCourier {
    pub sent: Mutex<Vec<OutboundMessage>>,
    pub fail: bool,
}

#[async_trait]
impl Courier for RecordingCourier {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError> {
        if self.fail {
            return Err(DeliveryError::Failed("connection refused".into()));
        }
        self.sent.lock().unwrap().push(message.clone());
        Ok(())
    }
}

pub const T0: i64 = 1_700_000_000_000;

pub fn alice() -> User {
    User {
        directory: "local".into(),
        dn: Dn::new("uid=alice,ou=people,dc=example,dc=com"),
        username: "alice".into(),
        display_name: Some("Alice".into()),
        mail: vec!["alice@example.com".into(), "alice@home.example".into()],
        mobile: vec!["+15550100001".into()],
        attributes: Default::default(),
        sponsor: None,
        preferred_mechanisms: vec![],
        account: AccountState::default(),
    }
}

/// The use cases wired to the fakes: a local directory, Email then SMS.
pub struct World {
    pub svc: OtpService,
    pub store: Arc<MemStore>,
    pub clock: Arc<TestClock>,
    pub email: Arc<RecordingCourier>,
    pub sms: Arc<RecordingCourier>,
    pub dir: Arc<MemDirectory>,
}

pub fn world_with(users: Vec<User>, email_fails: bool, sms_fails: bool) -> World {
    world_limited(users, email_fails, sms_fails, RateLimits::default())
}

pub fn world_limited(
    users: Vec<User>,
    email_fails: bool,
    sms_fails: bool,
    limits: RateLimits,
) -> World {
    let store = Arc::new(MemStore::default());
    let clock = Arc::new(TestClock::at(T0));
    let email = Arc::new(RecordingCourier {
        fail: email_fails,
        ..Default::default()
    });
    let sms = Arc::new(RecordingCourier {
        fail: sms_fails,
        ..Default::default()
    });
    let dir = Arc::new(MemDirectory::new("local", users));
    let mech = |name: &str, channel, courier: &Arc<RecordingCourier>| DeliveryMechanism {
        name: name.into(),
        channel,
        enabled: true,
        subject: Some("Configured subject".into()),
        text_before_otp: None,
        text_after_otp: Some(" (configured after)".into()),
        courier: courier.clone(),
    };
    let passwords = Arc::new(PasswordAuthentication {
        mapper: IdentityMapper::new(vec![dir.clone()]),
        limits: Arc::new(limits),
        audit: AuditTrail::new(store.clone(), clock.clone()),
        clock: clock.clone(),
    });
    let svc = OtpService {
        passwords,
        mechanisms: vec![
            mech("Email", Channel::Email, &email),
            mech("SMS", Channel::Sms, &sms),
        ],
        default_mechanisms: vec!["Email".into(), "SMS".into()],
        generator: PasswordGenerator::numeric(6),
        settings: OtpSettings {
            validity: Duration::from_secs(300),
            max_failed_attempts: 3,
        },
        hasher: OtpHasher::new(&[9u8; 32]).unwrap(),
        store: store.clone(),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new()),
    };
    World {
        svc,
        store,
        clock,
        email,
        sms,
        dir,
    }
}

pub fn world() -> World {
    world_with(vec![alice()], false, false)
}

pub fn caller() -> Caller {
    caller_at("192.0.2.1")
}

pub fn caller_at(client: &str) -> Caller {
    Caller {
        front: Front::Http,
        client: Some(client.into()),
        bound_as: None,
    }
}

pub fn deliver_req(mechs: Option<Vec<MechanismChoice>>) -> DeliverRequest {
    DeliverRequest {
        authentication_id: "u:alice".into(),
        static_password: Some("secret".into()),
        mechanisms: mechs,
        texts: MessageTexts::default(),
    }
}

pub fn verify_req(otp: &str) -> VerifyRequest {
    VerifyRequest {
        authentication_id: "u:alice".into(),
        authorization_id: None,
        otp: otp.into(),
    }
}

/// The code in the last message `c` sent.
pub fn last_otp(c: &RecordingCourier) -> String {
    let sent = c.sent.lock().unwrap();
    let body = sent.last().unwrap().body.expose().to_owned();
    body.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()[..6]
        .to_owned()
}
