//! The application: [`wiring`] builds the store, directories, couriers, the core's services and
//! each front's state from a validated configuration; [`serve`] runs the fronts on bound
//! sockets; [`background`] holds the periodic jobs; [`shutdown`] is the one path by which all of
//! them stop. Fronts get their state handed in and never import this module.

mod approvals;
pub mod background;
mod error;
mod oidc;
mod serve;
pub mod shutdown;
mod wiring;

pub use background::prune_audit;
pub use error::AppError;
pub use serve::Listeners;
pub use shutdown::{Shutdown, shutdown_signal};
pub use wiring::{App, install_crypto_provider};
