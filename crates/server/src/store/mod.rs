//! Durable state behind the core's `Store` port. SQLite is the embedded default; PostgreSQL will
//! implement the same trait for several nodes serving together.

pub mod sqlite;

pub use sqlite::SqliteStore;
