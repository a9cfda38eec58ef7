//! Durable state as focused ports: OTPs, the audit trail, local users, and (in `approvals`)
//! approval requests and the outbox. `Store` is all of them together, for the wiring.

use async_trait::async_trait;
use thiserror::Error;

use super::approvals::{ApprovalStore, OutboxStore};
use super::oidc::OidcStore;
use crate::audit::{AuditQuery, AuditRecord};
use crate::model::{Timestamp, User, UserKey};

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

/// Outstanding OTPs, one per user: the only state the OTP use cases keep.
#[async_trait]
pub trait OtpStore: Send + Sync {
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
}

/// The audit trail, append-only but for pruning by age.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Returns only once the record is durable: an attempt's answer waits for its record.
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Deletes audit records older than `before`; returns how many.
    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// The users of local directories, with their password hashes.
#[async_trait]
pub trait LocalUserStore: Send + Sync {
    /// Refuses (`Conflict`) a second user with the same username (case-insensitively) or DN
    /// in the directory.
    async fn insert_local_user(&self, user: &LocalUser) -> Result<(), StoreError>;
    /// `NotFound` when no user has that username in the directory.
    async fn update_local_user(&self, user: &LocalUser) -> Result<(), StoreError>;
    /// Also removes the user's outstanding OTP. False when there was no such user.
    async fn delete_local_user(&self, directory: &str, username: &str) -> Result<bool, StoreError>;
    /// Username compared case-insensitively.
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
    /// addresses, `cn` the display name) has the value, compared case-insensitively.
    async fn local_users_matching(
        &self,
        directory: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<LocalUser>, StoreError>;
    /// Ordered by username.
    async fn list_local_users(&self, directory: &str) -> Result<Vec<LocalUser>, StoreError>;
}

/// Durable state, all of it: the store is the source of truth and everything here survives a
/// restart. Wiring holds one `Arc<dyn Store>`; a use case that needs one capability takes only
/// that port. Every type implementing the focused ports is a `Store`.
pub trait Store:
    OtpStore + AuditStore + LocalUserStore + ApprovalStore + OutboxStore + OidcStore
{
}

impl<T> Store for T where
    T: OtpStore + AuditStore + LocalUserStore + ApprovalStore + OutboxStore + OidcStore + ?Sized
{
}
