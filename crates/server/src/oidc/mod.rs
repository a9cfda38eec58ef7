//! The OpenID Connect provider's server side: the signing keys ([`keys`]). The protocol's rules
//! are the core's (`countersign_core::oidc`); the endpoints and pages are the HTTP front's.

pub mod keys;

pub use keys::{KeyError, SealKey, SigningKeys};
