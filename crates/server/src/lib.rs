//! The countersign server: configuration, adapters (store, directories, couriers), fronts (HTTP
//! now; LDAP and RADIUS to come) and the wiring between them. The `countersign` binary in
//! `main.rs` is a thin CLI over this library, and the integration tests drive it directly.

pub mod admission;
pub mod app;
pub mod ber;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod directory;
pub mod http;
pub mod ldap;
pub mod oidc;
pub mod passwords;
pub mod setup;
pub mod signal;
pub mod store;
pub mod system;
pub mod terminal;
