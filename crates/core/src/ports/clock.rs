//! Time and randomness, injected so expiry and secrets are testable.

use crate::model::Timestamp;

/// The current time. Injected so expiry is testable.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// A cryptographically secure random source.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}
