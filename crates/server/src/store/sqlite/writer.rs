//! Group commit: one thread owns the write connection and commits whatever writes are queued
//! in one transaction, so many audit records (and, next, outbox entries) share one fsync. Each
//! caller still gets its answer only after the transaction holding its write has committed:
//! `Ok` means durable (`synchronous=FULL`).
//!
//! Each write runs inside its own savepoint, so a write that fails is undone alone and fails
//! only its caller; a batch that cannot begin or commit fails exactly the callers in it. The
//! queue is bounded: when it is full, callers wait for room (backpressure), they never grow it.
//! [`Writer::close`] (or dropping the writer) stops taking writes and commits what was taken.

use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use countersign_core::ports::StoreError;

use super::unavailable;

/// Writes waiting for the writer; senders wait when it is full.
pub(super) const QUEUE_CAPACITY: usize = 1024;
/// Writes committed together at most, so one transaction stays short.
pub(super) const MAX_BATCH: usize = 256;

/// One queued write, with its type erased so writes of any result type share the queue.
trait Job: Send {
    /// Runs the write on the batch's transaction; `Err` means it must be undone.
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        let result = work(conn);
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.result = Some(result);
        outcome
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (self.result, committed) {
            // Its own failure wins: it was undone whether or not the others committed.
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(unavailable("write was not run")),
        };
        // The caller may have given up (its task cancelled); the write stands either way.
        let _ = self.reply.send(answer);
    }
}

/// The handle the store keeps: a bounded queue into the writer thread.
pub(super) struct Writer {
    queue: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (already configured and migrated).
    pub fn start(conn: Connection, capacity: usize, max_batch: usize) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1)))
            .map_err(unavailable)?;
        Ok(Self {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `work` in the next batch; returns its result once that batch has committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let queue = self
            .queue
            .lock()
            .map_err(|_| unavailable("store lock poisoned"))?
            .clone()
            .ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        });
        queue.send(job).await.map_err(|_| closed())?;
        drop(queue);
        answer
            .await
            .map_err(|_| unavailable("the store's writer stopped"))?
    }

    /// Takes no more writes, commits every write already taken, and waits for the thread.
    pub async fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Writer {
    /// Shutdown flushes even without `close`: the thread commits what it holds, then ends.
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        if let Some(thread) = self.thread.get_mut().ok().and_then(Option::take) {
            let _ = thread.join();
        }
    }
}

fn closed() -> StoreError {
    unavailable("the store is closed")
}

/// The writer thread: waits for a first write, takes whatever else is queued (up to
/// `max_batch`), commits it all at once, answers, repeats until every sender is gone.
fn run(mut conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit(&mut conn, &mut batch);
        if let Err(e) = &committed {
            tracing::error!(error = %e, writes = batch.len(), "a batch of store writes failed");
        }
        for job in batch.drain(..) {
            job.answer(committed.clone());
        }
    }
}

