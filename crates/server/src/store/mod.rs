//! Durable state behind the core's store ports (`OtpStore`, `AuditStore`, `LocalUserStore`).
//! SQLite is the embedded default; PostgreSQL will implement the same ports for several nodes
//! serving together, checked by the same contract tests.

mod private;
pub mod sqlite;

pub use sqlite::SqliteStore;
