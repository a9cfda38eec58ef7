//! The real clock and the operating system's CSPRNG, behind the core's ports.

use countersign_core::model::Timestamp;
use countersign_core::ports::{Clock, Random};

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
