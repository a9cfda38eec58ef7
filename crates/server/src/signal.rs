//! The decision signal in one process: a watch channel per login that somebody waits on. A
//! decision taken here (the manager's page, expiry) notifies at once; decisions recorded by
//! another process (the `approvals` command line) reach it through the background job that
//! reads recent decisions from the store. With PostgreSQL, LISTEN/NOTIFY will feed `notify`.
//!
//! An entry lives only while someone waits: the last subscription to go removes it, so a
//! hundred thousand finished waits leave nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use countersign_core::model::Timestamp;
use countersign_core::ports::{Clock, DecisionSignal, Subscription};
use tokio::sync::watch;

type Channels = Arc<Mutex<HashMap<String, watch::Sender<u64>>>>;

/// The longest one wait sleeps before its waiter reads the store again, whatever `until` says
/// (a safety net for a notification that never came, such as a clock moved by a test).
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct WaitingRoom {
    channels: Channels,
    clock: Arc<dyn Clock>,
}

impl WaitingRoom {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            channels: Arc::default(),
            clock,
        }
    }

    /// Logins someone is waiting on right now.
    pub fn waited_on(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl DecisionSignal for WaitingRoom {
    fn subscribe(&self, login: &str) -> Box<dyn Subscription> {
        let receiver = match self.channels.lock() {
            Ok(mut channels) => channels
                .entry(login.to_owned())
                .or_insert_with(|| watch::channel(0).0)
                .subscribe(),
            // A poisoned map: a lone channel still lets the wait time out and re-read.
            Err(_) => watch::channel(0).1,
        };
        Box::new(Waiter {
            receiver: Some(receiver),
            login: login.to_owned(),
            channels: self.channels.clone(),
            clock: self.clock.clone(),
        })
    }

    fn notify(&self, login: &str) {
        if let Ok(channels) = self.channels.lock()
            && let Some(sender) = channels.get(login)
        {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

struct Waiter {
    /// `None` only while being dropped: it goes under the map's lock, so the last of several
    /// waiters dropped at once on different threads sees no other receiver and removes the
    /// entry.
    receiver: Option<watch::Receiver<u64>>,
    login: String,
    channels: Channels,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl Subscription for Waiter {
    async fn wait(&mut self, until: Timestamp) {
        let ms = until
            .millis()
            .saturating_sub(self.clock.now().millis())
            .max(0);
        let sleep = Duration::from_millis(ms as u64).min(MAX_SLEEP);
        let Some(receiver) = self.receiver.as_mut() else {
            return;
        };
        tokio::select! {
            changed = receiver.changed() => {
                if changed.is_err() {
                    // The sender is gone (cannot happen while we hold an entry); do not spin.
                    tokio::time::sleep(sleep).await;
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Ok(mut channels) = self.channels.lock() else {
            return;
        };
        drop(self.receiver.take());
        if channels
            .get(&self.login)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.login);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::SystemClock;

    #[tokio::test]
    async fn a_notification_wakes_every_waiter_at_once_and_entries_go_with_their_waiters() {
        let room = Arc::new(WaitingRoom::new(Arc::new(SystemClock)));
        let far = Timestamp(SystemClock.now().millis() + 60_000);
        let mut waits = Vec::new();
        for _ in 0..3 {
            let mut sub = room.subscribe("login-a");
            waits.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                sub.wait(far).await;
                started.elapsed()
            }));
        }
        let mut other = room.subscribe("login-b");
        assert_eq!(room.waited_on(), 2);
        tokio::task::yield_now().await;
        room.notify("login-a");
        for w in waits {
            assert!(w.await.unwrap() < Duration::from_secs(5));
        }
        assert_eq!(room.waited_on(), 1, "login-a's entry left with its waiters");
        // A notification between subscribing and waiting is not lost.
        room.notify("login-b");
        tokio::time::timeout(Duration::from_secs(5), other.wait(far))
            .await
            .unwrap();
        drop(other);
        assert_eq!(room.waited_on(), 0);
    }

    #[test]
    fn waiters_dropped_at_once_on_many_threads_leave_no_entry() {
        let room = Arc::new(WaitingRoom::new(Arc::new(SystemClock)));
        for round in 0..200 {
            let login = format!("login-{round}");
            let subs: Vec<_> = (0..4).map(|_| room.subscribe(&login)).collect();
            let barrier = Arc::new(std::sync::Barrier::new(subs.len()));
            let threads: Vec<_> = subs
                .into_iter()
                .map(|sub| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        drop(sub);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        assert_eq!(room.waited_on(), 0);
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_without_a_notification() {
        let room = WaitingRoom::new(Arc::new(SystemClock));
        let mut sub = room.subscribe("x");
        let soon = Timestamp(SystemClock.now().millis() + 50);
        tokio::time::timeout(Duration::from_secs(5), sub.wait(soon))
            .await
            .unwrap();
    }
}
