//! The HTTP front: [`api`] holds the state, the router and the OTP API (request → use case →
//! response, testable with `oneshot`); [`login`] the login API and long-poll, [`events`] the
//! login's event stream, [`pages`] the manager's approval page with [`csrf`] guarding its form,
//! and the edge of every page; [`views`] renders the hosted sign-in pages in the languages of
//! [`i18n`]; [`body`] the edge rules on request bodies, [`problem`] maps use-case errors to RFC
//! 9457 problem+json once, and [`listener`] owns the socket and its limits. Its state is built by
//! the wiring and handed in; this module never reads the configuration. [`demo_rp`] is the
//! relying party `countersign demo` adds beside the provider.

pub mod api;
pub mod body;
pub mod csrf;
pub mod demo_rp;
pub mod events;
pub mod flow;
pub mod forwarded;
pub mod i18n;
pub mod listener;
pub mod login;
pub mod oidc;
pub mod pages;
pub mod problem;
pub mod views;

pub use api::{ApiState, router};
pub use csrf::CsrfKey;
pub use listener::{HttpLimits, HttpServer};
pub use login::ApprovalApi;
