//! Durable state behind the core's store ports (`OtpStore`, `AuditStore`, `LocalUserStore`,
//! `ApprovalStore`, `OutboxStore`).
//! SQLite is the embedded default; PostgreSQL will implement the same ports for several nodes
//! serving together, checked by the same contract tests.

mod private;
pub mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;
use countersign_core::ports::Store;

/// A store as the wiring holds it: the core's ports, and the end of its life.
#[async_trait]
pub trait StoreBackend: Store {
    /// Commits every queued write and refuses later ones (at shutdown, after the fronts and
    /// background jobs have stopped).
    async fn close(&self);
}

#[async_trait]
impl StoreBackend for SqliteStore {
    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}
