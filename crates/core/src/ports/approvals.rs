//! Durable approval requests and the outbox, and the signal that wakes whoever waits on a
//! login when it is decided.

use async_trait::async_trait;

use super::StoreError;
use crate::approval::{ApprovalRequest, ApprovalState, Decision};
use crate::model::{Timestamp, UserKey};
use crate::outbox::{OutboxMessage, OutboxState};

/// Filters for listing approval requests; all optional, combined with AND. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalQuery {
    pub state: Option<ApprovalState>,
    /// Substring of the username or user DN, case-insensitive.
    pub user: Option<String>,
    pub application: Option<String>,
    /// Only requests decided (or expired) at or after this time.
    pub decided_since: Option<Timestamp>,
    pub limit: usize,
}

/// What [`ApprovalStore::decide_approval`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// This decision was recorded; the request as it now is.
    Decided(ApprovalRequest),
    /// The request was no longer pending (decided, expired or cancelled before); as it is.
    AlreadyFinal(ApprovalRequest),
    NotFound,
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records a new pending request. `Conflict` when the same user already has a pending
    /// request for the same application (the caller joins that one instead).
    async fn insert_approval(&self, request: &ApprovalRequest) -> Result<(), StoreError>;
    async fn approval(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError>;
    async fn approval_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApprovalRequest>, StoreError>;
    /// Records that the approval message of request `id` went out.
    async fn mark_approval_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// The pending request of `user` for `application` if there is one, else the newest in any
    /// state.
    async fn latest_approval(
        &self,
        user: &UserKey,
        application: &str,
    ) -> Result<Option<ApprovalRequest>, StoreError>;
    /// Moves request `id` from pending to `decision.state`, only if it is still pending and,
    /// for an approval or rejection, not past its expiry at `decision.at` (then it is marked
    /// expired and `AlreadyFinal` comes back). Exactly one of concurrent deciders wins.
    async fn decide_approval(
        &self,
        id: &str,
        decision: &Decision,
    ) -> Result<DecideOutcome, StoreError>;
    /// Marks every pending request whose expiry is at or before `now` as expired; returns them.
    async fn expire_approvals(&self, now: Timestamp) -> Result<Vec<ApprovalRequest>, StoreError>;
    async fn list_approvals(
        &self,
        query: &ApprovalQuery,
    ) -> Result<Vec<ApprovalRequest>, StoreError>;
    /// Requests that left pending after position `after` of the decision log, oldest first,
    /// at most `limit`, and the position to read from next. `None`: nothing, and the log's
    /// current end (where a reader starts).
    async fn decisions_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<String>, u64), StoreError>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Durable on return.
    async fn enqueue_message(&self, message: &OutboxMessage) -> Result<(), StoreError>;
    /// Up to `limit` queued messages due at `now`, oldest first, each claimed until `lease`
    /// (its next attempt moved there) so another worker does not send it meanwhile; a worker
    /// that dies leaves them to be claimed again after the lease.
    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    async fn mark_message_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// A failed try: the count, the next try, the error. Only a message still queued changes
    /// (one another worker sent meanwhile stays sent).
    async fn mark_message_retry(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Given up (only a message still queued).
    async fn mark_message_failed(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_messages(
        &self,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    /// The newest message about `about_user` (a DN as the outbox keeps it) logging in to
    /// `application` from `client`.
    async fn latest_message_about(
        &self,
        about_user: &str,
        application: &str,
        client: Option<&str>,
    ) -> Result<Option<OutboxMessage>, StoreError>;
    /// Queues failed message `id` (or every failed message when `None`) again, due at `now`,
    /// with its age counted from `now`. Returns how many.
    async fn retry_messages(&self, id: Option<&str>, now: Timestamp) -> Result<u64, StoreError>;
}

/// Wakes the waiters of a login the moment it is decided. Subscribe *before* reading the
/// state, so a decision between the read and the wait is not missed.
#[async_trait]
pub trait DecisionSignal: Send + Sync {
    fn subscribe(&self, login: &str) -> Box<dyn Subscription>;
    /// Wakes every current subscriber of `login`.
    fn notify(&self, login: &str);
}

#[async_trait]
pub trait Subscription: Send {
    /// Returns when the login was notified since the subscription (or the last return), or at
    /// `until`, whichever comes first.
    async fn wait(&mut self, until: Timestamp);
}

/// Work that must run to its end once started.
pub type Work = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Runs work apart from the caller's future: started at once, finished even if the returned
/// future is dropped (the server spawns it on the runtime).
pub trait Detach: Send + Sync {
    /// The returned future completes when `work` has finished.
    fn detach(&self, work: Work)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}
