//! The SQLite store: one file in WAL mode. All writes go through one writer thread that
//! group-commits them ([`writer`]); reads run on a small pool of read connections on tokio's
//! blocking pool, so the async fronts never stall and reads never wait for a commit. The schema
//! comes from numbered SQL files applied at open ([`migrate`]). The database and its `-wal` and
//! `-shm` files are readable by their owner only: they hold password hashes.

mod approvals;
mod audit;
mod migrate;
mod oidc;
mod otp;
mod outbox;
mod users;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use countersign_core::ports::StoreError;
use rusqlite::Connection;

use crate::store::private;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: writer::Writer,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    version: i64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        private::create_dir(path)?;
        // Created 0600 before SQLite opens it; SQLite gives `-wal` and `-shm` the main
        // file's permissions, so they are private too.
        private::create_file(path)?;
        let mut conn =
            Connection::open(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        configure(&conn)?;
        let version = migrate::migrate(&mut conn, migrate::MIGRATIONS)?;
        // Files left by an older countersign (0644) are made private once WAL exists.
        private::tighten(path)?;
        let readers = (0..reader_count())
            .map(|_| open_reader(path).map(|c| Arc::new(Mutex::new(c))))
            .collect::<Result<Vec<_>, _>>()?;
        let writer = writer::Writer::start(conn, writer::QUEUE_CAPACITY, writer::MAX_BATCH)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                readers,
                next_reader: AtomicUsize::new(0),
                version,
            }),
        })
    }

    /// The schema version now in force.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.inner.version)
    }

    /// Takes no more writes and commits every write already taken (shutdown). Dropping the
    /// last handle does the same.
    pub async fn close(&self) {
        self.inner.writer.close().await;
    }

    /// Runs `f` in the writer's next group commit; returns once it is durable.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Runs `f` on a read connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let i = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
        let conn = self.inner.readers[i].clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| unavailable("store lock poisoned"))?;
            f(&guard)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Settings of the write connection. `synchronous=FULL`: a commit that returned is on disk.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(unavailable)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(unavailable)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(unavailable)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn =
        Connection::open(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    // Reads only: every write goes through the writer, in order.
    conn.pragma_update(None, "query_only", "ON")
        .map_err(unavailable)?;
    Ok(conn)
}

/// One read connection per core (2 to 8): reads are short, and WAL lets them run beside
/// the writer.
fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn writes_are_synced_to_disk_at_each_commit_and_reads_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let pragma = |name: &'static str| {
            move |c: &Connection| {
                c.pragma_query_value(None, name, |r| {
                    Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .map_err(unavailable)
            }
        };
        // 2 = FULL: a commit that returned survives a power cut, not just a crash.
        assert_eq!(store.write(pragma("synchronous")).await.unwrap(), "2");
        assert_eq!(store.write(pragma("journal_mode")).await.unwrap(), "wal");
        assert_eq!(store.read(pragma("query_only")).await.unwrap(), "1");
    }
}
