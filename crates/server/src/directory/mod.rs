//! Where users live, behind the core's `Directory` port.

pub mod account;
pub mod ldap;
pub mod local;

pub use ldap::LdapDirectory;
pub use local::LocalDirectory;
