//! The HTTP front: [`api`] holds the JSON API (request → use case → response, testable with
//! `oneshot`), [`body`] the edge rules on request bodies, [`problem`] maps use-case errors to
//! RFC 9457 problem+json once, and [`listener`] owns the socket and its limits. Its state is
//! built by the wiring and handed in; this module never reads the configuration.

pub mod api;
pub mod body;
pub mod forwarded;
pub mod listener;
pub mod problem;

pub use api::{ApiState, router};
pub use listener::{HttpLimits, HttpServer};
