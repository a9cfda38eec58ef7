//! In-memory fakes of the ports and a ready-wired world of the use cases, for the core's unit
//! tests; [`TestClock`] is also the one test clock of the integration tests (feature
//! `testkit`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

mod oidc;

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

/// Deterministic bytes that never repeat a window (SHA-256 of a counter): for tokens and ids,
/// where [`SeqRandom`]'s short cycle would make two requests share one.
#[derive(Default)]
pub struct UniqueRandom(std::sync::atomic::AtomicU64);

impl Random for UniqueRandom {
    fn fill(&self, buf: &mut [u8]) {
        use sha2::{Digest, Sha256};
        for chunk in buf.chunks_mut(32) {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            let block = Sha256::digest(n.to_be_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
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

/// Every store port in memory, with the store's rules: one OTP per user, one pending approval
/// request per user and application, the first decision wins.
#[derive(Default)]
pub struct MemStore {
    pub otps: Mutex<HashMap<UserKey, IssuedOtp>>,
    pub audit: Mutex<Vec<AuditRecord>>,
    pub requests: Mutex<Vec<crate::approval::ApprovalRequest>>,
    pub messages: Mutex<Vec<crate::outbox::OutboxMessage>>,
    pub oidc: Mutex<oidc::MemOidc>,
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
    /// When set, every account reads as locked until then.
    pub locked_until: Mutex<Option<Timestamp>>,
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
            locked_until: Mutex::new(None),
        }
    }

    /// Locks every account until `until`, as the directory would.
    pub fn lock_all(&self, until: Timestamp) {
        *self.locked_until.lock().unwrap() = Some(until);
    }
}

#[async_trait]
impl Directory for MemDirectory {
    fn name(&self) -> &str {
        &self.name
    }
    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError> {
        let wanted_dn = match identity {
            Identity::Dn(dn) => Some(dn.normalized()),
            Identity::Username(_) => None,
        };
        let found: Vec<&User> = self
            .users
            .iter()
            .map(|(u, _)| u)
            .filter(|u| match identity {
                Identity::Dn(_) => wanted_dn.as_deref() == Some(u.dn.normalized().as_str()),
                Identity::Username(name) => u.username == *name,
            })
            .collect();
        let locked = *self.locked_until.lock().unwrap();
        Ok(match found.as_slice() {
            [] => Lookup::NotFound,
            [one] => {
                let mut user = (*one).clone();
                if locked.is_some() {
                    user.account.locked_until = locked;
                }
                Lookup::Found(Box::new(user))
            }
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
    /// The sponsor stands in for the manager, as in the local directory.
    async fn find_manager(&self, user: &User) -> Result<Option<crate::Manager>, DirectoryError> {
        Ok(user.sponsor.as_ref().map(|s| crate::Manager {
            dn: None,
            name: s.name.clone(),
            mail: s.email.clone(),
            mobile: s.phone.clone(),
        }))
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
        id: None,
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

impl World {
    /// The login use case over this world: its directory as the login chain, its store for
    /// approvals and the outbox, its clock, limits and audit trail.
    pub fn login_service(
        &self,
        rules: crate::login::ApprovalRules,
        signal: Arc<dyn DecisionSignal>,
        detach: Arc<dyn Detach>,
        wake_outbox: Arc<dyn Fn() + Send + Sync>,
    ) -> crate::login::LoginService {
        let passwords = Arc::new(PasswordAuthentication {
            mapper: IdentityMapper::new(vec![self.dir.clone()]),
            limits: self.svc.passwords.limits.clone(),
            audit: self.svc.passwords.audit.clone(),
            clock: self.clock.clone(),
        });
        let otp = Arc::new(OtpService {
            passwords: self.svc.passwords.clone(),
            mechanisms: self.svc.mechanisms.clone(),
            default_mechanisms: self.svc.default_mechanisms.clone(),
            generator: self.svc.generator.clone(),
            settings: self.svc.settings,
            hasher: self.svc.hasher.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            random: self.svc.random.clone(),
        });
        crate::login::LoginService {
            passwords,
            otp,
            directories: IdentityMapper::new(vec![self.dir.clone()]),
            rules,
            approvals: self.store.clone(),
            outbox: self.store.clone(),
            signal,
            detach,
            wake_outbox,
            clock: self.clock.clone(),
            random: Arc::new(UniqueRandom::default()),
        }
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

/// The approval and outbox fakes were once a store of their own; they are [`MemStore`]'s now.
pub type MemApprovals = MemStore;

#[async_trait]
impl ApprovalStore for MemStore {
    async fn insert_approval(
        &self,
        r: &crate::approval::ApprovalRequest,
    ) -> Result<(), StoreError> {
        use crate::approval::ApprovalState;
        let mut all = self.requests.lock().unwrap();
        if all.iter().any(|o| {
            o.user == r.user && o.application == r.application && o.state == ApprovalState::Pending
        }) {
            return Err(StoreError::Conflict("pending".into()));
        }
        all.push(r.clone());
        Ok(())
    }
    async fn approval(
        &self,
        id: &str,
    ) -> Result<Option<crate::approval::ApprovalRequest>, StoreError> {
        Ok(self
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .cloned())
    }
    async fn approval_by_token(
        &self,
        hash: &[u8],
    ) -> Result<Option<crate::approval::ApprovalRequest>, StoreError> {
        Ok(self
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.token_hash == hash)
            .cloned())
    }
    async fn latest_approval(
        &self,
        user: &UserKey,
        app: &str,
    ) -> Result<Option<crate::approval::ApprovalRequest>, StoreError> {
        Ok(self
            .requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|r| &r.user == user && r.application == app)
            .max_by_key(|r| {
                (
                    r.state == crate::approval::ApprovalState::Pending,
                    r.created_at,
                )
            })
            .cloned())
    }
    async fn mark_approval_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        for r in self
            .requests
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|r| r.id == id)
        {
            r.sent_at = Some(at);
        }
        Ok(())
    }
    async fn decide_approval(
        &self,
        id: &str,
        d: &crate::approval::Decision,
    ) -> Result<DecideOutcome, StoreError> {
        use crate::approval::ApprovalState;
        let mut all = self.requests.lock().unwrap();
        let Some(r) = all.iter_mut().find(|r| r.id == id) else {
            return Ok(DecideOutcome::NotFound);
        };
        if r.state != ApprovalState::Pending {
            return Ok(DecideOutcome::AlreadyFinal(r.clone()));
        }
        if d.state != ApprovalState::Cancelled && d.at >= r.expires_at {
            r.state = ApprovalState::Expired;
            r.decided_at = Some(r.expires_at);
            return Ok(DecideOutcome::AlreadyFinal(r.clone()));
        }
        r.state = d.state;
        r.decided_at = Some(d.at);
        r.decided_by = Some(d.by.clone());
        Ok(DecideOutcome::Decided(r.clone()))
    }
    async fn expire_approvals(
        &self,
        now: Timestamp,
    ) -> Result<Vec<crate::approval::ApprovalRequest>, StoreError> {
        use crate::approval::ApprovalState;
        let mut out = Vec::new();
        for r in self.requests.lock().unwrap().iter_mut() {
            if r.state == ApprovalState::Pending && r.expires_at <= now {
                r.state = ApprovalState::Expired;
                r.decided_at = Some(r.expires_at);
                out.push(r.clone());
            }
        }
        Ok(out)
    }
    async fn decisions_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<String>, u64), StoreError> {
        let log: Vec<String> = self
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.decided_at.is_some())
            .map(|r| r.id.clone())
            .collect();
        let Some(after) = after else {
            return Ok((vec![], log.len() as u64));
        };
        let ids: Vec<String> = log.into_iter().skip(after as usize).take(limit).collect();
        let next = after + ids.len() as u64;
        Ok((ids, next))
    }
    async fn list_approvals(
        &self,
        q: &ApprovalQuery,
    ) -> Result<Vec<crate::approval::ApprovalRequest>, StoreError> {
        Ok(self
            .requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|r| q.state.is_none_or(|s| r.state == s))
            .filter(|r| q.application.as_ref().is_none_or(|a| &r.application == a))
            .filter(|r| {
                q.user.as_ref().is_none_or(|u| {
                    let u = u.to_lowercase();
                    r.username.to_lowercase().contains(&u) || r.user_dn.to_lowercase().contains(&u)
                })
            })
            .filter(|r| {
                q.decided_since
                    .is_none_or(|t| r.decided_at.is_some_and(|d| d >= t))
            })
            .take(if q.limit == 0 { usize::MAX } else { q.limit })
            .cloned()
            .collect())
    }
}

impl MemStore {
    /// Changes message `id` if it is still queued, as the port promises (a message once sent
    /// or given up stays so).
    fn update_queued_message(
        &self,
        id: &str,
        change: impl FnOnce(&mut crate::outbox::OutboxMessage),
    ) {
        let mut messages = self.messages.lock().unwrap();
        if let Some(m) = messages
            .iter_mut()
            .find(|m| m.id == id && m.state == crate::outbox::OutboxState::Queued)
        {
            change(m);
        }
    }
}

#[async_trait]
impl OutboxStore for MemStore {
    async fn enqueue_message(&self, m: &crate::outbox::OutboxMessage) -> Result<(), StoreError> {
        self.messages.lock().unwrap().push(m.clone());
        Ok(())
    }
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limit: usize,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError> {
        let mut out = Vec::new();
        for m in self.messages.lock().unwrap().iter_mut() {
            if out.len() < limit
                && m.state == crate::outbox::OutboxState::Queued
                && m.next_attempt_at <= now
            {
                m.next_attempt_at = lease;
                out.push(m.clone());
            }
        }
        Ok(out)
    }
    async fn mark_message_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        for m in self
            .messages
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|m| m.id == id)
        {
            m.state = crate::outbox::OutboxState::Sent;
            m.sent_at = Some(at);
            m.attempts += 1;
        }
        Ok(())
    }
    async fn mark_message_retry(
        &self,
        id: &str,
        attempts: u32,
        next: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        self.update_queued_message(id, |m| {
            m.attempts = attempts;
            m.next_attempt_at = next;
            m.last_error = Some(error.into());
        });
        Ok(())
    }
    async fn mark_message_failed(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        self.update_queued_message(id, |m| {
            m.attempts = attempts;
            m.state = crate::outbox::OutboxState::Failed;
            m.last_error = Some(error.into());
        });
        Ok(())
    }
    async fn list_messages(
        &self,
        state: Option<crate::outbox::OutboxState>,
        limit: usize,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError> {
        Ok(self
            .messages
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|m| state.is_none_or(|s| m.state == s))
            .take(if limit == 0 { usize::MAX } else { limit })
            .cloned()
            .collect())
    }
    async fn latest_message_about(
        &self,
        about_user: &str,
        application: &str,
        client: Option<&str>,
    ) -> Result<Option<crate::outbox::OutboxMessage>, StoreError> {
        Ok(self
            .messages
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|m| {
                m.about_user == about_user
                    && m.application == application
                    && m.client.as_deref() == client
            })
            .cloned())
    }
    async fn retry_messages(&self, id: Option<&str>, now: Timestamp) -> Result<u64, StoreError> {
        let mut n = 0;
        for m in self.messages.lock().unwrap().iter_mut() {
            if m.state == crate::outbox::OutboxState::Failed && id.is_none_or(|id| m.id == id) {
                m.state = crate::outbox::OutboxState::Queued;
                m.next_attempt_at = now;
                m.created_at = now;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Per login: how many notifications so far, and the wakers of those waiting for the next.
type Versions = Arc<Mutex<HashMap<String, (u64, Vec<std::task::Waker>)>>>;

/// A decision signal on wakers alone (no timer: `until` is ignored, so tests must decide).
#[derive(Default)]
pub struct MemSignal {
    versions: Versions,
}

struct MemSubscription {
    versions: Versions,
    login: String,
    seen: u64,
}

impl DecisionSignal for MemSignal {
    fn subscribe(&self, login: &str) -> Box<dyn Subscription> {
        let seen = self
            .versions
            .lock()
            .unwrap()
            .entry(login.into())
            .or_default()
            .0;
        Box::new(MemSubscription {
            versions: self.versions.clone(),
            login: login.into(),
            seen,
        })
    }
    fn notify(&self, login: &str) {
        let mut map = self.versions.lock().unwrap();
        let entry = map.entry(login.into()).or_default();
        entry.0 += 1;
        for w in entry.1.drain(..) {
            w.wake();
        }
    }
}

#[async_trait]
impl Subscription for MemSubscription {
    async fn wait(&mut self, _until: Timestamp) {
        let seen = std::future::poll_fn(|cx| {
            let mut map = self.versions.lock().unwrap();
            let entry = map.entry(self.login.clone()).or_default();
            if entry.0 != self.seen {
                std::task::Poll::Ready(entry.0)
            } else {
                entry.1.push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
        self.seen = seen;
    }
}

/// Runs detached work inline, when awaited (the tests never drop it half-way).
pub struct InlineDetach;

impl Detach for InlineDetach {
    fn detach(
        &self,
        work: Work,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        work
    }
}
