//! The capabilities the core needs from the outside world, as small traits. Adapters in the
//! server crate implement them for real (SQLite, directories, SMTP, SMS gateways); tests use the
//! in-memory fakes in `testkit`.

use async_trait::async_trait;
use thiserror::Error;

use crate::audit::{AuditQuery, AuditRecord};
use crate::identity::Identity;
use crate::model::{Manager, Timestamp, User, UserKey};
use crate::secret::Secret;

/// The current time. Injected so expiry is testable.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// A cryptographically secure random source.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
}

/// An OTP as issued and stored: only its keyed hash, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedOtp {
    /// Random identifier of this issue, so a late consume cannot hit a newer OTP.
    pub id: String,
    pub user: UserKey,
    pub hash: Vec<u8>,
    pub issued_at: Timestamp,
    pub failed_attempts: u32,
}

/// A user of the local directory, with what only the store keeps: the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    pub user: User,
    /// PHC string (argon2id).
    pub password_hash: String,
}

/// Durable state. The store is the source of truth: everything here survives a restart.
#[async_trait]
pub trait Store: Send + Sync {
    /// Records an OTP for its user, replacing any outstanding one (one OTP per user).
    async fn put_otp(&self, otp: &IssuedOtp) -> Result<(), StoreError>;
    async fn get_otp(&self, user: &UserKey) -> Result<Option<IssuedOtp>, StoreError>;
    /// Atomically removes the OTP `id` if it is still outstanding and has fewer than
    /// `max_failed` failures. True only for the one caller that removed it.
    async fn consume_otp(
        &self,
        user: &UserKey,
        id: &str,
        max_failed: u32,
    ) -> Result<bool, StoreError>;
    /// Counts a wrong try against OTP `id`; at `max_failed` failures the OTP is removed.
    /// Returns the failures counted so far.
    async fn fail_otp(&self, user: &UserKey, id: &str, max_failed: u32) -> Result<u32, StoreError>;
    /// Removes OTP `id` (expired, or undeliverable).
    async fn delete_otp(&self, user: &UserKey, id: &str) -> Result<(), StoreError>;

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes audit records older than `before`; returns how many.
    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError>;

    // Local directory users.
    async fn insert_local_user(&self, user: &LocalUser) -> Result<(), StoreError>;
    async fn update_local_user(&self, user: &LocalUser) -> Result<(), StoreError>;
    async fn delete_local_user(&self, directory: &str, username: &str) -> Result<bool, StoreError>;
    async fn local_user(
        &self,
        directory: &str,
        username: &str,
    ) -> Result<Option<LocalUser>, StoreError>;
    async fn local_user_by_dn(
        &self,
        directory: &str,
        dn_normalized: &str,
    ) -> Result<Option<LocalUser>, StoreError>;
    /// Users whose attribute `name` (lower-case; `uid` is the username, `mail` and `mobile` the
    /// addresses) has the value, compared case-insensitively.
    async fn local_users_matching(
        &self,
        directory: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<LocalUser>, StoreError>;
    async fn list_local_users(&self, directory: &str) -> Result<Vec<LocalUser>, StoreError>;
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("directory {directory} unavailable: {reason}")]
    Unavailable { directory: String, reason: String },
}

/// What an identity lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Box<User>),
    NotFound,
    /// The identity mapper matched more than one entry: refused, as Ping's mappers do.
    Ambiguous,
}

/// Where users live: a `[[directory]]` (local store, LDAP server).
#[async_trait]
pub trait Directory: Send + Sync {
    fn name(&self) -> &str;
    /// Resolves `dn:` directly and `u:` through this directory's identity mapper.
    async fn find_user(&self, identity: &Identity) -> Result<Lookup, DirectoryError>;
    async fn check_password(&self, user: &User, password: &Secret) -> Result<bool, DirectoryError>;
    /// Spends the effort of a password check for nobody, so an unknown user takes as long to
    /// refuse as a wrong password.
    async fn check_password_of_nobody(&self, password: &Secret);
    /// The user's manager: `None` when there is none, or it cannot be used (dangling, outside
    /// the directory's bases, the user themself).
    async fn find_manager(&self, user: &User) -> Result<Option<Manager>, DirectoryError>;
    /// When this directory cannot be reached: stop the fallback chain with "unavailable"
    /// (true, the default: a lower directory must not silently answer for a user it may not
    /// hold) or go on to the next directory (false).
    fn stops_chain_when_unavailable(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The transport did not take the message (connection refused, timeout, rejected). The text
    /// may name the server; it never holds the message body.
    #[error("{0}")]
    Failed(String),
}

/// A message for one recipient. The body holds the OTP, hence a [`Secret`].
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub to: String,
    pub subject: String,
    pub body: Secret,
}

/// Takes a message to one address over one transport (SMTP, SMS gateway, file).
#[async_trait]
pub trait Courier: Send + Sync {
    async fn send(&self, message: &OutboundMessage) -> Result<(), DeliveryError>;
}
