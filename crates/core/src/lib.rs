//! countersign's domain: the model, the rules, the ports and the use cases that the fronts call.
//!
//! Nothing here opens a socket, runs SQL or knows a protocol. Time, randomness, storage,
//! directories and couriers come in through the traits in [`ports`], so every rule is unit-tested
//! with plain in-memory fakes and the adapters are tested against the real thing.

pub mod application;
pub mod approval;
pub mod attempt;
pub mod audit;
pub mod crypto;
pub mod error;
pub mod identity;
pub mod identity_mapper;
pub mod login;
pub mod model;
pub mod oidc;
pub mod otp;
pub mod outbox;
pub mod password;
pub mod ports;
pub mod ratelimit;
pub mod secret;

/// The fakes of the ports and the one test clock; for the integration tests, behind the
/// `testkit` feature.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

// The generator and the mechanism order live beside the OTP use cases; these paths stay for
// the fronts and the configuration.
pub use otp::{generator, mechanism};

pub use error::{AuthError, Denial, Refusal, Undelivered};
pub use model::{AccountState, Dn, Manager, Sponsor, Timestamp, User, UserKey};
pub use secret::Secret;
