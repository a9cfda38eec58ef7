//! In-memory fakes of the ports, for the core's unit tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

use async_trait::async_trait;

use crate::audit::{AuditQuery, AuditRecord};
use crate::identity::Identity;
use crate::model::{Timestamp, User, UserKey};
use crate::ports::*;
use crate::secret::Secret;

/// Bytes 0, 1, 2, ... 255, 0, ...: deterministic, and every value equally often.
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

pub struct TestClock(pub AtomicI64);

impl TestClock {
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
