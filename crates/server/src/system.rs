//! The real clock, the operating system's CSPRNG and the runtime's tasks, behind the core's
//! ports.

use countersign_core::model::Timestamp;
use countersign_core::ports::{Clock, Detach, Random, Work};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// The kernel's CSPRNG (getrandom(2)).
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // getrandom only fails when the kernel has no entropy source at all; there is no safe
        // way to go on issuing secrets then.
        if let Err(e) = getrandom::fill(buf) {
            tracing::error!(error = %e, "the operating system's random source failed");
            std::process::abort();
        }
    }
}

/// `n` random bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    OsRandom.fill(&mut buf);
    buf
}

/// Detached work runs as a task of its own on the runtime: started at once, finished even when
/// the caller's future is dropped.
pub struct SpawnDetach;

impl Detach for SpawnDetach {
    fn detach(
        &self,
        work: Work,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let task = tokio::spawn(work);
        Box::pin(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "detached work failed");
            }
        })
    }
}