fn commit(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    for job in batch.iter_mut() {
        tx.execute_batch("SAVEPOINT write").map_err(unavailable)?;
        let undo = if job.run(&tx).is_ok() {
            "RELEASE write"
        } else {
            "ROLLBACK TO write; RELEASE write"
        };
        // If even that fails the transaction is in doubt: fail the whole batch.
        tx.execute_batch(undo).map_err(unavailable)?;
    }
    // Dropping `tx` on error rolls back, so a failed commit leaves nothing half-written.
    tx.commit().map_err(unavailable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    fn db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE t (v TEXT NOT NULL UNIQUE,
                 p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        (dir, path)
    }

    fn writer(path: &std::path::Path) -> Arc<Writer> {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        Arc::new(Writer::start(c, 64, 64).unwrap())
    }

    fn insert(w: &Arc<Writer>, v: &str, p: Option<i64>) -> tokio::task::JoinHandle<bool> {
        let (w, v) = (w.clone(), v.to_owned());
        tokio::spawn(async move {
            w.write(move |c| {
                c.execute(
                    "INSERT INTO t (v, p) VALUES (?1, ?2)",
                    rusqlite::params![v, p],
                )
                .map_err(unavailable)
            })
            .await
            .is_ok()
        })
    }

    fn values(path: &std::path::Path) -> Vec<String> {
        let c = Connection::open(path).unwrap();
        let mut s = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Holds the writer inside a batch until released, so the next writes queue up and are
    /// committed together in the following batch.
    async fn hold(w: &Arc<Writer>) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let w2 = w.clone();
        let held = tokio::spawn(async move {
            w2.write(move |_| {
                let _ = started.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        running.await.unwrap();
        (release, held)
    }

    async fn queued(w: &Arc<Writer>, n: usize) {
        loop {
            let q = w.queue.lock().unwrap().clone().unwrap();
            if q.max_capacity() - q.capacity() >= n {
                return;
            }
            drop(q);
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_fails_is_undone_alone() {
        let (_dir, path) = db();
        let w = writer(&path);
        let (release, held) = hold(&w).await;
        // Queued one after another, so the first "a" is the one that lands.
        let a = insert(&w, "a", None);
        queued(&w, 1).await;
        let dup = insert(&w, "a", None); // violates UNIQUE within the same batch
        queued(&w, 2).await;
        let b = insert(&w, "b", None);
        queued(&w, 3).await;
        release.send(()).unwrap();
        held.await.unwrap();
        assert!(a.await.unwrap());
        assert!(!dup.await.unwrap());
        assert!(b.await.unwrap());
        assert_eq!(values(&path), ["a", "b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_cannot_commit_fails_exactly_its_callers() {
        let (_dir, path) = db();
        let w = writer(&path);
        assert!(insert(&w, "before", None).await.unwrap());
        let (release, held) = hold(&w).await;
        // A deferred foreign key is checked at COMMIT: this batch cannot commit.
        let x = insert(&w, "x", None);
        let orphan = insert(&w, "orphan", Some(42));
        let y = insert(&w, "y", None);
        queued(&w, 3).await;
        release.send(()).unwrap();
        held.await.unwrap();
        assert_eq!(
            [x.await.unwrap(), orphan.await.unwrap(), y.await.unwrap()],
            [false, false, false]
        );
        assert!(insert(&w, "after", None).await.unwrap());
        assert_eq!(values(&path), ["after", "before"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_commits_every_write_taken_and_refuses_later_ones() {
        let (_dir, path) = db();
        let w = writer(&path);
        let (release, held) = hold(&w).await;
        let writes: Vec<_> = (0..20)
            .map(|i| insert(&w, &format!("v{i:02}"), None))
            .collect();
        queued(&w, 20).await;
        let closing = {
            let w = w.clone();
            tokio::spawn(async move { w.close().await })
        };
        release.send(()).unwrap();
        held.await.unwrap();
        closing.await.unwrap();
        for write in writes {
            assert!(write.await.unwrap());
        }
        assert_eq!(values(&path).len(), 20);
        assert!(!insert(&w, "late", None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_makes_callers_wait_instead_of_growing() {
        let (_dir, path) = db();
        let c = Connection::open(&path).unwrap();
        let w = Arc::new(Writer::start(c, 2, 2).unwrap());
        let (release, held) = hold(&w).await;
        let first: Vec<_> = (0..2).map(|i| insert(&w, &format!("q{i}"), None)).collect();
        queued(&w, 2).await;
        let third = insert(&w, "q2", None);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let q = w.queue.lock().unwrap().clone().unwrap();
        assert_eq!(q.capacity(), 0, "the queue holds two writes, no more");
        drop(q);
        assert!(!third.is_finished(), "a third write waits for room");
        release.send(()).unwrap();
        held.await.unwrap();
        for write in first {
            assert!(write.await.unwrap());
        }
        assert!(third.await.unwrap());
        assert_eq!(values(&path), ["q0", "q1", "q2"]);
    }
}
