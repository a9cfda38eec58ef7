//! countersign's domain: the model, the rules, the ports and the use cases that the fronts call.
//!
//! Nothing here opens a socket, runs SQL or knows a protocol. Time, randomness, storage,
//! directories and couriers come in through the traits in [`ports`], so every rule is unit-tested
//! with plain in-memory fakes and the adapters are tested against the real thing.

pub mod audit;
pub mod crypto;
pub mod error;
pub mod generator;
pub mod identity;
pub mod mechanism;
pub mod model;
pub mod otp;
pub mod ports;
pub mod ratelimit;
pub mod secret;

#[cfg(test)]
mod testkit;

pub use error::{OtpError, Refusal, Undelivered};
pub use model::{AccountState, Dn, Manager, Sponsor, Timestamp, User, UserKey};
pub use secret::Secret;
