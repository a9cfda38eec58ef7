//! Where users live, behind the core's `Directory` port.

pub mod local;

pub use local::LocalDirectory;
